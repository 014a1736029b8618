"""Figures of the diagnostics: layer-wise GSNR against depth, and AUC against the SAM radius.

Figures are drawn on matplotlib's Agg canvas created inside each function, so nothing here touches
pyplot's global backend (importing this module has no side effects and works without a display).
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pandas as pd

#: Built-in detectors and presets keep these colours in every figure: matplotlib's tab10 cycle (the
#: first four as before), then the other tab20 colours.
_FIXED = {
    "clip_linear": "C0", "univfd": "C1", "sam": "C2", "corit": "C3", "effort": "C4", "gend": "C5",
    "rine": "C6", "npr": "C7", "safe": "C8", "cnnspot": "C9", "sbi": "#aec7e8", "finetune": "#ffbb78",
    "xception": "#98df8a", "effnet_b4": "#ff9896",
}
_TAB20_REST = ["#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]


def _generated_hues(n: int = 42) -> list[str]:
    """``n`` colours spread around the hue circle (golden-angle steps) at three saturation/value levels."""
    import colorsys

    levels = [(0.75, 0.70), (0.55, 0.90), (0.90, 0.45)]
    out = []
    for i in range(n):
        s, v = levels[i % len(levels)]
        r, g, b = colorsys.hsv_to_rgb((0.05 + i * 0.381966) % 1.0, s, v)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out


#: Other names (plugins) hash into these 48 colours, none of them a built-in's.
_PALETTE = _TAB20_REST + _generated_hues()


def detector_colours(names) -> dict[str, str]:
    """One colour per detector name, the same in every figure that shows it.

    Built-ins and presets have fixed colours; any other name takes the palette colour chosen by a
    stable hash (CRC32) of the name alone, never by what else a figure shows, so its colour cannot
    change between figures. Two plugin names may share a colour (1 chance in 48 per pair); the
    legend tells them apart.
    """
    return {name: _FIXED.get(name) or _PALETTE[zlib.crc32(name.encode()) % len(_PALETTE)]
            for name in dict.fromkeys(map(str, names))}


def new_figure(ncols: int, width: float = 5.0, height: float = 3.8, nrows: int = 1):
    """A matplotlib figure on its own Agg canvas (no pyplot state) and its axes, row-major in a flat array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(nrows, ncols, squeeze=False).ravel()


def plot_gsnr(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Plot ``gsnr_mean`` and ``gsnr_ratio`` against depth (log y), one line per detector/run; save a PNG.

    ``table`` has the columns of :data:`bench.diagnose.COLUMNS`. Depth ticks are labelled with the
    layer name when every line agrees on it. A detector has the same colour in every figure
    (:func:`detector_colours`); fresh detectors are dashed, trained runs solid, and the title says
    which of the two the figure shows.
    """
    fig, axes = new_figure(2)
    names: dict[int, set[str]] = {}
    for depth, layer in zip(table["depth"], table["layer"]):
        names.setdefault(int(depth), set()).add(str(layer))
    ticks = sorted(names)
    labels = [next(iter(names[d])) if len(names[d]) == 1 else str(d) for d in ticks]
    colours = detector_colours(table["detector"].astype(str))
    for ax, column, ylabel in zip(axes, ("gsnr_mean", "gsnr_ratio"),
                                  ("mean of m² / v over parameters", "‖m‖² / Σ v per layer")):
        for (detector, run), part in table.groupby(["detector", "run"], sort=False):
            part = part.sort_values("depth")
            fresh = run == "fresh"
            label = f"{detector} (fresh)" if fresh else f"{detector} · {run}"
            ax.plot(part["depth"], part[column], marker="o", label=label, color=colours[str(detector)],
                    linestyle="--" if fresh else "-")
        ax.set_yscale("log")
        ax.set_xticks(ticks, labels, rotation=45, ha="right", fontsize=8)
        ax.set_xlabel("layer (forward order)")
        ax.set_ylabel(f"{column}: {ylabel}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(gsnr_title(table, title))
    fig.savefig(path, dpi=120, metadata={"Software": None})
    return Path(path)


def gsnr_title(table: pd.DataFrame, title: str = "") -> str:
    """``title`` followed by whether the figure shows fresh (untrained) detectors, trained runs, or both."""
    fresh = set(table["run"].astype(str) == "fresh")
    state = ("fresh (untrained) detectors" if fresh == {True} else "trained detectors" if fresh == {False}
             else "fresh (dashed) and trained (solid) detectors")
    return f"{title} · {state}" if title else state


def plot_sweep(table: pd.DataFrame, path: str | Path, primary: str, cor: dict[str, dict[str, Any]] | None = None,
               title: str = "") -> Path:
    """Plot source-val AUC and the primary metric against ρ, one curve per detector; save a PNG.

    ``table`` has ``detector``, ``rho``, ``val_auc`` and a ``primary`` column (named ``primary``
    in the legend). The x axis is symmetric-log, linear below the smallest positive ρ, so ρ = 0 sits
    at 0 instead of being dropped. A detector's COR (``cor[detector]["cor"]``) is a dotted line.
    """
    fig, axes = new_figure(2)
    positive = table.loc[table["rho"] > 0, "rho"]
    linthresh = float(positive.min()) if len(positive) else 1.0
    colours = detector_colours(table["detector"].astype(str))
    for ax, column, ylabel in zip(axes, ("val_auc", "primary"), ("source-val AUC", primary)):
        for detector, part in table.groupby("detector", sort=False):
            part = part.sort_values("rho")
            color = colours[str(detector)]
            ax.plot(part["rho"], part[column], marker="o", color=color, label=detector)
            value = (cor or {}).get(detector, {}).get("cor")
            if value is not None:
                ax.axvline(value, color=color, linestyle=":", alpha=0.8)
        if column == "val_auc" or primary.split("@")[0] in ("auc", "video_auc"):
            ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        ax.set_xscale("symlog", linthresh=linthresh)
        # Radii are >= 0: hide symlog's mirrored negative half, keep a margin so ρ = 0 is visible.
        ax.set_xlim(-0.3 * linthresh, float(table["rho"].max()) * 1.5 or linthresh)
        ax.set_xlabel(f"SAM radius ρ (symlog, linear below {linthresh:g}; ρ = 0 at 0)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8, title="dotted: COR", title_fontsize=8)
    fig.suptitle(f"{title} · trained detectors" if title else "trained detectors")
    fig.savefig(path, dpi=120, metadata={"Software": None})
    return Path(path)

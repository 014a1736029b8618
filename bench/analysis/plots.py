"""Figures of the diagnostics: layer-wise GSNR against depth, and AUC against the SAM radius.

Figures are drawn on matplotlib's Agg canvas created inside each function, so nothing here touches
pyplot's global backend (importing this module has no side effects and works without a display).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from bench.leaderboard.style import detector_colours, new_figure


def plot_gsnr(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Plot ``gsnr_mean`` and ``gsnr_ratio`` against depth (log y), one line per detector/run; save a PNG.

    ``table`` has the columns of :data:`bench.analysis.diagnose.COLUMNS`. Depth ticks are labelled with the
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

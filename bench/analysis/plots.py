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
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize=8)
    fig.suptitle(gsnr_title(table, title))
    fig.savefig(path, dpi=120, metadata={"Software": None})
    return Path(path)


def gsnr_title(table: pd.DataFrame, title: str = "") -> str:
    """``title``, whether the figure shows fresh (untrained) detectors, trained runs or both, and which seeds.

    The seed is the ``seed`` column (a trained run's training seed, a fresh detector's initialisation
    seed); tables written before that column existed give it by the run name's ``-s<seed>`` ending.
    """
    fresh = set(table["run"].astype(str) == "fresh")
    state = ("fresh (untrained) detectors" if fresh == {True} else "trained detectors" if fresh == {False}
             else "fresh (dashed) and trained (solid) detectors")
    if "seed" in table:
        seeds = sorted(set(table["seed"].dropna().astype(int)))
    else:
        found = table["run"].astype(str).str.extract(r"-s(\d+)$")[0].dropna()
        seeds = sorted(set(found.astype(int)))
    runs = table.groupby(["detector", "run"]).ngroups
    if seeds:
        state += f", seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))} ({runs} run{'s' * (runs > 1)})"
    return f"{title} · {state}" if title else state


def plot_sweep(points: pd.DataFrame, path: str | Path, primary: str, cor: dict[str, dict[str, Any]] | None = None,
               title: str = "") -> Path:
    """Plot source-val AUC and the primary metric against ρ, one curve per detector; save a PNG.

    ``points`` is :func:`bench.analysis.sweep.points`: per detector and radius the mean over seeds
    (``val_auc``, ``primary``), their seed range (``val_min``/``val_max``, ``seed_min``/``seed_max``,
    drawn as a band) and the primary metric's 95% interval over test images (``lo``/``hi``, bars).
    The y axes span [0, 1] (the whole scale of an AUC), the x axis is symmetric-log, linear below the
    smallest positive ρ, so ρ = 0 sits at 0. A detector's COR (``cor[detector]["cor"]``) is a dotted line;
    the title says which seeds and how many runs each point is.
    """
    fig, axes = new_figure(2)
    positive = points.loc[points["rho"] > 0, "rho"]
    linthresh = float(positive.min()) if len(positive) else 1.0
    colours = detector_colours(points["detector"].astype(str))
    for ax, (column, low, high), ylabel in zip(axes, (("val_auc", "val_min", "val_max"),
                                                      ("primary", "seed_min", "seed_max")),
                                               ("source-val AUC", primary)):
        for detector, part in points.groupby("detector", sort=False):
            part = part.sort_values("rho")
            color = colours[str(detector)]
            ax.plot(part["rho"], part[column], marker="o", color=color, label=detector)
            if (part["seeds"] > 1).any():
                ax.fill_between(part["rho"], part[low], part[high], color=color, alpha=0.15, linewidth=0)
            if column == "primary" and part["lo"].notna().any():
                ax.errorbar(part["rho"], part[column], yerr=[part[column] - part["lo"], part["hi"] - part[column]],
                            fmt="none", ecolor=color, capsize=3)
            value = (cor or {}).get(detector, {}).get("cor")
            if value is not None:
                ax.axvline(value, color=color, linestyle=":", alpha=0.8)
        ax.axhline(0.5, color="grey", linewidth=0.8, linestyle="--")
        ax.set_ylim(0.0, 1.0)
        ax.set_xscale("symlog", linthresh=linthresh)
        # Radii are >= 0: hide symlog's mirrored negative half, keep a margin so ρ = 0 is visible.
        ax.set_xlim(-0.3 * linthresh, float(points["rho"].max()) * 1.5 or linthresh)
        ax.set_xlabel(f"SAM radius ρ (symlog, linear below {linthresh:g}; ρ = 0 at 0)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    bars = "bars: 95% interval over test images; " if points["lo"].notna().any() else "no interval (predictions not kept); "
    band = "band: seed range; " if (points["seeds"] > 1).any() else ""
    axes[0].legend(fontsize=8, title="dotted: COR", title_fontsize=8)
    seeds = int(points["seeds"].max())
    runs = f"mean over {seeds} seeds per point" if seeds > 1 else "one seed per point"
    fig.suptitle(f"{title} · trained detectors, {runs}\n{bars}{band}dashed: chance" if title else
                 f"trained detectors, {runs}\n{bars}{band}dashed: chance", fontsize=10)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    return Path(path)

"""What a table's numbers mean, in words, stated once per table and only for what was done for it."""

from __future__ import annotations

from typing import Any

from bench.leaderboard.layout import BORDERLINE, NO_PREDICTIONS, NOT_RECORDED
from bench.operating import ECE_BINS


def legend(t: dict[str, Any]) -> list[str]:
    """The main table's legend: cells and intervals, ranks, seeds, n, and the footnotes that apply."""
    rows = t["entries"] + t["unranked"]
    boot = [e for e in rows if e["intervals"] == "bootstrap"]
    lines = [f"Cells: {t['metric']}, the mean over the row's training seeds; groups are unweighted means of "
             f"their test sets." + (" " + _interval_text(t, boot) if boot else "")]
    if any(e.get("rank_interval") for e in t["entries"]):
        lines.append(ranking_legend(t))
    if boot:
        lines.append("seed range: the lowest and highest per-seed value; *deterministic*: every seed gave every "
                     "image the same score, so the seeds are one model, not several draws.")
    lines.append(_n_text(t))
    if len(boot) < len(rows):
        lines.append(f"{NO_PREDICTIONS} the row's runs have no stored predictions (results submitted before "
                     "predictions were kept): its cells show mean ± sample std over seeds, with no interval over "
                     "images, and its rank is untested.")
    if any(e.get("published") is False for e in rows):
        lines.append("(unpublished): a run given to `bench report`, placed among the published rows with the same "
                     "statistics; it is not on the leaderboard.")
    return lines


def ranking_legend(t: dict[str, Any], short: bool = False) -> str:
    """How rank intervals, the rows that could be first and the p-values are decided."""
    b = t["bootstrap"]
    alpha, n = b["alpha"], len([e for e in t["entries"] if e.get("rank_interval")])
    if short:
        return (f"[lo, hi]: 95% interval over test images (seeds fixed). rank interval: 95%, from paired tests "
                f"Holm-adjusted within each row's comparisons; could be 1st: the interval starts at 1; "
                f"{BORDERLINE} borderline (within 2 Monte Carlo errors of α = {alpha}).")
    return (f"rank interval: the ranks the row can hold with 95% confidence: 1 + the rows significantly above it, "
            f"to {n} - the rows significantly below it. Each pair of rows is compared on the same resamples "
            f"(two-sided; the difference over its bootstrap standard error) and each row's {max(n - 1, 0)} "
            f"comparisons are Holm-adjusted together (α = {alpha}). could be 1st: the interval starts at 1; "
            f"these rows hold the best one with probability at least 95%. Intervals are widened so that marks "
            f"follow the ranks (a row is marked whenever one ranked below it is), which keeps that guarantee. "
            f"p vs 1st: the row's paired p-value against the first row, raw / Holm-adjusted; a tie in rank is not "
            f"equivalence, only a difference these test images cannot resolve. {BORDERLINE}: one of the row's "
            f"decisions lies within 2 Monte Carlo errors of α (borderline).")


def _interval_text(t: dict[str, Any], boot: list[dict[str, Any]]) -> str:
    """How the intervals were drawn: units, what test sets drew together, resamples and Monte Carlo error."""
    b = t["bootstrap"]
    unit = "images (a video with all its frames where a test set has frames)" if b.get("video_units") else "images"
    shared = set(b.get("shared") or [])
    synthetic = " and the k-th ".join(c for c in ("real", "fake") if f"synthetic {c}s" in shared)
    together = []
    if synthetic:
        together.append(f"on the synthetic source the k-th {synthetic} of a split start from the same crop in "
                        "every test set of that split, so each gets one draw for all of them")
    split = " and ".join(c for c in ("reals", "fakes") if f"split {c}" in shared)
    if split:
        together.append(f"test sets that read one split (its degraded variants, or paired test sets with one real "
                        f"split) draw its {split} together")
    pools = "; ".join(together) if together else "every test set draws its own images"
    seeds = {len(e["seeds"]) > 1 for e in boot}
    fixed = (" The seeds are fixed, not drawn: the interval is for the mean of these trained models over test "
             "images, and the spread between seeds is its own column." if True in seeds else
             " Each row has one seed, so the interval covers the test images only, not training seeds.")
    cells = b.get("cell_resamples", b["resamples"])
    other = (f"; the other tables use the first {cells:,} of the same resamples (Monte Carlo error of a bound at "
             f"most {b['mc_error_bounds']:.4f})" if cells < b["resamples"] else "")
    return (f"[lo, hi] is a {round(100 * b['level'])}% percentile interval from {b['resamples']:,} bootstrap "
            f"resamples (numpy PCG64 seeded with {b['seed']}; Monte Carlo error of a bound of this column at most "
            f"{b['mc_error_primary']:.4f}, of an adjusted p-value at most {b['mc_error_p']:.4f}{other}): each "
            f"resample draws the test {unit} with replacement, reals and fakes separately ({pools}).{fixed}")


def _n_text(t: dict[str, Any]) -> str:
    """How to read n: distinct images per class, and the units a resample draws."""
    first = next((e for e in t["entries"] + t["unranked"] if e["n"].get(t["target"])), None)
    counts = first["n"][t["target"]] if first else None
    text = ("n (real / fake): distinct images per class behind the column; an image shown in several test sets "
            "counts once.")
    if counts and counts.get("real_units") is not None:
        text += (f" For {t['target']} a resample draws {counts['real_units']:,} real and {counts['fake_units']:,} "
                 f"fake units, which is what the interval's width follows.")
    if counts and counts.get("n_videos") is not None:
        text += " On frame datasets the videos are counted too."
    return text


def deployment_legend(t: dict[str, Any]) -> list[str]:
    """What the deployment metrics are, and why some cells are not recorded."""
    lines = [(f"acc: accuracy at logit 0 (P(fake) > 0.5), with real_acc and fake_acc per class; acc_val_thr: at the "
             f"threshold that maximises balanced accuracy on the source validation set (the selected weights' "
             f"scores; the highest such threshold when several tie), i.e. the threshold a deployed detector would "
             f"use; oracle_acc: at the best threshold chosen with the test labels (an upper bound, not deployable); "
             f"ece: expected calibration error of P(fake) = sigmoid(logit) over {ECE_BINS} equal-width bins on "
             f"[0, 1] (lower is better); tpr_at_fpr1 / tpr_at_fpr5: the true-positive rate at a false-positive rate "
             f"of 1% / 5% (the ROC's upper step; with 100 reals, 1% allows one)."),
             ("The [lo, hi] of oracle_acc and ece is the same percentile interval as elsewhere, of statistics that "
              "resampling biases upward (a maximum over thresholds; a sum of absolute gaps): it often sits above "
              "the point value and may not contain it, so read it as their spread over test images, not as a "
              "confidence interval for the true value.")]
    rows = t["entries"] + t["unranked"]
    if any(v is None for e in rows for g in e["groups"].values() for v in g.values()):
        lines.append(f"{NOT_RECORDED}: the runs predate results schema 3, which records the validation threshold; "
                     "metrics that need only the test scores are computed from the stored predictions instead. "
                     "Rerunning the row fills every cell.")
    return lines


def cost_legend(t: dict[str, Any]) -> list[str]:
    """What the cost columns measure."""
    lines = [("GFLOPs / image: one forward pass at batch 1 on the detector's evaluation input size, counted by "
             "torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-add). fit: training wall time, median "
             "over seeds. predict: test images per second end to end (decoding, transform, forward) on the device "
             "named; seeds whose features came from the feature cache are left out of it (*features cached* when "
             "all were).")]
    if any(e["cost"]["gflops_per_image"] is None for e in t["entries"] + t["unranked"]):
        lines.append(f"{NOT_RECORDED}: the runs predate results schema 3, which counts FLOPs; rerun to fill it.")
    return lines

"""CoRIT ablation on the embedded protocols: each component switched off in turn, over seeds.

Usage: python benchmarks/corit_ablation.py [--protocols synthetic_universal,synthetic_cross_domain]
       [--seeds 0,1,2] [--out runs/ablation] [--board leaderboard] [--executor local|slurm ...]
       [--limit N --max-steps N]  (a quick, partial try; never for the committed tables)
The ablation is the grid examples/grids/corit_ablation.yaml (a `variants` axis of `-o` settings);
this script issues it through `bench grid` (any executor flag of `bench grid` may follow), waits,
and writes BOARD/corit_ablation.md (one table per protocol) and BOARD/corit_ablation.csv from the
collected cells. Issuing it again reuses finished cells and resumes interrupted ones; a grid
directory made with other settings or another CoRIT version is refused rather than mixed in.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

GRID = Path(__file__).resolve().parents[1] / "examples" / "grids" / "corit_ablation.yaml"
#: Row label of each variant of the grid file.
LABELS = {
    "full": "corit (all components)",
    "no_rrm": "without RRM",
    "no_rsi": "without RSI",
    "readout": "RSI at read-out only (v1)",
    "no_cgp": "without CGP (hence no RRM, RSI)",
    "no_hri": "without HRI",
    "all_off": "all off (= sam)",
}


def rows(gdir, plan) -> pd.DataFrame:
    """One row per cell: protocol, variant label, seed, source-val AUC and every group's AUC."""
    from bench.grid.collect import results

    found = results(gdir)
    out = []
    for cell in plan.cells:
        result = found[cell.id]
        variant = cell.name.rsplit("-s", 1)[0]
        row = {"protocol": cell.protocol_name, "variant": LABELS[variant], "seed": cell.seed,
               "val_auc": result["selection"]["val"]["auc"]}
        row.update({f"{group}_auc": m["auc"] for group, m in result["groups"].items()})
        out.append(row)
    return pd.DataFrame(out)


def table(frame: pd.DataFrame) -> str:
    """Markdown of mean ± std over seeds per variant (std is blank with a single seed)."""
    frame = frame.dropna(axis=1, how="all")
    stats = frame.drop(columns=["protocol", "seed"]).groupby("variant", sort=False).agg(["mean", "std"])
    cols = [c for c in frame.columns if c not in ("protocol", "variant", "seed")]
    cells = {col: [f"{m:.3f}" + ("" if pd.isna(s) else f" ± {s:.3f}")
                   for m, s in zip(stats[(col, "mean")], stats[(col, "std")])] for col in cols}
    return pd.DataFrame(cells, index=stats.index).to_markdown()


def main() -> None:
    from bench.cli.grid_flags import add_executor_flags, executor_from_args

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocols", default="synthetic_universal,synthetic_cross_domain")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", default="runs/ablation", help="the ablation's grid directory")
    parser.add_argument("--board", default="leaderboard")
    parser.add_argument("--limit", type=int, help="at most N images per class per split (a partial grid)")
    parser.add_argument("--max-steps", type=int, help="stop training after N steps (a partial grid)")
    add_executor_flags(parser)
    args = parser.parse_args()
    from bench.errors import BenchError
    from bench.grid import GridDir, issue, load_grid, parse_grid, plan_grid
    from detectors.corit import CoRIT

    try:
        data = load_grid(GRID).model_dump(mode="json")
        data.update(protocols=args.protocols.split(","), seeds=[int(s) for s in args.seeds.split(",")],
                    executor=executor_from_args(args, data["executor"]))
        if args.limit or args.max_steps:
            data["partial"] = True
            data["run"].update(limit=args.limit, max_steps=args.max_steps)
        plan = plan_grid(parse_grid(data, str(GRID)))
        gdir = GridDir(args.out)
        outcome = issue(plan, gdir)
        if not outcome.complete:
            sys.exit(f"error: the ablation grid did not finish; `bench grid status {gdir.root}` says why, and the "
                     "same command resumes it.")
        frame = rows(gdir, plan)
    except BenchError as err:
        sys.exit(f"error: {err}")
    except KeyboardInterrupt:
        sys.exit(f"interrupted: submitted cells keep running (`bench grid status {args.out}`, `bench grid cancel "
                 f"{args.out}`); the same command follows them again and writes the tables.")
    frames = [part for _, part in frame.groupby("protocol", sort=False)]
    board = Path(args.board)
    board.mkdir(parents=True, exist_ok=True)
    frame.to_csv(board / "corit_ablation.csv", index=False, float_format="%.4f")
    quick = "".join(f" --{k.replace('_', '-')} {v}" for k, v in (("limit", args.limit), ("max_steps", args.max_steps)) if v)
    command = f"python benchmarks/corit_ablation.py --protocols {args.protocols} --seeds {args.seeds}{quick}"
    lines = [f"<!-- generated by `{command}`; do not edit -->"]
    for part in frames:
        title = f"### CoRIT v{CoRIT.version} ablation on {part['protocol'].iloc[0]}: AUC, mean ± std over seeds"
        lines += [f"{title} {args.seeds}", "", table(part), ""]
    lines.append("Each row switches components off with `-o` (RRM and RSI need CGP, so removing CGP removes them "
                 "too); `rsi_mode: readout` is v1's injection (CNNs inject into the read-out vector only). "
                 "Per-seed values: `corit_ablation.csv`.")
    (board / "corit_ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

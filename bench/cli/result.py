"""Printing a run's metrics after ``bench run`` (and ``--resume``)."""

from __future__ import annotations

from tabulate import tabulate


def print_result(result: dict) -> None:
    """Print AUC/AP (and the protocol's other metrics) per test set and group."""
    from accelerate import PartialState

    if not PartialState().is_main_process:
        return
    metrics = [m for m in result["protocol"]["metrics"]]
    rows = [[name, *(m.get(k) for k in metrics), m["n_real"], m["n_fake"]] for name, m in result["metrics"].items()]
    rows += [[f"[{name}]", *(m.get(k) for k in metrics), "", ""] for name, m in result["groups"].items()]
    print(f"\n{result['protocol']['name']} v{result['protocol']['version']} · {result['detector']['name']} · "
          f"seed {result['seed']} · selected {result['selection'].get('rule')} · "
          f"{result['timing']['total_seconds']:.1f} s{' · PARTIAL' if result['partial'] else ''}")
    print(tabulate(rows, headers=["test set", *metrics, "n_real", "n_fake"], floatfmt=".4f"))
    print(f"run directory: {result['run_dir']}")

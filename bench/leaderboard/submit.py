"""``bench leaderboard submit``: copy a finished run's results and predictions into the leaderboard."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.leaderboard.collect import (
    PREDICTIONS_SUFFIX,
    LeaderboardError,
    load_run_dir,
    run_predictions_text,
    write_gzip_text,
)
from bench.results import portable_command


def submit(run_dir: Path, leaderboard_dir: Path) -> Path:
    """Store a run as ``results/<protocol>/<detector>/<run_id>.json`` + ``<run_id>.predictions.csv.gz``.

    Only complete, non-partial runs of a registered protocol (same name, version and hash) are
    accepted, with every test set's predictions; nothing existing is overwritten. The stored result
    gains ``protocol.definition`` (the resolved protocol, so later builds need no registry) and a
    portable ``command``. ``run_dir`` may also be the results.json file itself. Returns the json path.
    """
    run = load_run_dir(Path(run_dir))
    proto = run.protocol
    definition = _registered_definition(run.path, proto)
    recorded = proto.get("definition")  # what the run itself resolved, from its config.yaml
    if recorded is not None and recorded != definition:
        raise LeaderboardError(f"{run.path.parent / 'config.yaml'} records a protocol that differs from the "
                               f"registered {proto['name']} v{proto['version']} with the same hash; the run "
                               "directory was edited, so rerun it.")
    if run.predictions is None:
        raise LeaderboardError(f"{run.path.parent} has no predictions/ folder; the leaderboard needs each "
                               "image's score for its intervals, so submit the whole run directory.")
    predictions = run_predictions_text(run.predictions, list(proto["tests"]))
    dest = Path(leaderboard_dir, "results", proto["name"], run.detector["name"], f"{run.result['run_id']}.json")
    preds = dest.with_name(dest.stem + PREDICTIONS_SUFFIX)
    if dest.exists() or preds.exists():
        raise LeaderboardError(f"{dest} already exists; a run is submitted once, so delete it (and "
                               f"{preds.name}) first to replace it.")
    raw = json.loads(run.path.read_text(encoding="utf-8"))
    raw["command"] = portable_command(raw.get("command", ""))
    raw["protocol"]["definition"] = definition
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Predictions first, results last and atomically: a half-copied run never looks committed.
    tmp = preds.with_name(preds.name + ".tmp")
    write_gzip_text(tmp, predictions)
    os.replace(tmp, preds)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(json.dumps(raw, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, dest)
    return dest


def _registered_definition(path: Path, proto: dict[str, Any]) -> dict[str, Any]:
    """The registered protocol's resolved definition; refuse unregistered, other-version or shadowed ones."""
    from bench.protocol import load_protocol, protocol_files

    name, version, sha = proto["name"], proto["version"], proto["sha256"]
    files = protocol_files()
    if name not in files:
        raise LeaderboardError(
            f"{path} was run with protocol {name!r}, which is not registered; ship it in a protocol pack "
            "(README: Add a protocol) to rank it, or use `bench report RUN_DIR` for an unpublished protocol."
        )
    try:
        registered = load_protocol(name)
    except BenchError as err:
        raise LeaderboardError(f"The registered protocol {name!r} does not load ({err}); fix it first.") from None
    if registered.version != version:
        raise LeaderboardError(f"{path} was run with {name} v{version}, but the registered {name} is "
                               f"v{registered.version}; rerun it under v{registered.version}.")
    if registered.sha256() != sha:
        raise LeaderboardError(
            f"{path} was run with a protocol file named {name!r} v{version} whose hash {sha[:12]} differs from "
            f"the registered one ({registered.sha256()[:12]}); a local file shadows it, so rename that file "
            "and its `name`, or rerun with the registered protocol."
        )
    return registered.model_dump(mode="json")

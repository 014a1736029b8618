"""``bench leaderboard submit``: copy a finished run's results and predictions into the leaderboard."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.inputs import check_component
from bench.leaderboard.collect import (
    PREDICTIONS_SUFFIX,
    LeaderboardError,
    Run,
    load_run_dir,
    read_result,
    row_kind,
    run_predictions_text,
    write_gzip_text,
)
from bench.leaderboard.consistency import check_predictions, predictions_frame
from bench.protocol.hashing import same_definition
from bench.run.results import PREDICTIONS_HASH_SCHEMA, portable_command, predictions_sha256

#: The ``bench run`` flag naming the protocol, and the shortest prefix argparse accepts for it.
_PROTOCOL_FLAG, _SHORTEST = "--protocol", len("--pro")


def submit(run_dir: Path, leaderboard_dir: Path, run_id: str | None = None) -> Path:
    """Store a run as ``results/<protocol>/<detector>/<run_id>.json`` + ``<run_id>.predictions.csv.gz``.

    Only complete, non-partial runs of a registered protocol (same name, version and hash) are
    accepted, with every test set's predictions, and only when those predictions give the run's
    stored metrics again (:func:`bench.leaderboard.consistency.check_predictions`). Nothing existing
    is overwritten, and a seed already stored for the same row (protocol version, detector config,
    how the run was made) is refused. The stored result gains ``protocol.definition`` (the resolved
    protocol, so later builds need no registry) and a portable ``command`` whose ``--protocol`` is
    the registered name. ``run_dir`` may also be the results.json file itself. ``run_id`` stores the
    run under another id than its directory's (a grid cell's ``s0`` is only unique within its grid):
    the result's ``run_id`` and its predictions' ``run_id`` column become it, and ``run_dir_name``
    keeps the old one. Returns the json path.
    """
    run = load_run_dir(Path(run_dir))
    if run_id is not None:
        check_component(run_id, "Leaderboard run id", "choose another")
    proto = run.protocol
    definition = _registered_definition(run.path, proto)
    recorded = proto.get("definition")  # what the run itself resolved, from its config.yaml
    if recorded is not None and not same_definition(recorded, definition):
        raise LeaderboardError(f"{run.path.parent / 'config.yaml'} records a protocol that differs from the "
                               f"registered {proto['name']} v{proto['version']} with the same hash; the run "
                               "directory was edited, so rerun it.")
    if run.predictions is None:
        raise LeaderboardError(f"{run.path.parent} has no predictions/ folder; the leaderboard needs each "
                               "image's score for its intervals, so submit the whole run directory.")
    check_predictions_hash(run.result, run.predictions, list(proto["tests"]))
    stored_id = run_id or run.result["run_id"]
    dest = Path(leaderboard_dir, "results", proto["name"], run.detector["name"], f"{stored_id}.json")
    preds = dest.with_name(dest.stem + PREDICTIONS_SUFFIX)
    if dest.exists() or preds.exists():
        raise LeaderboardError(f"{dest} already exists; a run is submitted once, so delete it (and "
                               f"{preds.name}) first to replace it.")
    _refuse_stored_seed(run, dest.parent)
    predictions = run_predictions_text(run.predictions, list(proto["tests"]))
    check_predictions(predictions_frame(io.StringIO(predictions), run.predictions), run.result, run.predictions)
    raw = json.loads(run.path.read_text(encoding="utf-8"))
    if stored_id != raw["run_id"]:
        predictions = _renamed(predictions, stored_id)
        raw["run_dir_name"], raw["run_id"] = raw["run_id"], stored_id
    raw["command"] = registered_command(portable_command(raw.get("command", "")), proto["name"])
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


def _renamed(predictions: str, run_id: str) -> str:
    """Predictions CSV text with its ``run_id`` column (schema 2 on) set to ``run_id``; other cells verbatim."""
    rows = list(csv.reader(io.StringIO(predictions)))
    if "run_id" not in rows[0]:
        return predictions
    column = rows[0].index("run_id")
    for row in rows[1:]:
        row[column] = run_id
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue()


def check_predictions_hash(result: dict[str, Any], folder: Path, tests: list[str]) -> None:
    """The predictions files must be the ones the run wrote: their hashes equal ``predictions_sha256``.

    Results of schema versions before :data:`PREDICTIONS_HASH_SCHEMA` recorded no hash and are
    accepted without this check (their metrics are still recomputed from the predictions).
    """
    if result.get("schema_version", 0) < PREDICTIONS_HASH_SCHEMA:
        return
    recorded = result.get("predictions_sha256")
    if not isinstance(recorded, dict):
        raise LeaderboardError(f"{folder.parent / 'results.json'} has no predictions_sha256 although its schema "
                               f"({result.get('schema_version')}) records one; the file was edited, so rerun the run.")
    for test in tests:
        path = folder / f"{test}.csv.gz"
        if not path.is_file():
            continue  # named by run_predictions_text, with its own sentence
        try:
            found = predictions_sha256(path)
        except (OSError, EOFError) as err:
            raise LeaderboardError(f"{path} cannot be read as gzip ({err}); rerun the run.") from None
        if found != recorded.get(test):
            raise LeaderboardError(f"{path} is not the predictions file the run wrote (sha256 {found[:12]}, "
                                   f"results.json records {str(recorded.get(test))[:12]}); it was edited after the "
                                   "run, so restore it or rerun.")


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


def _refuse_stored_seed(run: Run, folder: Path) -> None:
    """A leaderboard row counts each seed once: refuse a second run of a seed already stored for the row."""
    det, proto = run.detector, run.protocol
    mine = (proto["version"], det["config_sha256"], row_kind(run.result), run.result["seed"])
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        other = read_result(path)
        theirs = (other["protocol"]["version"], other["detector"]["config_sha256"], row_kind(other), other["seed"])
        if theirs == mine:
            raise LeaderboardError(
                f"{path} already holds seed {run.result['seed']} of {det['name']} (config "
                f"{det['config_sha256'][:8]}) on {proto['name']} v{proto['version']}; a row counts each seed once, "
                f"so delete that file and its {PREDICTIONS_SUFFIX} to replace it, or submit another seed."
            )


def registered_command(command: str, name: str) -> str:
    """``command`` with the value of ``--protocol`` (a local file path, say) replaced by the registered ``name``.

    Only called once the run's protocol was checked to be the registered one (same name and hash),
    so the committed command reruns it on any machine. Prefixes argparse accepts (``--proto``) count too.
    """
    words, out, replace_next = command.split(), [], False
    for word in words:
        flag, eq, _ = word.partition("=")
        if replace_next:
            out.append(name)
            replace_next = False
        elif len(flag) >= _SHORTEST and _PROTOCOL_FLAG.startswith(flag):
            out.append(f"{_PROTOCOL_FLAG}={name}" if eq else _PROTOCOL_FLAG)
            replace_next = not eq
        else:
            out.append(word)
    return " ".join(out)

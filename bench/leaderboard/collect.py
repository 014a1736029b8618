"""Reading stored results: one validated :class:`Run` per result file, how it was made, its predictions.

Result files are ``results.json`` of schema 1, 2 or 3 (see ``bench/run/results.py``). Schema 2 records how
a run was made in ``origin``; for schema 1 it is derived here from ``runner`` and ``skipped_images``. Schema 3
adds the validation threshold, the deployment metrics, ``cost`` and distinct group counts.
Nothing here imports torch.
"""

from __future__ import annotations

import gzip
import io
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.errors import BenchError
from bench.run.results import READABLE_SCHEMAS

SCHEMAS = READABLE_SCHEMAS
#: Suffix of a committed run's predictions, beside its ``<run_id>.json``.
PREDICTIONS_SUFFIX = ".predictions.csv.gz"
#: Columns every predictions file has; ``test_set`` is added when a run's files are combined.
PREDICTION_COLUMNS = ["index", "source", "id", "subset", "group", "label", "score"]
_SAFE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_REQUIRED = {
    "": ["schema_version", "run_id", "status", "partial", "protocol", "detector", "seed", "metrics", "groups"],
    "protocol": ["name", "version", "sha256", "primary", "tests", "groups"],
    "detector": ["name", "config_sha256", "params_trainable"],
}


class LeaderboardError(BenchError):
    """A result file cannot be submitted, or the stored result files cannot be ranked."""


@dataclass
class Run:
    """One finished run: its result file, the parsed results, how it was made, and its predictions file."""

    path: Path
    result: dict[str, Any]
    predictions: Path | None = None
    #: Set by ``bench report`` on a published run whose ``detector/run_id`` a reported (other) run also has.
    alias: str = ""

    @property
    def key(self) -> str:
        """``detector/run_id`` (plus ``#alias``): unique within a protocol (run ids are only unique per detector)."""
        key = f"{self.result['detector']['name']}/{self.result['run_id']}"
        return f"{key}#{self.alias}" if self.alias else key

    @property
    def protocol(self) -> dict[str, Any]:
        return self.result["protocol"]

    @property
    def detector(self) -> dict[str, Any]:
        return self.result["detector"]

    @property
    def origin(self) -> dict[str, Any]:
        return origin_of(self.result)

    @property
    def overrides(self) -> dict[str, Any]:
        return overrides_of(self.result)


def read_result(path: Path, allow_partial: bool = False) -> dict[str, Any]:
    """Read and validate one result file; refuse incomplete or foreign files, and partial ones unless allowed."""
    try:
        result = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LeaderboardError(f"{path} is not readable JSON ({exc}); restore it from its run.") from exc
    for section, keys in _REQUIRED.items():
        obj = result.get(section) if section and isinstance(result, dict) else result
        missing = [k for k in keys if not isinstance(obj, dict) or k not in obj]
        if missing:
            key = f"{section}.{missing[0]}" if section else missing[0]
            raise LeaderboardError(f"{path} has no '{key}'; it is not a bench results.json.")
    proto = result["protocol"]
    reasons = "; ".join(map(str, result.get("partial_reasons") or [])) or "none recorded"
    names = (proto["name"], result["detector"]["name"], result["run_id"])
    if result["schema_version"] not in SCHEMAS:
        raise LeaderboardError(f"{path} has schema_version {result['schema_version']!r}, but this bench reads "
                               f"{' and '.join(map(str, SCHEMAS))}; upgrade forgery-bench.")
    if result["partial"] and not allow_partial:
        raise LeaderboardError(f"{path} is a partial run ({reasons}); rerun it fully before ranking it.")
    if result["status"] != "complete":
        raise LeaderboardError(f"{path} has status {result['status']!r}; only complete runs can be ranked.")
    if not isinstance(proto["version"], int):
        raise LeaderboardError(f"{path} has protocol version {proto['version']!r}; versions are integers.")
    if not all(isinstance(n, str) and _SAFE.match(n) for n in names):
        raise LeaderboardError(f"{path} has names {names} unfit for file names; rename them.")
    return result


def origin_of(result: dict[str, Any]) -> dict[str, Any]:
    """``{"kind", "rankable", "reasons"}``: recorded (schema 2) or derived from the runner settings (schema 1).

    Only runs trained under the protocol with nothing skipped are rankable; eval-only runs, warm
    starts and runs with skipped images are shown apart, with these reasons.
    """
    recorded = result.get("origin")
    if isinstance(recorded, dict) and "kind" in recorded:
        return {"kind": str(recorded["kind"]), "rankable": bool(recorded.get("rankable")),
                "reasons": [str(r) for r in recorded.get("reasons") or []]}
    runner = result.get("runner") or {}
    checkpoint = Path(str(runner.get("checkpoint") or "")).name  # never a machine path on a page
    reasons, kind = [], "protocol"
    if runner.get("eval_only"):
        kind = "eval_only"
        reasons.append(f"eval-only: weights from {checkpoint or 'a checkpoint'}")
    elif runner.get("checkpoint"):
        kind = "warm_start"
        reasons.append(f"warm start from {checkpoint}")
    skipped = int((result.get("skipped_images") or {}).get("count") or 0)
    if skipped:
        reasons.append(f"{skipped} images skipped with --skip-bad-images")
    return {"kind": kind, "rankable": kind == "protocol" and not skipped, "reasons": reasons}


def row_kind(result: dict[str, Any]) -> str:
    """What separates rows of one detector config: ``protocol`` for rankable runs, else the origin and reasons.

    A leaderboard row holds each seed once, so two runs with the same protocol version, config hash,
    row kind and seed cannot both be stored (``submit`` refuses the second, ``build`` names both).
    """
    origin = origin_of(result)
    return "protocol" if origin["rankable"] else origin["kind"] + "|" + "; ".join(origin["reasons"])


def overrides_of(result: dict[str, Any]) -> dict[str, Any]:
    """The user's ``-o`` settings: recorded (schema 2) or parsed from the recorded command (schema 1)."""
    recorded = result["detector"].get("overrides")
    if isinstance(recorded, dict):
        return dict(recorded)
    try:
        words = shlex.split(str(result.get("command") or ""))
    except ValueError:
        words = str(result.get("command") or "").split()
    found: dict[str, Any] = {}
    for i, word in enumerate(words):
        if word in ("-o", "--override") and i + 1 < len(words):
            text = words[i + 1]
        elif word.startswith("--override="):
            text = word.split("=", 1)[1]
        elif word.startswith("-o") and len(word) > 2 and word != "-o":
            text = word[2:]
        else:
            continue
        key, _, value = text.partition("=")
        found[key] = value
    return found


def overrides_in_words(overrides: dict[str, Any]) -> str:
    """``lr = 0.0003, rrm = false`` or a sentence saying there were none."""
    if not overrides:
        return "none (the detector's defaults with the protocol's detector_defaults)"
    return ", ".join(f"{k} = {json.dumps(v) if not isinstance(v, str) else v}" for k, v in overrides.items())


def load_dir(leaderboard_dir: Path) -> list[Run]:
    """Every result file under ``leaderboard_dir/results/<protocol>/<detector>/``, validated and placed."""
    runs = []
    for path in sorted((Path(leaderboard_dir) / "results").glob("*/*/*.json")):
        result = read_result(path)
        proto, det = result["protocol"]["name"], result["detector"]["name"]
        if (proto, det) != (path.parent.parent.name, path.parent.name):
            raise LeaderboardError(f"{path} is a result of {proto}/{det}; move it to results/{proto}/{det}/.")
        if path.stem != result["run_id"]:
            raise LeaderboardError(f"{path} holds run {result['run_id']!r}; name it {result['run_id']}.json.")
        preds = path.with_name(path.stem + PREDICTIONS_SUFFIX)
        runs.append(Run(path, result, preds if preds.is_file() else None))
    return runs


def load_run_dir(run_dir: Path, allow_partial: bool = False) -> Run:
    """A run directory (``results.json`` + ``predictions/<test>.csv.gz``) as a :class:`Run`.

    The protocol its ``config.yaml`` recorded becomes ``protocol.definition`` (checked against the
    hash wherever it is used).
    """
    from bench.run.results import INCOMPLETE

    path = Path(run_dir)
    path = path if path.is_file() else path / "results.json"
    if (path.parent / INCOMPLETE).exists():
        raise LeaderboardError(f"{path.parent} is an unfinished run (it has an {INCOMPLETE} marker); finish it "
                               f"with `bench run --resume {path.parent}` first.")
    if not path.is_file():
        raise LeaderboardError(f"{path} does not exist; pass the directory of a finished run.")
    result = read_result(path, allow_partial)
    config = path.parent / "config.yaml"
    if config.is_file() and "definition" not in result["protocol"]:
        from bench.inputs import read_yaml

        recorded = (read_yaml(config, "Run config") or {}).get("protocol")
        if isinstance(recorded, dict):
            result["protocol"]["definition"] = recorded
    preds = path.parent / "predictions"
    return Run(path, result, preds if preds.is_dir() else None)


def run_predictions_text(pred_dir: Path, tests: list[str]) -> str:
    """One CSV text of a run directory's ``predictions/<test>.csv.gz`` files, with a ``test_set`` column.

    Cells are copied verbatim (scores keep the digits the run wrote); files that lack ``test_set``
    (schema-1 runs) get it as their first column. Every test set must have its file.
    """
    missing = [t for t in tests if not (pred_dir / f"{t}.csv.gz").is_file()]
    if missing:
        raise LeaderboardError(f"{pred_dir} has no {missing[0]}.csv.gz; the run's predictions are incomplete, "
                               "so rerun it (the leaderboard needs every test set's scores).")
    header, lines = None, []
    for test in tests:
        with gzip.open(pred_dir / f"{test}.csv.gz", "rt", encoding="utf-8", newline="") as fh:
            rows = fh.read().splitlines()
        if not rows:
            raise LeaderboardError(f"{pred_dir / test}.csv.gz is empty; rerun the run.")
        if header is None:
            header = rows[0]
        elif rows[0] != header:
            raise LeaderboardError(f"{pred_dir / test}.csv.gz has columns {rows[0]!r}, unlike {header!r}.")
        lines += rows[1:] if "test_set" in header.split(",") else [f"{test},{row}" for row in rows[1:]]
    labelled = "test_set" in str(header).split(",")
    return "\n".join([header if labelled else f"test_set,{header}", *lines]) + "\n"


def write_gzip_text(path: Path, text: str) -> None:
    """Write ``text`` gzip-compressed with a zero timestamp, so equal text gives equal bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    path.write_bytes(buffer.getvalue())

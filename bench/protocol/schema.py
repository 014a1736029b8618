"""The protocol schema: strict pydantic models of a protocol YAML and its canonical hash.

A protocol owns the data and the evaluation: sources, train/val/test splits, groups, metrics, the
primary metric, the training budget, seeds, and optional ``detector_defaults`` (the benchmark's
reference backbone and image size, overridable with ``-o``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bench.errors import ConfigError, did_you_mean
from bench.metrics import METRIC_NAMES


class _Located(ValueError):
    """A schema error that knows the key path it belongs to, so the message can give that key's line."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Perturb(_Strict):
    """A deterministic degradation: JPEG quality, Gaussian blur sigma, down-scaling factor (applied in that order)."""

    jpeg: int | None = Field(default=None, ge=1, le=100)
    blur: float | None = Field(default=None, gt=0)
    downscale: float | None = Field(default=None, gt=0, lt=1)


class Split(_Strict):
    """Rows of one split of one source, optionally restricted to some subsets."""

    source: str
    split: str
    subsets: list[str] | None = None
    #: Keep at most this many images per class (sampled with ``sample_seed``; the ids are stored).
    max_per_class: int | None = Field(default=None, gt=0)
    sample_seed: int = 0
    #: Frame datasets: keep this many frames per video (``group``), evenly spaced over the video.
    frames_per_group: int | None = Field(default=None, gt=0)
    #: Degradation applied to real and fake alike, deterministic per image (robustness variants).
    perturb: Perturb | None = None
    #: Applied to fakes only, e.g. ``{jpeg: 96}`` to re-encode PNG fakes like JPEG reals (GenImage format bias).
    fake_perturb: Perturb | None = None


class ValSplit(Split):
    """The held-out split of the training domain used for checkpoint selection."""

    select: str = "best:auc"

    @field_validator("select")
    @classmethod
    def _check_select(cls, value: str) -> str:
        try:
            return check_select(value)
        except ConfigError as err:
            raise ValueError(str(err)) from None


class PairedTest(_Strict):
    """A test set whose reals and fakes come from different places (a shared real pool)."""

    real: Split
    fake: Split
    perturb: Perturb | None = None


class Budget(_Strict):
    """Upper bounds the runner enforces whatever the detector asks for."""

    max_epochs: int | None = Field(default=None, gt=0)
    max_steps: int | None = Field(default=None, gt=0)


class Protocol(_Strict):
    """A benchmark protocol (one YAML file)."""

    name: str
    version: int = Field(ge=1)
    description: str
    sources: dict[str, str | dict[str, Any]]
    detector_defaults: dict[str, Any] = Field(default_factory=dict)
    train: Split
    val: ValSplit
    test: dict[str, Split | PairedTest]
    groups: dict[str, list[str]] = Field(default_factory=dict)
    metrics: list[Literal["auc", "ap", "eer", "acc", "video_auc", "oracle_acc"]]
    primary: str
    budget: Budget = Budget()
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)

    @model_validator(mode="after")
    def _check_references(self) -> Protocol:
        for where, split in self.splits():
            if split.source not in self.sources:
                raise _Located((*where, "source"), f"{'.'.join(where)} uses source {split.source!r}, which is not "
                               f"under `sources`.{did_you_mean(split.source, self.sources)}")
        for test_name in self.test:
            if test_name in ("train", "val") or "/" in test_name:
                raise _Located(("test", test_name), f"test set name {test_name!r} is reserved or contains '/'; "
                               "rename it")
        for group, members in self.groups.items():
            if group in self.test:
                raise _Located(("groups", group), f"group {group!r} has the same name as a test set; rename one")
            for i, member in enumerate(members):
                if member not in self.test:
                    raise _Located(("groups", group, i), f"group {group!r} lists {member!r}, which is not a test "
                                   f"set.{did_you_mean(member, self.test)}")
        metric, _, target = self.primary.partition("@")
        if metric not in self.metrics:
            raise _Located(("primary",), f"primary {self.primary!r} uses metric {metric!r}, which is not in `metrics`")
        if target not in self.groups and target not in self.test:
            raise _Located(("primary",), f"primary {self.primary!r} names {target!r}, which is neither a group nor "
                           "a test set")
        return self

    def splits(self) -> list[tuple[tuple[str, ...], Split]]:
        """Every split with its key path: train, val, and each test set's (or its real and fake parts)."""
        out: list[tuple[tuple[str, ...], Split]] = [(("train",), self.train), (("val",), self.val)]
        for name, test in self.test.items():
            parts = [("real", test.real), ("fake", test.fake)] if isinstance(test, PairedTest) else [(None, test)]
            out += [(("test", name, part) if part else ("test", name), split) for part, split in parts]
        return out

    def sha256(self) -> str:
        """Canonical hash: sha256 of the schema-normalised protocol as sorted JSON."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def check_select(value: str) -> str:
    """Validate a selection rule: ``last`` or ``best:<metric>``."""
    if value == "last":
        return value
    kind, _, metric = value.partition(":")
    # video_auc needs videos, acc_val_thr a threshold chosen on the very split being selected on.
    usable = [m for m in METRIC_NAMES if m not in ("video_auc", "acc_val_thr")]
    if kind != "best" or metric not in usable:
        raise ConfigError(f"select must be 'last' or 'best:<metric>' with a metric from "
                         f"{', '.join(usable)}; got {value!r}")
    return value

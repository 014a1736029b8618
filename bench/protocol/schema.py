"""The protocol schema: strict pydantic models of a protocol YAML and its canonical hash.

A protocol owns the data and the evaluation: sources, train/val/test splits, groups, metrics, the
primary metric, the training budget, seeds, and optional ``detector_defaults`` (the benchmark's
reference backbone and image size, overridable with ``-o``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from bench.errors import ConfigError, did_you_mean
from bench.inputs import check_component, check_seeds
from bench.metrics import METRIC_NAMES
from bench.protocol.hashing import canonical_sha256
from bench.protocol.perturb import Perturb
from bench.protocol.rounds import Rounds
from bench.protocol.rounds import check as check_rounds
from bench.protocol.rounds import expand as expand_rounds


class _Located(ValueError):
    """A schema error that knows the key path it belongs to, so the message can give that key's line."""

    def __init__(self, path: tuple, message: str):
        super().__init__(message)
        self.path = path


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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
    #: Test sets only: an in-domain sanity set, allowed to share images with train or val, never ranked on.
    #: Left out of the dump while false, so protocols without it keep their hash.
    sanity: bool = Field(default=False, exclude_if=lambda v: not v)


def _select_rule(value: str) -> str:
    """A validation set's ``select`` rule, checked (the schema reports the one sentence at its key)."""
    try:
        return check_select(value)
    except ConfigError as err:
        raise ValueError(str(err)) from None


class ValSplit(Split):
    """The held-out split of the training domain used for checkpoint selection."""

    select: str = "best:auc"

    _check_select = field_validator("select")(lambda value: _select_rule(value))


class PairedTest(_Strict):
    """Reals and fakes from different places: a test set with a shared real pool, or a training set
    whose fakes are released apart from their reals (DF40's fakes, FF++'s reals)."""

    real: Split
    fake: Split
    perturb: Perturb | None = None
    #: An in-domain sanity set, allowed to share images with train or val, never ranked on.
    sanity: bool = Field(default=False, exclude_if=lambda v: not v)


class PairedVal(PairedTest):
    """A validation set whose reals and fakes come from different places, plus the selection rule."""

    select: str = "best:auc"

    _check_select = field_validator("select")(lambda value: _select_rule(value))


def _shape(value: Any) -> str:
    """``Paired`` for a mapping with ``real`` or ``fake`` (or a paired model), else ``Split``: errors then name
    the keys of the shape the user wrote, not of the other one."""
    paired = isinstance(value, PairedTest) or (isinstance(value, dict) and ("real" in value or "fake" in value))
    return "Paired" if paired else "Split"


#: A train or test split: one source, or reals and fakes from two.
SplitOrPair = Annotated[Annotated[Split, Tag("Split")] | Annotated[PairedTest, Tag("Paired")], Discriminator(_shape)]
ValOrPair = Annotated[Annotated[ValSplit, Tag("Split")] | Annotated[PairedVal, Tag("Paired")], Discriminator(_shape)]
_SPLIT_OR_PAIR = TypeAdapter(SplitOrPair)


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
    train: SplitOrPair
    val: ValOrPair
    #: Generated from ``rounds`` in a temporal protocol (:mod:`bench.protocol.rounds`).
    test: dict[str, SplitOrPair] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    metrics: list[Literal["auc", "ap", "eer", "acc", "video_auc", "oracle_acc"]]
    primary: str
    budget: Budget = Budget()
    seeds: list[StrictInt] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    #: ``detector``: test images go through each detector's own eval transform; ``native``: at their stored
    #: size, uncropped (CNNDetection's ``--no_crop``), which the runner must apply (see ``resolve_all``).
    test_resolution: Literal["detector", "native"] = "detector"
    #: A temporal protocol: generators in release order, trained and tested window by window.
    rounds: Rounds | None = None

    @model_validator(mode="before")
    @classmethod
    def _expand_rounds(cls, data: Any) -> Any:
        data = expand_rounds(data)
        template = (data.get("rounds") or {}).get("test") if isinstance(data, dict) else None
        try:
            if isinstance(template, dict):
                _SPLIT_OR_PAIR.validate_python(template)
        except ValidationError as err:
            first = err.errors()[0]
            loc = tuple(p for p in first["loc"] if not (isinstance(p, str) and p[:1].isupper()))
            raise _Located(("rounds", "test", *loc), first["msg"].removeprefix("Value error, ")) from None
        return data

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        return _as_value_error(check_component, value, "protocol name", "rename the protocol and its file")

    @field_validator("seeds")
    @classmethod
    def _check_seeds(cls, value: list[int]) -> list[int]:
        return _as_value_error(check_seeds, value, "the list")

    @model_validator(mode="after")
    def _check_references(self) -> Protocol:
        if self.rounds is not None:
            problem = check_rounds(self.model_dump(mode="json"), self.rounds, self.groups, type(self).model_validate)
            if problem:
                raise _Located(*problem)
        elif not self.test:
            raise _Located(("test",), "a protocol needs at least one test set")
        for where, split in self.splits():
            if split.source not in self.sources:
                raise _Located((*where, "source"), f"{'.'.join(where)} uses source {split.source!r}, which is not "
                               f"under `sources`.{did_you_mean(split.source, self.sources)}")
        for where, split in self.splits():
            if split.sanity and where[0] != "test" or split.sanity and where[-1] in ("real", "fake"):
                raise _Located((*where, "sanity"), "`sanity` marks a whole test set (an in-domain sanity check), "
                               f"not {'.'.join(where)}; move it there or remove it")
        for test_name in self.test:
            if test_name in ("train", "val") or "/" in test_name:
                raise _Located(("test", test_name), f"test set name {test_name!r} is reserved or contains '/'; "
                               "rename it")
            _as_value_error(check_component, test_name, "test set name", "rename it", path=("test", test_name))
        if self.rounds is None:  # a temporal protocol's rounds each checked theirs (check_rounds)
            self._check_held_out()
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
        sanity = [t for t in self.groups.get(target, [target]) if self.test[t].sanity]
        if sanity:
            raise _Located(("primary",), f"primary {self.primary!r} would rank on {sanity[0]!r}, a sanity test set "
                           "that shares images with training; rank on held-out test sets only")
        return self

    def _check_held_out(self) -> None:
        """A test set that reads the images of train or val (same source, split and subsets) must say ``sanity``.

        This is what can be seen without data; ``bench run`` also compares the files themselves.
        """
        for name, test in self.test.items():
            if test.sanity:
                continue
            parts = [test.real, test.fake] if isinstance(test, PairedTest) else [test]
            for used, spec in (("train", self.train), ("val", self.val)):
                held = [spec.real, spec.fake] if isinstance(spec, PairedTest) else [spec]
                split = next((s for s in held if any(self._same_images(part, s) for part in parts)), None)
                if split is not None:
                    subsets = ", ".join(split.subsets) if split.subsets else "all subsets"
                    raise _Located(("test", name), f"test set {name!r} reads the images of {used} (source "
                                   f"{split.source!r}, split {split.split!r}, {subsets}), so it is not held out; "
                                   "point it at another split, or mark it `sanity: true` (an in-domain sanity "
                                   "set, reported but never ranked on)")

    def _same_images(self, a: Split, b: Split) -> bool:
        if self.sources[a.source] != self.sources[b.source] or a.split != b.split:
            return False
        return a.subsets is None or b.subsets is None or bool(set(a.subsets) & set(b.subsets))

    def splits(self) -> list[tuple[tuple[str, ...], Split]]:
        """Every split with its key path: train, val, and each test set's (or their real and fake parts)."""
        out: list[tuple[tuple[str, ...], Split]] = []
        named = [(("train",), self.train), (("val",), self.val)]
        named += [(("test", name), test) for name, test in self.test.items()]
        for where, spec in named:
            parts = [("real", spec.real), ("fake", spec.fake)] if isinstance(spec, PairedTest) else [(None, spec)]
            out += [((*where, part) if part else where, split) for part, split in parts]
        return out

    def sha256(self) -> str:
        """Canonical hash: sha256 of the schema-normalised protocol as sorted JSON.

        Keys added to the schema later are left out while they hold their default, so a protocol
        written before them (and every stored result's definition) keeps its hash.
        """
        return canonical_sha256(self.model_dump(mode="json"))


def _as_value_error(check, value, *args, path: tuple | None = None):
    """Run a ``bench.inputs`` check inside a pydantic validator: its ConfigError becomes the field's error."""
    try:
        return check(value, *args)
    except ConfigError as err:
        message = str(err).rstrip(".")
        raise (_Located(path, message) if path else ValueError(message)) from None


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

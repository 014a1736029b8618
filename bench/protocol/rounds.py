"""Temporal protocols: generators in release order, cut into windows; one round per window but the last.

Round k (1-based) trains on the windows the protocol says (``cumulative``: windows 1..k;
``sliding``: window k alone), selects on the same windows' validation data, and tests on the
next window (the *next period*, test set ``r<k>_next``) and on every window released up to the
one it trained on (*growing*, ``r<k>_growing``; AI-GenBench's ``growing``). With ``init: fresh``
every round starts from the detector as built; with ``continued`` from the weights the previous
round selected.

A protocol file gives ``train`` and ``val`` and the rounds' ``test`` split without subsets; the
rounds set ``subsets`` (on the fake side of a ``{real, fake}`` pair). The protocol's ``test`` sets
and its groups ``next`` and ``growing`` are generated from the rounds, so the leaderboard's usual
machinery ranks ``auc@next``, the mean next-period AUC over rounds, and bootstraps it per test set.

This module works on the protocol's plain (JSON) form; the schema validates what it generates.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: The generated groups: the next-period test sets and the growing ones, one per round.
GROUPS = ("next", "growing")


class Rounds(BaseModel):
    """The ``rounds`` block of a temporal protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: Generators (the sources' subsets) in release order.
    order: list[str] = Field(min_length=2)
    #: Generators per window; the last window may hold fewer.
    window: int = Field(gt=0)
    #: ``cumulative``: round k trains on windows 1..k; ``sliding``: on window k alone.
    training: Literal["cumulative", "sliding"] = "cumulative"
    #: ``fresh``: every round starts from the detector as built; ``continued``: from the previous round's weights.
    init: Literal["fresh", "continued"] = "fresh"
    #: The split the next-period and growing test sets read (subsets left to the rounds).
    test: dict[str, Any]

    @field_validator("order")
    @classmethod
    def _once(cls, order: list[str]) -> list[str]:
        seen = [g for i, g in enumerate(order) if g in order[:i]]
        if seen:
            raise ValueError(f"order lists {seen[0]!r} twice; a generator is released once, so list it once")
        return order

    @model_validator(mode="after")
    def _check(self) -> Rounds:
        if len(self.order) <= self.window:
            raise ValueError(f"order holds {len(self.order)} generators, one window of {self.window}: a round "
                             "needs a later window to test on, so list more generators or make the window smaller")
        return self

    def windows(self) -> list[list[str]]:
        """The windows, in release order."""
        return [self.order[i:i + self.window] for i in range(0, len(self.order), self.window)]

    def plans(self) -> list[RoundPlan]:
        """One plan per round: what it trains on, its next period and its growing set."""
        windows = self.windows()
        out = []
        for k in range(1, len(windows)):
            trained = windows[:k] if self.training == "cumulative" else windows[k - 1:k]
            out.append(RoundPlan(k, tuple(g for w in trained for g in w), tuple(windows[k]),
                                 tuple(g for w in windows[:k] for g in w)))
        return out


@dataclass(frozen=True)
class RoundPlan:
    """Round ``index`` (1-based): its training generators, its next period and its growing set."""

    index: int
    train: tuple[str, ...]
    next: tuple[str, ...]
    growing: tuple[str, ...]

    @property
    def tests(self) -> dict[str, str]:
        """``{"next": "r<k>_next", "growing": "r<k>_growing"}``: this round's test-set names."""
        return {kind: f"r{self.index}_{kind}" for kind in GROUPS}

    def summary(self) -> dict[str, Any]:
        """What results.json records of the round's data."""
        return {"round": self.index, "train": list(self.train), "next": list(self.next),
                "growing": list(self.growing), "tests": self.tests}


def with_subsets(spec: dict[str, Any], subsets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """``spec`` (a split, or a ``{real, fake}`` pair) with ``subsets`` set (on the fake side of a pair)."""
    out = copy.deepcopy(dict(spec))
    if "real" in out or "fake" in out:
        out["fake"] = {**dict(out.get("fake") or {}), "subsets": list(subsets)}
    else:
        out["subsets"] = list(subsets)
    return out


def filled_side(spec: dict[str, Any]) -> tuple[str, ...]:
    """The key path (inside ``spec``) of the subsets the rounds (or a family) set."""
    return ("fake", "subsets") if "real" in spec or "fake" in spec else ("subsets",)


def generated(rounds: Rounds) -> tuple[dict[str, Any], dict[str, list[str]]]:
    """The protocol's ``test`` sets and the groups ``next`` and ``growing``, from its rounds."""
    tests, groups = {}, {kind: [] for kind in GROUPS}
    for plan in rounds.plans():
        for kind, name in plan.tests.items():
            tests[name] = with_subsets(rounds.test, getattr(plan, kind))
            groups[kind].append(name)
    return tests, groups


def expand(data: Any) -> Any:
    """A protocol mapping with ``test`` and the rounds' groups filled in (unchanged without valid rounds).

    A stored definition already holds them: the schema then checks they are the generated ones.
    """
    if not isinstance(data, dict) or data.get("rounds") is None:
        return data
    try:
        rounds = Rounds.model_validate(data["rounds"])
    except ValidationError:
        return data  # the schema reports it at its key
    tests, groups = generated(rounds)
    out = dict(data)
    out.setdefault("test", tests)
    out["groups"] = {**groups, **dict(out.get("groups") or {})}
    return out


def round_data(data: dict[str, Any], plan: RoundPlan) -> dict[str, Any]:
    """The plain protocol of one round: its training windows, their validation data, its two test sets."""
    out = {k: copy.deepcopy(v) for k, v in data.items() if k not in ("rounds", "test", "groups")}
    out["train"] = with_subsets(data["train"], plan.train)
    out["val"] = with_subsets(data["val"], plan.train)
    out["test"] = {name: copy.deepcopy(data["test"][name]) for name in plan.tests.values()}
    out["primary"] = f"{str(data['primary']).partition('@')[0]}@{plan.tests['next']}"
    return out


def check(data: dict[str, Any], rounds: Rounds, groups: dict[str, list[str]], build) -> tuple[tuple, str] | None:
    """The first problem of a temporal protocol (its JSON form) as ``(key path, message)``; None when sound.

    Templates must leave the subsets to the rounds; ``test`` and the groups ``next``/``growing`` must
    be the generated ones; and every round must be a valid protocol of its own (``build`` validates
    one round's mapping, raising ValueError), which checks that its tests are held out from its training.
    """
    for key, spec in (("train", data["train"]), ("val", data["val"]), ("rounds", {"test": rounds.test})):
        inner = spec["test"] if key == "rounds" else spec
        path = filled_side(inner)
        part = inner.get(path[0]) if len(path) == 2 else inner
        if isinstance(part, dict) and part.get("subsets") is not None:
            where = (key, *(["test"] if key == "rounds" else []), *path)
            return where, "the rounds set these subsets (the windows of `rounds.order`); remove them"
    tests, wanted = generated(rounds)
    if set(data["test"]) != set(tests):
        return ("test",), "a temporal protocol's test sets come from its rounds; remove `test`"
    for kind in GROUPS:
        if list(groups.get(kind) or []) != wanted[kind]:
            return ("groups", kind), (f"group {kind!r} is generated from the rounds ({', '.join(wanted[kind])}); "
                                      "remove it or rename yours")
    for plan in rounds.plans():
        try:
            built = build(round_data(data, plan))
        except ValueError as err:
            return ("rounds",), (f"round {plan.index} (train on {', '.join(plan.train)}) is not a valid protocol: "
                                 f"{_first_message(err)}")
        dumped = built.model_dump(mode="json")["test"]
        for name in plan.tests.values():
            if dumped[name] != data["test"][name]:
                return ("test", name), "differs from what the rounds generate; remove `test`"
    return None


def _first_message(err: ValueError) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"] if not (isinstance(p, str) and p[:1].isupper()))
        return f"{where}: {first['msg'].removeprefix('Value error, ')}"
    return str(err)


def round_protocols(proto: Any) -> list[tuple[RoundPlan | None, Any]]:
    """``[(plan, the round's own protocol)]`` of a protocol; one without rounds is its one round (plan None)."""
    if getattr(proto, "rounds", None) is None:
        return [(None, proto)]
    data = proto.model_dump(mode="json")
    return [(plan, type(proto).model_validate(round_data(data, plan))) for plan in proto.rounds.plans()]

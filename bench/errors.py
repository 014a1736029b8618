"""User-facing errors.

Every error a user can cause (bad config, missing data, bad images) is a :class:`BenchError`
whose message is one sentence naming the thing, where it is and how to fix it. The CLI prints
these without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class BenchError(Exception):
    """An error caused by input the user can fix; its message says how."""


class ConfigError(BenchError):
    """A protocol, detector config or CLI option is invalid."""


class DataError(BenchError):
    """Data is missing, malformed or unusable (for example a one-class test set)."""


class ImageError(DataError):
    """One or more image files cannot be decoded."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' Did you mean X?' for the closest choices, or '' when nothing is close."""
    close = difflib.get_close_matches(name, list(choices), n=3, cutoff=0.5)
    if not close:
        return ""
    return " Did you mean " + " or ".join(repr(c) for c in close) + "?"


class DetectorError(BenchError):
    """A detector broke the adapter contract, or produced outputs no metric may use (NaN, inf, divergence)."""

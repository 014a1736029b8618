"""A detector's ``Config`` built strictly from settings: unknown keys, types and ranges checked."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

from bench.errors import ConfigError, did_you_mean


def build_config(config_cls: type, values: dict[str, Any], where: str) -> Any:
    """Build a detector ``Config`` dataclass strictly: unknown keys fail with did-you-mean, types are checked."""
    from pydantic import TypeAdapter, ValidationError

    if not (isinstance(config_cls, type) and dataclasses.is_dataclass(config_cls)):
        raise ConfigError(f"The Config of {where} is not a dataclass; decorate it with @dataclass "
                          f"(bench validates its keys and types).")
    names = [f.name for f in dataclasses.fields(config_cls)]
    for key in values:
        if key not in names:
            raise ConfigError(
                f"Unknown setting {key!r} for {where}.{did_you_mean(key, names)} "
                f"Valid settings: {', '.join(names)} (see `bench show detector`)."
            )
    defaults = dataclasses.asdict(config_cls())
    try:
        config = TypeAdapter(config_cls).validate_python({**defaults, **values})
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(
            f"Setting {key!r} of {where} is invalid: {first['msg']} (got {first.get('input')!r})."
        ) from None
    check_ranges(config, where)
    return config


#: Largest ``image_size`` (pixels per side) a detector may ask for.
MAX_IMAGE_SIZE = 8192
#: Settings whose name fixes their range, whatever the detector: (test, what a valid value is).
_RANGES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: v >= 1, "a whole number >= 1"),
    # An upper bound too: 100,000 px would ask for 120 GB per image before anything could say why.
    "image_size": (lambda v: 1 <= v <= MAX_IMAGE_SIZE, f"a positive number of pixels, at most {MAX_IMAGE_SIZE}"),
    "lr": (lambda v: v > 0, "a positive finite number, e.g. 1e-4"),
    "weight_decay": (lambda v: v >= 0, "a finite number >= 0"),
}


def check_ranges(config: Any, where: str) -> None:
    """Reject settings no run can use, before any data or weights are touched.

    Every number must be finite; ``epochs`` >= 1, ``0 < image_size <= 8192``, ``lr`` > 0 and
    ``weight_decay`` >= 0 by name, whatever the detector; a list setting whose default holds values
    (a grid such as ``c_values``) must not be empty.
    """
    defaults = type(config)()
    for field_ in dataclasses.fields(config):
        value = getattr(config, field_.name)
        if isinstance(value, bool) or value is None:
            continue
        numbers = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and not value and getattr(defaults, field_.name):
            raise ConfigError(f"Setting {field_.name!r} of {where} is an empty list; give at least one value.")
        for number in numbers:
            if isinstance(number, float) and not math.isfinite(number):
                raise ConfigError(f"Setting {field_.name!r} of {where} is {number!r}; use a finite number.")
        test = _RANGES.get(field_.name)
        if test is not None and isinstance(value, (int, float)) and not test[0](value):
            raise ConfigError(f"Setting {field_.name!r} of {where} is {value!r}; use {test[1]}.")

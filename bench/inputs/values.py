"""Counts and seeds a user passes: checked against what the machine and the libraries can take.

- Seeds are whole numbers in ``0 .. 2**32 - 1`` (what numpy, torch and Python's ``random`` all
  accept), each once: ``--seeds 0,0`` would make two run directories for one seed.
- ``--threads`` is refused above the cores this process may use (libgomp crashes on absurd counts,
  and more threads than cores only wait); ``--workers`` above four loader processes per core.

A refusal is an error, not a silent clamp, so the recorded settings are always the ones used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from bench.errors import ConfigError

#: Largest seed: numpy's ``default_rng``/``RandomState`` and ``torch.manual_seed`` all take 32 bits.
SEED_MAX = 2**32 - 1
#: Loader worker processes allowed per usable core (I/O-bound loaders may want more than one).
WORKERS_PER_CORE = 4


def usable_cores() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's total)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def check_seeds(seeds: Iterable, where: str) -> list[int]:
    """Return ``seeds`` as ints when each is a whole number in ``0..2**32-1`` and none repeats."""
    out: list[int] = []
    for seed in seeds:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ConfigError(f"{where} has seed {seed!r}; seeds are whole numbers from 0 to {SEED_MAX}.")
        if not 0 <= seed <= SEED_MAX:
            raise ConfigError(f"{where} has seed {seed}, outside 0..{SEED_MAX} (2**32 - 1, what numpy and torch "
                              "accept); use a seed in that range.")
        if seed in out:
            raise ConfigError(f"{where} lists seed {seed} twice; a seed is one run, so list each once.")
        out.append(seed)
    if not out:
        raise ConfigError(f"{where} lists no seed; give at least one, e.g. 0.")
    return out


def check_threads(threads: int | None, flag: str = "--threads") -> int | None:
    """Return ``threads`` when it is None or 1..usable cores; else one ConfigError naming the bound."""
    if threads is None:
        return None
    cores = usable_cores()
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise ConfigError(f"{flag} must be a positive integer, got {threads!r}.")
    if threads > cores:
        raise ConfigError(f"{flag} {threads} is more than the {cores} core(s) this process may use; use at most "
                          f"{cores} (more threads than cores only wait for each other).")
    return threads


def check_workers(workers: int, flag: str = "--workers") -> int:
    """Return ``workers`` when it is at most :data:`WORKERS_PER_CORE` per usable core; else a ConfigError."""
    bound = WORKERS_PER_CORE * usable_cores()
    if workers > bound:
        raise ConfigError(f"{flag} {workers} is more than {WORKERS_PER_CORE} loader processes per core "
                          f"({bound} on the {usable_cores()} core(s) this process may use); use at most {bound}, "
                          "or auto.")
    return workers

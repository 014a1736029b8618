"""The held-out tenth: the images a release without a selection split keeps apart for checkpoint selection."""

from __future__ import annotations

import hashlib


def held_out(key: str) -> bool:
    """True for the tenth of keys a release without a validation split holds out for checkpoint selection.

    A fixed function of ``key`` alone (sha256), so every machine holds out the same images, and
    everything sharing a key (one FF++ identity across DF40 methods, one COCO id's real and fake)
    stays on one side.
    """
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") % 10 == 0

"""What training changes in a detector, loading it back strictly, and a fingerprint of weights.

Frozen pretrained weights are never saved (they are rebuilt from the config), so the trained state
of a ViT-L/14 linear probe is kilobytes. Loading is strict: a state from another detector or config
fails loudly, never a silent partial load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch
from torch import nn

from bench.errors import ConfigError


def trained_state(detector: nn.Module) -> dict[str, torch.Tensor]:
    """Trainable parameters and all buffers: everything training can change."""
    trainable = {name for name, p in detector.named_parameters() if p.requires_grad}
    buffers = {name for name, _ in detector.named_buffers()}
    return {k: v.detach().cpu().contiguous() for k, v in detector.state_dict().items() if k in trainable | buffers}


def load_trained_state(detector: nn.Module, state: dict[str, torch.Tensor], where: str,
                       metadata: dict[str, str] | None = None) -> None:
    """Load ``state`` into ``detector``; its keys and shapes must match the trained part exactly."""
    meta = metadata or {}
    expected = trained_state(detector)
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(f"Checkpoint {where} does not fit detector {meta.get('detector', type(detector).__name__)}: "
                          f"missing keys {missing[:5]}, unexpected keys {unexpected[:5]}.")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ConfigError(f"Checkpoint {where} key {key!r} has shape {tuple(value.shape)}, the detector "
                              f"expects {tuple(expected[key].shape)}.")
    detector.load_state_dict(state, strict=False)


def state_fingerprint(tensors: Mapping[str, torch.Tensor]) -> str:
    """sha256 of a state dict (names, dtypes, shapes, bytes): identifies a backbone's weights."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()

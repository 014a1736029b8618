"""Saving and loading what a run trained: trainable parameters and buffers, as safetensors.

Frozen pretrained weights are not saved (they are rebuilt from the config), so a checkpoint of a
ViT-L/14 linear probe is kilobytes, not gigabytes. Loading is strict: a checkpoint from another
detector or config fails loudly, never a silent partial load.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import torch
from torch import nn

from bench.errors import ConfigError
from bench.plugin.weights import trained_state
from bench.run.files import disk_error, make_dir, tensor_bytes

CHECKPOINT = Path("checkpoint") / "model.safetensors"


def save_checkpoint(detector: nn.Module, path: Path, metadata: dict[str, str], hint: str = "") -> Path:
    """Write ``trained_state(detector)`` to ``path`` with string ``metadata`` (detector name, config hash).

    Written under a temporary name and renamed; a failure to store it (disk full, ...) is one
    :class:`bench.run.files.DiskError` naming the file and the bytes it needs (``hint`` says what next).
    """
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    state = trained_state(detector)
    make_dir(path.parent, hint)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(state, str(tmp), metadata={k: str(v) for k, v in metadata.items()})
        os.replace(tmp, path)
    except (SafetensorError, OSError) as err:
        if isinstance(err, SafetensorError) and "os error" not in str(err).lower():
            raise  # not the file system: a bug, keep its traceback
        tmp.unlink(missing_ok=True)
        raise disk_error(path, err, tensor_bytes(state), hint or "free space there and try again") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def read_checkpoint(path: Path, safe_globals: tuple = ()) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Load a checkpoint file (safetensors, or a torch ``.pth``/``.pt`` state dict) or a run directory's.

    Torch files load with ``weights_only=True``; ``safe_globals`` are the exact non-tensor classes a
    released file may hold (a detector's ``checkpoint_globals``, e.g. ``argparse.Namespace``). A
    ``{"model": state_dict, ...}`` wrapper is unwrapped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        what = "is not a regular file" if path.exists() else "does not exist"
        raise ConfigError(f"Checkpoint {path} {what}; pass a run directory saved by `bench run` "
                          "or a .safetensors/.pth file.")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                # A safetensors handle, not a dict: keys() is its API.
                return {k: fh.get_tensor(k) for k in fh.keys()}, dict(fh.metadata() or {})  # noqa: SIM118
        except SafetensorError as err:
            raise ConfigError(f"Checkpoint {path} is not a readable safetensors file ({err}).") from None
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as err:
        raise ConfigError(f"Checkpoint {path} cannot be read as a PyTorch state dict ({type(err).__name__}); "
                          "check the file (a truncated download?) or pass a .safetensors file.") from None
    if isinstance(state, dict) and isinstance(state.get("model"), dict):
        state = state["model"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ConfigError(f"Checkpoint {path} is not a state dict of tensors.")
    return state, {}


def check_origin(metadata: dict[str, str], detector_info: dict, where: str) -> None:
    """A checkpoint saved by a run must come from the same detector and config as this run."""
    saved = metadata.get("config_sha256")
    if saved and saved != detector_info["config_sha256"]:
        raise ConfigError(f"Checkpoint {where} was trained as detector {metadata.get('detector')!r} with config "
                          f"{saved[:12]}, not this detector {detector_info['name']!r} with config "
                          f"{detector_info['config_sha256'][:12]}; use the same detector and -o settings as the "
                          "run that saved it (see its results.json).")


def metadata_for(spec_info: dict) -> dict[str, str]:
    """The metadata stored beside the tensors."""
    return {"detector": spec_info["name"], "config_sha256": spec_info["config_sha256"],
            "config": json.dumps(spec_info["config"], sort_keys=True, default=str)}

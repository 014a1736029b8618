"""Loading the authors' released checkpoint files strictly, and the key maps several detectors share.

A released file is read by :func:`bench.run.checkpoint.read_checkpoint` (``weights_only=True``, a
``{"model": ...}`` wrapper unwrapped); a detector's ``load_checkpoint`` renames its keys into the
detector's own names and hands them to :func:`load_exact`, which refuses any missing, unexpected or
mis-shaped tensor. Nothing is loaded partially.

``lukemelas_to_timm`` maps the names of ``efficientnet_pytorch`` (lukemelas) EfficientNets, the
library SBI and DeepfakeBench used, to timm's EfficientNet names (``tf_efficientnet_*``).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from bench.errors import ConfigError

#: Buffers a released file may lack without changing any output (older torchvision files omit them).
_OPTIONAL = ("num_batches_tracked",)


def load_exact(module: nn.Module, state: dict[str, Tensor], where: str, what: str) -> None:
    """Load ``state`` into ``module``: every key present, none extra, every shape equal.

    ``what`` names the format in errors (``"NPR's released state dict"``). Only BatchNorm's
    ``num_batches_tracked`` counters may be absent (they do not affect outputs; the module keeps its own).
    """
    expected = module.state_dict()
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith(_OPTIONAL))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConfigError(f"Checkpoint {where} does not match {what}: missing keys {missing[:5]}"
                          f"{' ...' if len(missing) > 5 else ''}, unexpected keys {unexpected[:5]}"
                          f"{' ...' if len(unexpected) > 5 else ''}; check that the file and the detector "
                          f"settings (backbone, head) are the ones the authors released.")
    for key, value in state.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ConfigError(f"Checkpoint {where} key {key!r} has shape {tuple(value.shape)}, but {what} "
                              f"needs {tuple(expected[key].shape)}; the detector settings do not match the file.")
    full = {**expected, **{k: v.to(expected[k].dtype) for k, v in state.items()}}
    module.load_state_dict(full, strict=True)


def rename_keys(state: dict[str, Tensor], rename: Callable[[str], str | None], where: str,
                what: str) -> dict[str, Tensor]:
    """Apply ``rename`` to every key; a key it maps to None is an error (nothing is dropped silently)."""
    out, unmapped = {}, []
    for key, value in state.items():
        new = rename(key)
        if new is None:
            unmapped.append(key)
        else:
            out[new] = value
    if unmapped:
        raise ConfigError(f"Checkpoint {where} has keys that {what} does not have: {sorted(unmapped)[:5]}; "
                          f"it is not a file of this format.")
    return out


def strip_prefix(state: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    """Remove ``prefix`` from every key when all keys carry it (DataParallel's ``module.``)."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


# -- lukemelas efficientnet_pytorch → timm EfficientNet ---------------------------------------------
_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2"}
# Inverted-residual blocks (expansion > 1) and the first stage's depthwise-separable blocks.
_IR = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
       "_se_reduce": "se.conv_reduce", "_se_expand": "se.conv_expand", "_project_conv": "conv_pwl", "_bn2": "bn3"}
_DS = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_se_reduce": "se.conv_reduce",
       "_se_expand": "se.conv_expand", "_project_conv": "conv_pw", "_bn2": "bn2"}


def lukemelas_to_timm(model: nn.Module) -> Callable[[str], str | None]:
    """A key renamer from lukemelas names (``_blocks.N._expand_conv.weight``) to ``model``'s timm names.

    lukemelas numbers blocks flat (``_blocks.0`` … ``_blocks.31`` for B4); timm nests them by stage
    (``blocks.i.j``); the flat index follows timm's stage order. ``_fc`` is not mapped (the detector's
    head reads it). Returns None for a key with no counterpart.
    """
    flat = [(i, j, type(block).__name__) for i, stage in enumerate(model.blocks) for j, block in enumerate(stage)]

    def rename(key: str) -> str | None:
        parts = key.split(".")
        if parts[0] in _TOP and len(parts) == 2:
            return f"{_TOP[parts[0]]}.{parts[1]}"
        if parts[0] != "_blocks" or len(parts) != 4 or not parts[1].isdigit() or int(parts[1]) >= len(flat):
            return None
        i, j, kind = flat[int(parts[1])]
        table = _DS if kind == "DepthwiseSeparableConv" else _IR
        return f"blocks.{i}.{j}.{table[parts[2]]}.{parts[3]}" if parts[2] in table else None

    return rename


def set_drop_path(model: nn.Module, rate: float) -> None:
    """Stochastic depth in a timm EfficientNet as lukemelas applies it: block k of n drops at ``rate·k/n``."""
    from timm.layers import DropPath

    blocks = [block for stage in model.blocks for block in stage]
    for k, block in enumerate(blocks):
        if hasattr(block, "drop_path") and getattr(block, "has_skip", False):
            r = rate * k / len(blocks)
            block.drop_path = DropPath(r) if r > 0 else nn.Identity()

"""Hugging Face CLIP vision-tower weights → open_clip ``VisionTransformer`` keys (released Effort, GenD).

Effort and GenD were trained on ``transformers``' ``CLIPVisionModel``; their released files hold its
parameter names. This maps them onto open_clip's image tower (detectors.md §3), strictly: every
source key must be consumed and every open_clip key that shapes the output must be produced.

| Hugging Face (``vision_model.``)                         | open_clip (``visual.``)                |
|----------------------------------------------------------|----------------------------------------|
| ``embeddings.class_embedding``                           | ``class_embedding``                    |
| ``embeddings.patch_embedding.weight``                    | ``conv1.weight``                       |
| ``embeddings.position_embedding.weight``                 | ``positional_embedding``               |
| ``pre_layrnorm`` (HF's spelling)                         | ``ln_pre``                             |
| ``encoder.layers.i.self_attn.{q,k,v}_proj``              | ``transformer.resblocks.i.attn.in_proj_{weight,bias}`` (q, k, v stacked) |
| ``encoder.layers.i.self_attn.out_proj``                  | ``transformer.resblocks.i.attn.out_proj`` |
| ``encoder.layers.i.layer_norm{1,2}``                     | ``transformer.resblocks.i.ln_{1,2}``    |
| ``encoder.layers.i.mlp.fc{1,2}``                         | ``transformer.resblocks.i.mlp.c_{fc,proj}`` |
| ``post_layernorm``                                       | ``ln_post``                            |
| ``visual_projection.weight`` [E, D] (outside the tower)  | ``proj`` [D, E], transposed            |
"""

from __future__ import annotations

import re

import torch
from torch import Tensor

from bench.errors import ConfigError

_FIXED = {
    "embeddings.class_embedding": "class_embedding",
    "embeddings.patch_embedding.weight": "conv1.weight",
    "embeddings.position_embedding.weight": "positional_embedding",
}
_RENAMES = [("pre_layrnorm.", "ln_pre."), ("post_layernorm.", "ln_post."), ("encoder.layers.", "transformer.resblocks."),
            (".self_attn.out_proj.", ".attn.out_proj."), (".layer_norm1.", ".ln_1."), (".layer_norm2.", ".ln_2."),
            (".mlp.fc1.", ".mlp.c_fc."), (".mlp.fc2.", ".mlp.c_proj.")]
_QKV = re.compile(r"^encoder\.layers\.(\d+)\.self_attn\.([qkv])_proj\.(weight|bias)$")
#: Buffers some ``transformers`` versions save; they carry no weights.
IGNORED = ("embeddings.position_ids",)


def hf_vision_to_open_clip(state: dict[str, Tensor], where: str, projection: Tensor | None = None) -> dict[str, Tensor]:
    """Map an HF vision tower's state (keys without the ``vision_model.`` prefix) to open_clip keys.

    ``projection`` is HF's ``visual_projection.weight`` if the file has one. Raises
    :class:`ConfigError` naming the first key that has no place, or a q/k/v triple that is incomplete.
    """
    out: dict[str, Tensor] = {}
    qkv: dict[tuple[int, str], dict[str, Tensor]] = {}
    for key, value in state.items():
        if key in IGNORED:
            continue
        if key in _FIXED:
            out[_FIXED[key]] = value
            continue
        match = _QKV.match(key)
        if match:
            layer, which, kind = match.groups()
            qkv.setdefault((int(layer), kind), {})[which] = value
            continue
        new = key
        for old, rep in _RENAMES:
            new = new.replace(old, rep)
        if new == key:
            raise ConfigError(f"Checkpoint {where} has key {key!r}, which is not part of a Hugging Face CLIP vision "
                              f"tower; is this the released file of this detector?")
        out[new] = value
    for (layer, kind), parts in sorted(qkv.items()):
        if set(parts) != {"q", "k", "v"}:
            raise ConfigError(f"Checkpoint {where} has only the {'/'.join(sorted(parts))} projection {kind} of "
                              f"attention layer {layer}; q, k and v are all needed.")
        out[f"transformer.resblocks.{layer}.attn.in_proj_{kind}"] = torch.cat([parts["q"], parts["k"], parts["v"]])
    if projection is not None:
        out["proj"] = projection.t().contiguous()
    return out


def load_open_clip_visual(visual: torch.nn.Module, mapped: dict[str, Tensor], where: str,
                          targets: dict[str, Tensor] | None = None) -> None:
    """Copy ``mapped`` into open_clip image tower ``visual``, every output-shaping key, shapes checked.

    ``targets`` maps a key to the tensor to write when it is not ``visual.state_dict()[key]`` itself
    (a parametrized weight's ``original``). ``proj`` may be absent: the detectors read the token before it.
    """
    own = {k: v for k, v in visual.state_dict(keep_vars=True).items() if ".parametrizations." not in k}
    own.update(targets or {})
    missing = sorted(set(own) - set(mapped) - {"proj"})
    unexpected = sorted(set(mapped) - set(own))
    if missing or unexpected:
        raise ConfigError(f"Checkpoint {where} does not fit the backbone's CLIP image tower: missing "
                          f"{missing[:4]}, unexpected {unexpected[:4]}; check the backbone setting (ViT-L-14 for "
                          f"the released weights).")
    with torch.no_grad():
        for key, value in mapped.items():
            if own[key].shape != value.shape:
                raise ConfigError(f"Checkpoint {where}: {key!r} has shape {tuple(value.shape)}, the backbone's is "
                                  f"{tuple(own[key].shape)}; check the backbone setting (ViT-L-14 at 224 px for the "
                                  f"released weights).")
            own[key].copy_(value)

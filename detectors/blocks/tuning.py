"""Which backbone parameters train: the ``tune`` setting shared by ``sam``, ``corit`` and other adapters.

``tune`` values: ``norm`` (the affine parameters of LayerNorm / GroupNorm / BatchNorm layers),
``none`` (nothing in the backbone), ``last:K`` (the last K tapped layers of ``backbone.layer_names``
plus what follows them up to the embedding: final norm, projection, CNN head convolution), ``full``.
"""

from __future__ import annotations

from torch import nn

from bench.errors import ConfigError
from detectors.blocks.backbones import Backbone

#: Normalisation layers whose affine parameters ``tune: norm`` trains.
NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._BatchNorm)


def apply_tune(backbone: Backbone, tune: str, where: str) -> list[nn.Module]:
    """Set ``requires_grad`` on ``backbone`` per ``tune``; return the modules that run in training mode.

    Under ``norm`` no module is returned: BatchNorm layers keep their pretrained running statistics
    (eval mode) while their affine parameters train. ``where`` names the setting in error messages.
    Raises :class:`ConfigError` when ``tune`` is malformed or selects no parameter.
    """
    bb = backbone
    bb.requires_grad_(False)
    n_layers = len(bb.layer_names)
    where = f"Setting 'tune' of {where}"
    if tune == "none":
        return []
    if tune == "full":
        bb.requires_grad_(True)
        return [bb]
    if tune == "norm":
        params = [p for m in bb.modules() if isinstance(m, NORM_TYPES) for p in m.parameters(recurse=False)]
        if not params:
            raise ConfigError(f"{where} is 'norm' but {bb.spec!r} has no LayerNorm/GroupNorm/BatchNorm "
                              f"with affine parameters; use 'last:K', 'full' or 'none'.")
        for p in params:
            p.requires_grad_(True)
        return []
    if tune.startswith("last:") and tune[5:].isdigit():
        k = int(tune[5:])
        if not 1 <= k <= n_layers:
            raise ConfigError(f"{where} is {tune!r} but {bb.spec!r} has {n_layers} layers; "
                              f"use last:K with 1 <= K <= {n_layers}.")
        layers = bb.blocks[-k:]
        after, after_params = bb.modules_after(n_layers - 1)
        params = [p for m in layers for p in m.parameters()] + after_params
        if not params:
            raise ConfigError(f"{where} is {tune!r} but those layers of {bb.spec!r} have no parameters; "
                              f"use a larger K.")
        for p in params:
            p.requires_grad_(True)
        return layers + after
    raise ConfigError(f"{where} is {tune!r}, which matches no parameters; use 'norm', 'none', "
                      f"'last:K' (1 <= K <= {n_layers}) or 'full'.")


class FrozenBackboneMixin:
    """For detectors whose backbone never runs in training mode (list it before ``Detector``).

    ``train()`` switches the detector's own modules as usual and then puts ``self.backbone`` back in
    eval mode, so BatchNorm running statistics never move and dropout stays off, whether the backbone
    is fully frozen or only some affine parameters train.
    """

    def train(self, mode: bool = True):
        super().train(mode)  # type: ignore[misc]
        self.backbone.eval()  # type: ignore[attr-defined]
        return self

"""``corit``: CoRIT (Liu et al., arXiv 2603.24057), reconstructed from the paper's abstract only.

This is NOT the authors' implementation: only the abstract is available, so every component is
rebuilt from the purpose the abstract gives it, following the project's specification
(docs: corit.md, ``version = "2-abstract"``). On top of the ``sam`` baseline (SAM over AdamW):

- CGP (Contrastive Gradient Proxy): running class means of channel-normalised region tokens per
  tapped layer; CGP_l = mu_fake − mu_real ∝ the expected gradient of a layer-l linear probe.
- RRM (Region Refinement Mask): per image, keep the ⌈κ·N⌉ regions scoring highest along ĉ_l.
- RSI (Regional Signal Injection): after each layer of ``rsi_layers``, the global token c_l gets
  α·(‖c_l‖/‖r_l‖)·r_l, r_l the masked regional signal. ``rsi_mode: stream`` (default) injects inside
  the network: a ViT's class token in the residual stream; a CNN stage's feature map shifted by that
  vector at every position, so its pooled vector g_l gets exactly the same update and the later
  stages see it. ``readout`` (v1) gives CNNs the update in the read-out vector only.
- HRI (Hierarchical Representation Integration): the head reads concat(norm(c_l)) over ``hri_layers``.

Changed from v1 (``1-abstract``): RSI acts inside CNN feature maps (``rsi_mode: stream``, the new
default; v1's behaviour is ``readout``), and the CGP warm-up passes are the runner's warm-up hook
(forward passes with their own data order) instead of steps that consumed training batches, so
``corit`` and ``sam`` make the same optimisation steps over the same images under any budget.

Choices that are ours, not the paper's: CGP is measured at ``rsi_layers`` (even with RSI off);
without RRM, r_l is the mean of all regions; ``hri_layers`` defaults to ``last4`` on ViTs and
``last3`` on CNNs; CGP statistics come from the first (unperturbed) SAM pass only, and the mask is
recomputed in the perturbed pass (it is part of the function whose sharpness SAM measures); warm-up
passes accumulate CGP over all regions, optimisation steps over masked regions once CGP has seen
both classes, and warm-up leaves BatchNorm running statistics as they are; with HRI on, parameters
after the last HRI layer are frozen (they cannot reach the logit); backbones whose global token is
the spatial mean (CNNs, class-token-free ViTs) inject in stream mode by adding the update to every
position; without the mask (RRM off, or CGP not ready) their r_l is g_l itself, so injection
rescales g_l (which HRI's norm removes) but still shifts what later stages compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from bench.plugin.steps import frozen_bn_stats
from detectors.blocks import corit_parts as parts
from detectors.sam import SAMBaseline


class CoRIT(SAMBaseline):
    """SAM baseline + CGP, RRM, RSI and HRI, each a switch; all off is exactly ``sam``.

    Buffers ``cgp_mean_<layer>`` ([2, C]: biased running means, row 0 real, row 1 fake),
    ``cgp_updates`` (per class) and ``cgp_batches`` are in the state dict. ``train_step`` and
    ``warmup_step`` log, per CGP layer ``i`` and as the mean over layers: ``cgp_var_full[_l<i>]`` /
    ``cgp_var_masked[_l<i>]`` (within-class dispersion of the contrastive signal without / with the
    RRM mask; the masked one once CGP has seen both classes) and ``cgp_norm[_l<i>]`` /
    ``cgp_norm_inj[_l<i>]`` (‖CGP‖ on the global token just before / after injection at that layer;
    RSI on, both classes in the batch).
    """

    version = "2-abstract"
    paper = "2603.24057"

    @dataclass
    class Config(SAMBaseline.Config):
        """Settings of CoRIT (corit.md §8); RRM and RSI need CGP."""

        cgp: bool = True
        cgp_momentum: float = 0.99
        #: Forward-only passes (not steps) that initialise the CGP means before the first step.
        cgp_warmup_batches: int = 4
        rrm: bool = True
        #: Fraction κ of regions kept per image.
        rrm_keep: float = 0.25
        rsi: bool = True
        rsi_alpha: float = 0.2
        #: "stream": inside the network (v2); "readout": CNNs inject into the read-out vector only (v1).
        rsi_mode: str = "stream"
        #: "second_half", "lastN" or a list of layer indices; also where CGP is measured.
        rsi_layers: str | list[int] = "second_half"
        hri: bool = True
        #: "second_half", "lastN" or a list of layer indices; None: last4 (ViT) / last3 (CNN).
        hri_layers: str | list[int] | None = None

    def __init__(self, cfg: Config | None = None):
        cfg = cfg if cfg is not None else self.Config()
        parts.check_settings(cfg)
        super().__init__(cfg)
        self._armed: parts.Pass | None = None  # what the next training pass collects (train/warm-up steps)
        self._logs: dict[str, Tensor] = {}  # that pass's diagnostics
        self._ready = False  # CGP has seen both classes; the buffers only grow, so it is cached
        for i in self._cgp_layers:
            self.register_buffer(f"cgp_mean_{i}", torch.zeros(2, self.backbone.layer_dims[i]))
        if cfg.cgp:
            self.register_buffer("cgp_updates", torch.zeros(2, dtype=torch.long))
            self.register_buffer("cgp_batches", torch.zeros((), dtype=torch.long))
        self.register_load_state_dict_post_hook(_forget_ready)

    def _apply_tune(self, tune: str) -> list[nn.Module]:
        """Resolve the layer lists (ConfigError for missing layers), then ``tune``; freeze what HRI skips."""
        bb, cfg = self.backbone, self.cfg
        n = len(bb.layer_names)
        rsi = parts.resolve_layers(cfg.rsi_layers, n, "rsi_layers", bb.spec)
        default = f"last{min(n, 4 if bb.kind == 'vit' else 3)}"
        hri = parts.resolve_layers(default if cfg.hri_layers is None else cfg.hri_layers, n, "hri_layers", bb.spec)
        self._cgp_layers = rsi if cfg.cgp else []
        self._hri_layers = hri if cfg.hri else []
        self._tapped = sorted(set(self._cgp_layers) | set(self._hri_layers))
        modules = super()._apply_tune(tune)
        self._unused: list[nn.Module] = []
        if cfg.hri:
            # DDP requires every trainable parameter to get a gradient; these never reach the logit.
            self._unused, unused_params = bb.modules_after(max(hri))
            for p in unused_params:
                p.requires_grad_(False)
        return modules

    def head_dim(self) -> int:
        """concat of the HRI layers' widths, or the final embedding's."""
        if self._hri_layers:
            return sum(self.backbone.layer_dims[i] for i in self._hri_layers)
        return self.backbone.embed_dim

    def train(self, mode: bool = True) -> CoRIT:
        """As ``sam``; modules HRI skips also stay in eval mode."""
        super().train(mode)
        for module in self._unused:
            module.eval()
        return self

    def forward(self, images: Tensor) -> Tensor:
        """One logit per image. In training, a pass armed by ``train_step``/``warmup_step`` also updates CGP."""
        run = self._armed if self.training and self._armed is not None else parts.Pass(labels=None)
        self._armed = None
        if not (self.cfg.rsi or self.cfg.hri or run.labels is not None):
            return super().forward(images)
        if self.cfg.cgp and self._cgp_ready():
            means = {i: getattr(self, f"cgp_mean_{i}") for i in self._cgp_layers}
            run.direction = parts.cgp_directions(means, self.cgp_updates, self.cfg.cgp_momentum)
        cgp, in_stream = self._cgp_layers, self.backbone.global_in_stream
        states, embedding = self.backbone.forward_layers(  # CoRIT at each CGP layer: corit_parts.layer_step
            images, self._tapped, lambda i, s: parts.layer_step(self.cfg, run, i, s, in_stream) if i in cgp else None)
        if run.labels is not None:  # fold the class sums into the running means (synchronised)
            buffers = {i: getattr(self, f"cgp_mean_{i}") for i in cgp}
            parts.update_means(buffers, self.cgp_updates, self.cgp_batches, run, self.cfg.cgp_momentum)
            self._logs = parts.with_layer_means(run.logs)
        if not self._hri_layers:
            return self.head(embedding).squeeze(1)
        by_layer = dict(zip(self._tapped, states))
        feats = [parts.channel_norm(run.injected.get(i, by_layer[i].global_token)) for i in self._hri_layers]
        return self.head(torch.cat(feats, dim=1)).squeeze(1)

    def _cgp_ready(self) -> bool:
        """Whether CGP has seen both classes; reads the buffers (a device sync) only until it has."""
        if not self._ready:
            self._ready = bool((self.cgp_updates > 0).all())
        return self._ready

    def _arm(self, labels: Tensor, warmup: bool) -> None:
        """Make the next training pass collect CGP statistics for ``labels``."""
        labels = labels.long()
        counts = parts.class_counts(labels)
        self._armed = parts.Pass(labels=labels, warmup=warmup, counts=counts,
                                 inv_counts=1 / counts.clamp(min=1).float())

    def _diagnostics(self, labels: Tensor) -> dict[str, Tensor]:
        """This step's CGP logs; ‖CGP‖ only when the batch had both classes (one sync, after the step)."""
        logs, self._logs = self._logs, {}
        if any(k.startswith("cgp_norm") for k in logs) and labels.unique().numel() < 2:
            logs = {k: v for k, v in logs.items() if not k.startswith("cgp_norm")}
        return logs

    @property
    def warmup_batches(self) -> int:
        """CGP warm-up: ``cgp_warmup_batches`` forward-only passes before the first step (runner hook)."""
        return int(self.cfg.cgp_warmup_batches) if self.cfg.cgp else 0

    def warmup_step(self, batch, ctx):
        """A no-grad pass that updates the CGP means: no optimisation, BatchNorm statistics unchanged."""
        self._arm(batch["label"], warmup=True)
        try:
            with torch.no_grad(), frozen_bn_stats(ctx.model):
                loss = self.loss(ctx.model(batch["image"]), batch)
        finally:
            self._armed = None
        return {"loss": loss, **self._diagnostics(batch["label"])}

    def train_step(self, batch, ctx):
        """One SAM step whose first pass updates CGP (the runner ran the warm-up passes before)."""
        if self.cfg.cgp:
            self._arm(batch["label"], warmup=False)
        try:
            out = super().train_step(batch, ctx)
        finally:
            self._armed = None
        return {**out, **self._diagnostics(batch["label"])}


def _forget_ready(module: CoRIT, incompatible_keys) -> None:
    """After ``load_state_dict`` the CGP buffers may be fresh: read their readiness again."""
    module._ready = False

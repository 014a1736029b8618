"""``corit``: CoRIT (Liu et al., arXiv 2603.24057), reconstructed from the paper's abstract only.

This is NOT the authors' implementation: only the abstract is available, so every component is
rebuilt from the purpose the abstract gives it, following the project's specification
(docs: corit.md, ``version = "1-abstract"``). On top of the ``sam`` baseline (SAM over AdamW):

- CGP (Contrastive Gradient Proxy): running class means of channel-normalised region tokens per
  tapped layer; CGP_l = mu_fake − mu_real ∝ the expected gradient of a layer-l linear probe.
- RRM (Region Refinement Mask): per image, keep the ⌈κ·N⌉ regions scoring highest along ĉ_l.
- RSI (Regional Signal Injection): add the masked regional signal r_l to the global token after
  each layer of ``rsi_layers`` (in the residual stream for ViTs, at read-out for CNNs).
- HRI (Hierarchical Representation Integration): the head reads concat(norm(c_l)) over ``hri_layers``.

Choices that are ours, not the paper's: CGP is measured at ``rsi_layers`` (even with RSI off);
without RRM, r_l is the mean of all regions; ``hri_layers`` defaults to ``last4`` on ViTs and
``last3`` on CNNs; CGP statistics come from the first (unperturbed) SAM pass only; warm-up batches
update CGP without an optimisation step (logged as ``cgp_warmup = 1``); with HRI on, parameters
after the last HRI layer are frozen (they cannot reach the logit); for CNNs RSI acts through HRI
only (with HRI off it changes only the logged measurements), and without the mask (RRM off, or CGP
not ready) a CNN's r_l is its pooled vector, so injection is a rescaling that HRI's norm removes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from detectors import corit_parts as parts
from detectors.backbones import LayerState
from detectors.sam import SAMBaseline


class CoRIT(SAMBaseline):
    """SAM baseline + CGP, RRM, RSI and HRI, each a switch; all off is exactly ``sam``.

    Buffers ``cgp_mean_<layer>`` ([2, C]: biased running means, row 0 real, row 1 fake),
    ``cgp_updates`` (per class) and ``cgp_batches`` are in the state dict. ``train_step`` logs, per
    CGP layer ``i`` and as the mean over layers: ``cgp_var_full[_l<i>]`` / ``cgp_var_masked[_l<i>]``
    (within-class dispersion of the contrastive signal without / with the RRM mask; the masked one
    once CGP has seen both classes) and ``cgp_norm[_l<i>]`` / ``cgp_norm_inj[_l<i>]`` (‖CGP‖ on the
    global token just before / after injection at that layer; RSI on, both classes in the batch).
    """

    version = "1-abstract"
    paper = "2603.24057"

    @dataclass
    class Config(SAMBaseline.Config):
        """Settings of CoRIT (corit.md §8); RRM and RSI need CGP."""

        cgp: bool = True
        cgp_momentum: float = 0.99
        #: No-grad passes that initialise the CGP means before the first optimisation step.
        cgp_warmup_batches: int = 4
        rrm: bool = True
        #: Fraction κ of regions kept per image.
        rrm_keep: float = 0.25
        rsi: bool = True
        rsi_alpha: float = 0.2
        #: "second_half", "lastN" or a list of layer indices; also where CGP is measured.
        rsi_layers: str | list[int] = "second_half"
        hri: bool = True
        #: "second_half", "lastN" or a list of layer indices; None: last4 (ViT) / last3 (CNN).
        hri_layers: str | list[int] | None = None

    def __init__(self, cfg: Config | None = None):
        cfg = cfg if cfg is not None else self.Config()
        parts.check_settings(cfg)
        super().__init__(cfg)
        self._collect, self._logs = None, {}  # labels arming the next pass; that pass's diagnostics
        for i in self._cgp_layers:
            self.register_buffer(f"cgp_mean_{i}", torch.zeros(2, self.backbone.layer_dims[i]))
        if cfg.cgp:
            self.register_buffer("cgp_updates", torch.zeros(2, dtype=torch.long))
            self.register_buffer("cgp_batches", torch.zeros((), dtype=torch.long))

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
        """One logit per image. In training, a pass armed by ``train_step`` also updates CGP."""
        labels = self._collect if self.training else None
        self._collect = None
        if not (self.cfg.rsi or self.cfg.hri or labels is not None):
            return super().forward(images)
        run = parts.Pass(labels=None if labels is None else labels.long())
        if self.cfg.cgp:
            ready, run.warm = (int(v) for v in torch.stack(
                [(self.cgp_updates > 0).all().long(), self.cgp_batches]).tolist())
            run.direction = {i: parts.cgp_direction(getattr(self, f"cgp_mean_{i}"), self.cgp_updates,
                                                    self.cfg.cgp_momentum) for i in self._cgp_layers} if ready else {}
            run.present = (torch.bincount(run.labels, minlength=2) > 0).tolist() if labels is not None else []
        states, embedding = self.backbone.forward_layers(images, self._tapped, lambda i, s: self._hook(i, s, run))
        if run.labels is not None:
            self._update_cgp(run)
        if not self._hri_layers:
            return self.head(embedding).squeeze(1)
        by_layer = dict(zip(self._tapped, states))
        feats = [parts.channel_norm(run.injected.get(i, by_layer[i].global_token)) for i in self._hri_layers]
        return self.head(torch.cat(feats, dim=1)).squeeze(1)

    def _hook(self, i: int, state: LayerState, run: parts.Pass) -> LayerState | None:
        """Per tapped layer: CGP statistics (armed passes), mask, injection."""
        cfg, c, p = self.cfg, state.global_token, state.tokens
        if i not in self._cgp_layers:
            return None
        direction, idx = run.direction.get(i), None
        if run.labels is not None or (direction is not None and cfg.rrm):
            with torch.no_grad():
                z = parts.channel_norm(p.detach().float())
                idx = None if direction is None else parts.top_regions(z, direction, cfg.rrm_keep)
        if run.labels is not None:
            with torch.no_grad():
                full = z.mean(1)
                masked = None if idx is None else parts.gather_mean(z, idx)
                use_mask = cfg.rrm and masked is not None and run.warm >= cfg.cgp_warmup_batches
                run.sums[i] = parts.class_sums(masked if use_mask else full, run.labels)
                run.logs[f"cgp_var_full_l{i}"] = parts.dispersion(full, run.labels, run.present)
                if masked is not None:
                    run.logs[f"cgp_var_masked_l{i}"] = parts.dispersion(masked, run.labels, run.present)
        if not cfg.rsi:
            return None
        r = parts.gather_mean(p, idx) if (cfg.rrm and idx is not None) else p.mean(1)
        injected = parts.inject(c, r, cfg.rsi_alpha)
        if run.labels is not None and all(run.present):
            run.logs[f"cgp_norm_l{i}"] = parts.contrast_norm(c, run.labels)
            run.logs[f"cgp_norm_inj_l{i}"] = parts.contrast_norm(injected, run.labels)
        if not self.backbone.global_in_stream:
            run.injected[i] = injected
            return None
        return LayerState(injected, p)

    @torch.no_grad()
    def _update_cgp(self, run: parts.Pass) -> None:
        """Count-weighted all-reduce of the batch class sums, then a momentum update per present class."""
        m, layers = self.cfg.cgp_momentum, self._cgp_layers
        counts = torch.bincount(run.labels, minlength=2)[:2].float()
        flat = parts.all_reduce_sum(torch.cat([run.sums[i].flatten() for i in layers] + [counts]))
        counts = flat[-2:]
        present, offset = counts > 0, 0
        for i in layers:
            buf = getattr(self, f"cgp_mean_{i}")
            mean = flat[offset:offset + buf.numel()].view_as(buf) / counts.clamp(min=1)[:, None]
            offset += buf.numel()
            buf.copy_(torch.where(present[:, None], m * buf + (1 - m) * mean, buf))
        self.cgp_updates += present.long()
        self.cgp_batches += 1
        self._logs = dict(run.logs)
        for key in ("cgp_var_full", "cgp_var_masked", "cgp_norm", "cgp_norm_inj"):
            values = [v for k, v in run.logs.items() if k.rsplit("_l", 1)[0] == key]
            if values:
                self._logs[key] = torch.stack(values).mean()

    @property
    def warmup_batches(self) -> int:
        """CGP warm-up: ``cgp_warmup_batches`` forward-only passes before the first step (runner hook)."""
        return int(self.cfg.cgp_warmup_batches) if self.cfg.cgp else 0

    def warmup_step(self, batch, ctx):
        """A no-grad pass that updates the CGP means (no optimisation); logs ``cgp_warmup = 1``."""
        self._logs = {}
        self._collect = batch["label"]
        with torch.no_grad():
            loss = self.loss(ctx.model(batch["image"]), batch)
        return {"loss": loss, "cgp_warmup": torch.tensor(1.0), **self._logs}

    def train_step(self, batch, ctx):
        """One SAM step whose first pass updates CGP (the runner ran the warm-up passes before)."""
        self._logs = {}
        self._collect = batch["label"] if self.cfg.cgp else None
        try:
            out = super().train_step(batch, ctx)
        finally:
            self._collect = None
        return {**out, "cgp_warmup": torch.tensor(0.0), **self._logs}

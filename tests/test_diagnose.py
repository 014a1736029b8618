"""Layer-wise GSNR (bench/analysis/diagnose.py): per-sample gradients, the r_j formula, layer grouping, outputs."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
import pytest
import torch
from torch import nn

from bench import Detector
from bench.analysis.diagnose import (
    COLUMNS,
    EPS,
    gradient_moments,
    gsnr,
    layer_groups,
    layer_gsnr,
    load_run_detector,
)
from bench.errors import BenchError, ConfigError
from bench.plugin.factory import resolve_detector
from bench.plugin.registry import DETECTORS
from bench.run.results import SCHEMA_VERSION


class Linear(Detector):
    """A linear logit on flattened 3x4x4 images: per-sample gradients have a closed form."""

    def __init__(self, cfg=None):
        super().__init__(cfg)
        self.fc = nn.Linear(48, 1)

    def forward(self, images):
        return self.fc(images.flatten(1)).squeeze(1)


class Tuned(Detector):
    """A backbone with a chosen trainable set and a linear head (what sam/corit look like to GSNR)."""

    @dataclass
    class Config:
        backbone: str = "timm:tf_efficientnet_lite0@none"
        image_size: int = 32
        tune: str = "norm"

    def __init__(self, cfg=None):
        from detectors.blocks.backbones import build_backbone

        super().__init__(cfg)
        self.backbone = build_backbone(self.cfg.backbone, image_size=self.cfg.image_size)
        for module in self.backbone.modules():
            norm = isinstance(module, (nn.LayerNorm, nn.modules.batchnorm._BatchNorm))
            for p in module.parameters(recurse=False):
                p.requires_grad_(self.cfg.tune == "full" or (self.cfg.tune == "norm" and norm))
        self.head = nn.Linear(self.backbone.embed_dim, 1)

    def forward(self, images):
        return self.head(self.backbone(images)).squeeze(1)


class ItemForward(Linear):
    """``.item()`` in forward: vmap cannot trace it, micro-batches of one can."""

    def forward(self, images):
        scale = 1.0 if images.abs().max().item() > 0 else 0.0
        return scale * super().forward(images)


def _data(n=6, size=4, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, 3, size, size, generator=gen), torch.tensor([0, 1] * (n // 2))


def test_moments_and_gsnr_match_the_closed_form_on_a_linear_model():
    torch.manual_seed(0)
    det = Linear()
    x, y = _data(7 * 2)
    # BCE-with-logits on w·x + b: the per-sample gradient is (σ(w·x + b) − y)·[x, 1].
    with torch.no_grad():
        err = (torch.sigmoid(det(x)) - y.float()).double()
    per_sample = {"fc.weight": err[:, None, None] * x.flatten(1).double()[:, None, :], "fc.bias": err[:, None]}
    for method in ("vmap", "loop"):
        # chunk_size 4 over 14 samples also checks the chunk merge with a short last chunk.
        moments, used = gradient_moments(det, x, y, method=method, chunk_size=4)
        assert used == method
        for name, g in per_sample.items():
            mean, var = moments[name]
            torch.testing.assert_close(mean, g.mean(0), rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(var, g.var(0, unbiased=True), rtol=1e-4, atol=1e-6)
    g = torch.cat([per_sample["fc.weight"].flatten(1), per_sample["fc.bias"]], 1)
    m, v = g.mean(0), g.var(0, unbiased=True)
    frame = layer_gsnr(det, x, y, method="vmap", chunk_size=4)
    assert frame[["layer", "depth", "n_params"]].values.tolist() == [["head", 2, 49]]
    assert frame["gsnr_mean"].item() == pytest.approx(float((m ** 2 / (v + EPS)).mean()), rel=1e-5)
    assert frame["gsnr_ratio"].item() == pytest.approx(float((m ** 2).sum() / (v.sum() + EPS)), rel=1e-5)
    assert det.training  # eval mode was only for the measurement


def test_vmap_and_micro_batches_agree_on_a_real_backbone():
    torch.manual_seed(0)
    det = Tuned()
    x, y = _data(6, size=32)
    by_vmap, _ = gradient_moments(det, x, y, method="vmap", chunk_size=4)
    by_loop, _ = gradient_moments(det, x, y, method="loop", chunk_size=4)
    assert by_vmap.keys() == by_loop.keys() == {n for n, p in det.named_parameters() if p.requires_grad}
    for name in by_vmap:
        for a, b in zip(by_vmap[name], by_loop[name]):
            # Batched and single-sample float32 kernels round differently; compare at float32 scale.
            torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5 * float(b.abs().max()))
    assert det.training  # eval mode was only for the measurement


def test_auto_falls_back_to_micro_batches_when_vmap_cannot_trace():
    torch.manual_seed(0)
    x, y = _data()
    frame = layer_gsnr(ItemForward(), x, y, method="auto")
    assert frame.attrs["method"] == "loop"
    torch.manual_seed(0)
    expected = layer_gsnr(Linear(), x, y, method="vmap")
    pd.testing.assert_frame_equal(frame, expected, rtol=1e-6)
    with pytest.raises(RuntimeError):
        layer_gsnr(ItemForward(), x, y, method="vmap")


def test_bad_inputs_are_clear_errors():
    x, y = _data()
    with pytest.raises(ConfigError, match="at least 2"):
        gradient_moments(Linear(), x[:1], y[:1])
    frozen = Linear().requires_grad_(False)
    with pytest.raises(ConfigError, match="no trainable parameters"):
        gradient_moments(frozen, x, y)


def test_layer_groups_follow_the_backbone_layers_in_forward_order():
    det = Tuned(Tuned.Config(tune="full"))
    groups = layer_groups(det)
    # EfficientNet taps blocks 0, 1, 2, 4, 6; untapped blocks 3 and 5 feed the next tapped layer.
    assert groups["backbone.model.conv_stem.weight"] == ("stem", 0)
    assert groups["backbone.model.bn1.bias"] == ("stem", 0)
    assert groups["backbone.model.blocks.0.0.conv_dw.weight"] == ("blocks.0", 1)
    assert groups["backbone.model.blocks.3.0.bn1.weight"] == ("blocks.4", 4)
    assert groups["backbone.model.blocks.4.0.bn1.weight"] == ("blocks.4", 4)
    assert groups["backbone.model.blocks.5.0.bn1.weight"] == ("blocks.6", 5)
    assert groups["backbone.model.conv_head.weight"] == ("final", 6)
    assert groups["backbone.model.bn2.weight"] == ("final", 6)
    assert groups["head.weight"] == groups["head.bias"] == ("head", 7)
    assert set(groups) == {n for n, _ in det.named_parameters()}

    vit = layer_groups(Tuned(Tuned.Config(backbone="timm:vit_tiny_patch16_224@none", tune="full")))
    assert vit["backbone.model.cls_token"] == vit["backbone.model.patch_embed.proj.weight"] == ("stem", 0)
    assert vit["backbone.model.blocks.3.norm1.weight"] == ("blocks.3", 4)
    assert vit["backbone.model.blocks.11.mlp.fc2.bias"] == ("blocks.11", 12)
    assert vit["backbone.model.norm.weight"] == ("final", 13)
    assert vit["head.weight"] == ("head", 14)

    # open_clip registers `proj` on the root, before the blocks, yet it acts after them.
    clip = layer_groups(Tuned(Tuned.Config(backbone="open_clip:ViT-S-32@none", image_size=64, tune="full")))
    assert clip["backbone.model.class_embedding"] == clip["backbone.model.conv1.weight"] == ("stem", 0)
    assert clip["backbone.model.transformer.resblocks.3.ln_1.weight"] == ("blocks.3", 4)
    assert clip["backbone.model.proj"] == clip["backbone.model.ln_post.weight"] == ("final", 13)

    norm_only = layer_groups(Tuned())
    assert "backbone.model.conv_stem.weight" not in norm_only  # frozen parameters are not measured
    assert {layer for layer, _ in norm_only.values()} == {"stem", "blocks.0", "blocks.1", "blocks.2", "blocks.4",
                                                          "blocks.6", "final", "head"}


def test_layer_gsnr_rows_cover_every_trainable_parameter_once():
    torch.manual_seed(0)
    det = Tuned()
    x, y = _data(4, size=32)
    frame = layer_gsnr(det, x, y)
    assert frame.attrs["method"] == "vmap"
    assert frame["layer"].tolist() == ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.4", "blocks.6", "final",
                                       "head"]
    assert frame["depth"].tolist() == list(range(8))
    assert frame["n_params"].sum() == sum(p.numel() for p in det.parameters() if p.requires_grad)
    assert (frame["gsnr_mean"] >= 0).all() and (frame["gsnr_ratio"] >= 0).all()


def _fake_run(tmp_path, name="univfd", overrides=None, drop=None):
    """A run directory as ``bench.api.run`` writes it: results.json (detector block) + checkpoint."""
    from bench.run.checkpoint import CHECKPOINT, metadata_for, save_checkpoint

    spec = resolve_detector(name, overrides)
    torch.manual_seed(1)
    det = spec.build()
    with torch.no_grad():
        det.head.weight.normal_()
    run_dir = tmp_path / "runs" / "r1"
    run_dir.mkdir(parents=True)
    (run_dir / "results.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION, "detector": spec.info()}))
    save_checkpoint(det, run_dir / CHECKPOINT, metadata_for(spec.info()))
    if drop:
        from safetensors.torch import load_file, save_file

        state = load_file(run_dir / CHECKPOINT)
        state.pop(drop)
        save_file(state, run_dir / CHECKPOINT, metadata=metadata_for(spec.info()))
    return run_dir, det


TINY = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}


def test_load_run_detector_restores_trained_weights_strictly(tmp_path):
    run_dir, det = _fake_run(tmp_path, overrides=TINY)
    loaded = load_run_detector(run_dir)
    assert type(loaded) is type(det)
    assert loaded.cfg == det.cfg
    for (k, a), (_, b) in zip(det.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), k

    bad_dir, _ = _fake_run(tmp_path / "bad", overrides=TINY, drop="head.bias")
    with pytest.raises(BenchError, match="head.bias"):
        load_run_detector(bad_dir)
    results = json.loads((run_dir / "results.json").read_text())
    results["detector"]["config"]["image_size"] = 48
    (run_dir / "results.json").write_text(json.dumps(results))
    with pytest.raises(BenchError, match="another configuration"):
        load_run_detector(run_dir)
    (run_dir / "checkpoint" / "model.safetensors").unlink()
    with pytest.raises(BenchError, match="no checkpoint/model.safetensors"):
        load_run_detector(run_dir)


def test_gsnr_writes_csv_and_png_for_fresh_detectors_and_runs(tiny_protocol, tmp_path):
    DETECTORS.add("tuned_test", Tuned)
    try:
        run_dir, _ = _fake_run(tmp_path, overrides=TINY)
        out = tmp_path / "gsnr"
        table = gsnr(tiny_protocol, ["univfd", "tuned_test"], [run_dir], n=6, out_dir=out, seed=0)
    finally:
        DETECTORS.remove("tuned_test")
    assert list(table.columns) == COLUMNS
    saved = pd.read_csv(out / "gsnr.csv")
    assert list(saved.columns) == COLUMNS and len(saved) == len(table)
    assert (out / "gsnr.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # univfd has a frozen backbone: only its head row, fresh and from the run.
    univfd = table[table["detector"] == "univfd"]
    assert univfd[["run", "layer", "n_params"]].values.tolist() == [["fresh", "head", 1281], ["r1", "head", 1281]]
    # The trained head differs from the fresh one, so its GSNR does too.
    assert univfd["gsnr_mean"].iloc[0] != univfd["gsnr_mean"].iloc[1]
    tuned = table[table["detector"] == "tuned_test"]
    assert tuned["layer"].iloc[0] == "stem" and tuned["layer"].iloc[-1] == "head" and len(tuned) == 8


def test_gsnr_probe_is_balanced_and_seeded(tiny_protocol):
    from bench.analysis.diagnose import probe_samples

    images, labels = probe_samples(tiny_protocol, 9, seed=3)
    assert len(images) == 9 and labels.tolist().count(0) == 4 and labels.tolist().count(1) == 5
    again, _ = probe_samples(tiny_protocol, 9, seed=3)
    other, _ = probe_samples(tiny_protocol, 9, seed=4)
    assert [i.tobytes() for i in images] == [i.tobytes() for i in again]
    assert [i.tobytes() for i in images] != [i.tobytes() for i in other]


def test_gsnr_needs_something_to_measure(tiny_protocol, tmp_path):
    with pytest.raises(ConfigError, match="at least one --detector or --run"):
        gsnr(tiny_protocol, None, None, n=4, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="-n must be at least 2"):
        gsnr(tiny_protocol, ["univfd"], None, n=1, out_dir=tmp_path)

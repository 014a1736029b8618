"""Tests for detectors/effort.py and detectors/blocks/svd_residual.py: Effort's SVD-residual tuning."""

from __future__ import annotations

import hf_clip_reference as hf
import pytest
import torch
from accelerate import Accelerator
from conftest import write_tiny_protocol

from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector
from bench.plugin.types import StepContext
from bench.run.checkpoint import read_checkpoint
from bench.testing import check_detector
from detectors.blocks.svd_residual import SVDResidual, svd_modules

VIT = {"backbone": "timm:vit_tiny_patch16_224@none", "image_size": 32, "augment": "none"}
LITE0 = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}
CLIP = {"backbone": "open_clip:ViT-S-32@none", "image_size": 64}


def build(**settings):
    return resolve_detector("effort", {**VIT, **settings}).build()


@pytest.mark.parametrize("settings", [VIT, LITE0], ids=["vit", "efficientnet"])
def test_effort_passes_check_detector(settings):
    assert "train_step" in check_detector(resolve_detector("effort", settings).build)


def test_defaults_are_the_released_face_recipe():
    from detectors.effort import Effort

    c = Effort.Config()
    assert (c.backbone, c.image_size, c.residual_rank, c.head_classes, c.optimizer, c.lr, c.weight_decay,
            c.epochs, c.augment) == ("open_clip:ViT-L-14-quickgelu@openai", 224, 1, 2, "adam", 2e-4, 5e-4, 10,
                                     "deepfakebench")
    assert "1x1 convolution" in Effort.portability_notes


def test_only_attention_projections_and_the_head_train():
    det = build()
    trainable = {n for n, p in det.named_parameters() if p.requires_grad}
    blocks = len(det.backbone.blocks)
    assert len(svd_modules(det)) == 2 * blocks  # fused qkv + output projection per block
    assert trainable - {n for n in trainable if n.endswith(("_residual",))} == {"head.linear.weight",
                                                                                 "head.linear.bias"}
    width = det.backbone.layer_dims[0]
    residual = sum(p.numel() for n, p in det.named_parameters() if n.endswith("_residual"))
    assert residual == blocks * 4 * (width + 1 + width)  # q, k, v, out: (m + 1 + n) per rank-1 triplet


def test_cnn_analog_targets_every_pointwise_conv_and_nothing_else():
    det = resolve_detector("effort", LITE0).build()
    convs = [m for m in det.backbone.model.modules() if isinstance(m, torch.nn.Conv2d)]
    wrapped = [m for m in convs if hasattr(m, "parametrizations")]
    assert wrapped and all(m.kernel_size == (1, 1) and m.groups == 1 for m in wrapped)
    assert all(m.kernel_size != (1, 1) or m.groups != 1 for m in convs if m not in wrapped)
    assert det.backbone.model.conv_head in wrapped


def test_at_init_the_weight_is_unchanged_and_the_residual_is_the_smallest_singular_triplet():
    torch.manual_seed(0)
    det = build()
    module = det.backbone.blocks[0].attn.qkv
    original = module.parametrizations.weight.original
    svd = module.parametrizations.weight[0]
    assert torch.equal(module.weight, original)  # bit-equal at initialisation
    for c, block in enumerate(original.detach().chunk(3)):
        singular = torch.linalg.svdvals(block)
        torch.testing.assert_close(svd.s_init[c], singular[-1:], rtol=1e-4, atol=1e-6)
        main = block - SVDResidual.product(svd.u_init, svd.s_init, svd.v_init)[c]
        main_values = torch.linalg.svdvals(main)
        torch.testing.assert_close(main_values[:-1], singular[:-1], rtol=1e-4, atol=1e-5)
        assert main_values[-1] < 1e-4 * singular[0]  # the principal part has rank r = min(m, n) - 1


def test_a_step_changes_only_the_residual_and_the_principal_part_stays_bit_equal():
    torch.manual_seed(0)
    det = build(lr=1e-2)
    frozen = {n: p.detach().clone() for n, p in det.named_parameters() if not p.requires_grad}
    inits = {n: b.clone() for n, b in det.named_buffers() if n.endswith("_init")}
    residual = {n: p.detach().clone() for n, p in det.named_parameters() if n.endswith("_residual")}
    acc = Accelerator(cpu=True)
    optimizer, _ = det.configure_optimizer(1)
    model, optimizer = acc.prepare(det, optimizer)
    det.train()
    batch = {"image": torch.randn(4, 3, 32, 32), "label": torch.tensor([0, 1, 0, 1])}
    det.train_step(batch, StepContext(model=model, optimizer=optimizer, accelerator=acc))
    assert all(torch.equal(p, frozen[n]) for n, p in det.named_parameters() if n in frozen)
    assert all(torch.equal(b, inits[n]) for n, b in det.named_buffers() if n in inits)
    assert any(not torch.equal(p, residual[n]) for n, p in det.named_parameters() if n in residual)
    module = det.backbone.blocks[0].attn.qkv
    svd, original = module.parametrizations.weight[0], module.parametrizations.weight.original
    main = original - SVDResidual.product(svd.u_init, svd.s_init, svd.v_init).reshape(original.shape)
    torch.testing.assert_close(module.weight - main, svd.residual().reshape(original.shape), rtol=1e-5, atol=1e-6)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="residual rank"):
        build(residual_rank=192)
    with pytest.raises(ConfigError, match="optimizer"):
        build(optimizer="sgd")


def released_file(directory, image_size=64, seed=0):
    """An Effort release with ViT-S-32 shapes: HF names, SVD sub-keys, a `module.` prefix, head [2, D]."""
    vision = hf.random_state(image_size, seed)
    state = {}
    for key, value in vision.items():
        base = key.removesuffix(".weight")
        if ".self_attn." in key and key.endswith(".weight"):
            # The loader folds weight_main + U·diag(S)·V whatever their values; the frozen U_r/S_r/V_r copies
            # (redundant with weight_main) only need their shapes.
            u_res, s_res, v_res = torch.randn(hf.WIDTH, 1) * 0.1, torch.tensor([0.7]), torch.randn(1, hf.WIDTH) * 0.1
            r = hf.WIDTH - 1
            state.update({f"{base}.weight_main": value, f"{base}.U_residual": u_res, f"{base}.S_residual": s_res,
                          f"{base}.V_residual": v_res, f"{base}.U_r": torch.zeros(hf.WIDTH, r),
                          f"{base}.S_r": torch.zeros(r), f"{base}.V_r": torch.zeros(r, hf.WIDTH)})
            vision[key] = value + (u_res * s_res) @ v_res
        else:
            state[key] = value
    state = {f"module.backbone.{k}": v for k, v in state.items()}
    state.update({"module.head.weight": torch.randn(2, hf.WIDTH), "module.head.bias": torch.tensor([0.1, -0.2])})
    state["module.backbone.embeddings.position_ids"] = torch.arange((image_size // hf.PATCH) ** 2 + 1)[None]
    path = directory / "effort_clip_trainOn_FaceForensic.pth"
    torch.save(state, path)
    return path, vision, state


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    return released_file(tmp_path_factory.mktemp("effort"))


@pytest.fixture(scope="module")
def clip_effort():
    return resolve_detector("effort", CLIP).build().eval()


def test_released_checkpoint_loads_strictly_and_scores_as_hf_clip(released, clip_effort):
    path, vision, raw = released
    state, meta = read_checkpoint(path)
    clip_effort.load_checkpoint(state, str(path), meta)
    images = torch.randn(3, 3, 64, 64)
    w, b = raw["module.head.weight"], raw["module.head.bias"]
    expected = hf.pooler_output(vision, images) @ (w[1] - w[0]) + (b[1] - b[0])
    with torch.no_grad():
        torch.testing.assert_close(clip_effort(images), expected, rtol=1e-4, atol=1e-4)


def test_a_two_class_head_loads_into_a_one_logit_head_as_the_difference():
    from detectors.blocks.heads import LogitHead

    two, one = LogitHead(8, classes=2), LogitHead(8, classes=1)
    one.load_released(two.linear.weight.detach(), two.linear.bias.detach(), "h")
    x = torch.randn(5, 8)
    torch.testing.assert_close(one(x), two(x))
    with pytest.raises(ConfigError, match="head_classes=1"):
        two.load_released(one.linear.weight.detach(), one.linear.bias.detach(), "h")


def test_released_checkpoint_with_a_missing_or_foreign_key_fails(released, clip_effort):
    _, _, raw = released
    broken = {k: v for k, v in raw.items() if "layer_norm2.bias" not in k}
    with pytest.raises(ConfigError, match="missing"):
        clip_effort.load_checkpoint(broken, "f.pth", {})
    with pytest.raises(ConfigError, match="not part of a Hugging Face CLIP"):
        clip_effort.load_checkpoint({**raw, "module.backbone.extra.weight": torch.zeros(1)}, "f.pth", {})
    no_res = {k: v for k, v in raw.items() if "layers.3.self_attn.q_proj.U_residual" not in k}
    with pytest.raises(ConfigError, match="U/S/V_residual"):
        clip_effort.load_checkpoint(no_res, "f.pth", {})
    wide = {**raw, "module.head.weight": torch.zeros(2, 10)}
    with pytest.raises(ConfigError, match="reads 384 features"):
        clip_effort.load_checkpoint(wide, "f.pth", {})


def effort_layout(vision: dict[str, torch.Tensor], seed: int = 0) -> tuple[dict[str, torch.Tensor], dict]:
    """Effort's release from an HF vision tower's tensors: each attention projection split by its SVD into
    weight_main (top D-1 triplets), a trained-looking residual triplet and the frozen U_r/S_r/V_r copies.
    Returns the file's state and the effective weights (what the tower computes with)."""
    g = torch.Generator().manual_seed(seed)
    state, effective = {}, dict(vision)
    for key, value in vision.items():
        if ".self_attn." in key and key.endswith("_proj.weight"):
            base = key.removesuffix(".weight")
            u, s, vh = torch.linalg.svd(value.double())
            r = value.shape[0] - 1
            main = (u[:, :r] * s[:r]) @ vh[:r]
            u_res = u[:, r:] + 0.1 * torch.randn(u[:, r:].shape, generator=g, dtype=torch.float64)
            s_res, v_res = s[r:] + 0.5, vh[r:]
            state.update({f"{base}.weight_main": main.float(), f"{base}.U_residual": u_res.float(),
                          f"{base}.S_residual": s_res.float(), f"{base}.V_residual": v_res.float(),
                          f"{base}.U_r": u[:, :r].float(), f"{base}.S_r": s[:r].float(), f"{base}.V_r": vh[:r].float()})
            effective[key] = (main + (u_res * s_res) @ v_res).float()
        else:
            state[key] = value
    return state, effective


def test_a_release_built_from_a_transformers_clip_scores_as_transformers(tmp_path):
    """The vision keys come from a file ``transformers`` wrote (save_pretrained), the reference from its forward."""
    model, vision = hf.saved_clip_vision(tmp_path / "hf")
    state, effective = effort_layout(vision)
    head = torch.randn(2, hf.WIDTH), torch.tensor([0.2, -0.3])
    release = {f"backbone.{k}": v for k, v in state.items()} | {"head.weight": head[0], "head.bias": head[1]}
    torch.save(release, tmp_path / "effort.pth")
    det = resolve_detector("effort", CLIP).build().eval()
    loaded, meta = read_checkpoint(tmp_path / "effort.pth")
    det.load_checkpoint(loaded, "effort.pth", meta)
    prefix = "vision_model." if any(k.startswith("vision_model.") for k in model.state_dict()) else ""
    model.load_state_dict({prefix + k: v for k, v in effective.items()})  # the weights the residuals make
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        pooled = model(pixel_values=images).pooler_output
        logits = pooled @ head[0].t() + head[1]
        torch.testing.assert_close(det(images), logits[:, 1] - logits[:, 0], rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_cli_trains_end_to_end_and_evaluates_a_released_file(tmp_path):
    import json

    from bench.cli import main

    proto, out = write_tiny_protocol(tmp_path), tmp_path / "runs"
    common = ["run", "--protocol", str(proto), "--detector", "effort", "--limit", "4", "--batch-size", "4"]
    main([*common, "--out", str(out / "train")])
    path, _, _ = released_file(tmp_path, image_size=32)
    main([*common, "--out", str(out / "eval"), "--eval-only", "--checkpoint", str(path),
          "-o", "backbone=open_clip:ViT-S-32@none", "-o", "image_size=32"])
    for kind, rule in (("train", "best:auc"), ("eval", "eval_only")):
        result = json.loads(next((out / kind).rglob("results.json")).read_text())
        assert result["selection"]["rule"] == rule and result["detector"]["name"] == "effort"


@pytest.mark.parametrize("protocol", ["synthetic_universal", "synthetic_cross_domain"])
def test_embedded_protocol_block_resolves(protocol):
    from bench.protocol import load_protocol

    spec = resolve_detector("effort", None, load_protocol(protocol).detector_defaults)
    assert spec.config.backbone == "timm:tf_efficientnet_lite0@imagenet-offline" and spec.config.epochs == 3
    assert spec.config.select is None  # the protocol's own selection rule applies

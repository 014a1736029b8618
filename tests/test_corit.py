"""Tests for detectors/corit.py: CoRIT's switches, CGP buffers, injection inside CNNs (v2), equal
budgets with ``sam``, sync across processes, bad input."""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from accelerate import Accelerator

from bench.data.splits import build_sources, resolve_all
from bench.errors import ConfigError
from bench.plugin.factory import resolve_detector
from bench.plugin.types import StepContext
from bench.protocol import load_protocol
from bench.run.runner import Runner, RunnerOptions
from bench.testing import check_detector
from detectors.blocks.corit_parts import channel_norm

VIT = {"backbone": "timm:vit_tiny_patch16_224@none", "image_size": 32}
RESNET = {"backbone": "timm:resnet18@none", "image_size": 32}
EFFNET = {"backbone": "timm:tf_efficientnet_lite0@imagenet-offline", "image_size": 32}
OFF = {"cgp": False, "rrm": False, "rsi": False, "hri": False}
CGP_ONLY = {"rrm": False, "rsi": False, "hri": False}


def build(name="corit", seed=0, **settings):
    torch.manual_seed(seed)
    return resolve_detector(name, {**VIT, **settings}).build()


def batch(labels=(0, 1, 0, 1), seed=1, size=32):
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(len(labels), 3, size, size, generator=g), "label": torch.tensor(labels)}


def _ctx(det):
    acc = Accelerator(cpu=True)
    optimizer, _ = det.configure_optimizer(1)
    model, optimizer = acc.prepare(det, optimizer)
    model.train()
    return StepContext(model=model, optimizer=optimizer, accelerator=acc)


def step(det, b):
    """One train_step through an Accelerate-prepared model, as the runner does."""
    return det.train_step(b, _ctx(det))


def warm(det, b):
    """One CGP warm-up pass (the runner's ``warmup_step`` hook)."""
    return det.warmup_step(b, _ctx(det))


@torch.no_grad()
def logits(det, b):
    return det.eval()(b["image"])


def cgp_means(det):
    return {k: v.clone() for k, v in det.state_dict().items() if k.startswith("cgp_")}


@pytest.mark.parametrize("settings", [VIT, RESNET, EFFNET], ids=["vit", "resnet", "efficientnet"])
def test_corit_passes_check_detector(settings):
    # check_detector runs the declared warm-up pass first, as the runner does.
    checks = check_detector(resolve_detector("corit", {**settings, "cgp_warmup_batches": 1}).build)
    assert "train_step" in checks and "state_dict_round_trip" in checks


def test_defaults_and_version():
    from detectors.corit import CoRIT

    cfg = CoRIT.Config()
    assert (cfg.cgp, cfg.cgp_momentum, cfg.cgp_warmup_batches, cfg.rrm, cfg.rrm_keep, cfg.rsi, cfg.rsi_alpha,
            cfg.rsi_mode, cfg.rsi_layers, cfg.hri, cfg.tune, cfg.rho) == (
        True, 0.99, 4, True, 0.25, True, 0.2, "stream", "second_half", True, "norm", 0.05)
    assert CoRIT.version == "2-abstract" and CoRIT.paper == "2603.24057"
    assert "reconstructed from the paper's abstract" in sys.modules[CoRIT.__module__].__doc__


@pytest.mark.parametrize("settings", [VIT, RESNET], ids=["vit", "resnet"])
def test_all_switches_off_is_exactly_sam(settings):
    b = batch()
    corit, sam = build(**settings, **OFF), build("sam", **settings)
    assert torch.equal(logits(corit, b), logits(sam, b))
    step(corit, b), step(sam, b)
    assert torch.equal(logits(corit, b), logits(sam, b))


def test_each_switch_changes_the_logits_or_the_training_signal():
    b = batch()
    warmed = build(cgp_warmup_batches=1, **CGP_ONLY)
    before = cgp_means(warmed)
    warm(warmed, b)  # CGP alone: a warm-up pass moves the buffers, nothing else
    assert any(not torch.equal(before[k], v) for k, v in cgp_means(warmed).items())
    # Same seed, same weights; only the CGP buffers are carried over (HRI's head has another shape).
    buffers = {k: v for k, v in warmed.state_dict().items() if k.startswith("cgp_")}
    variants = {}
    for name, on in [("cgp", CGP_ONLY), ("rsi", {"rrm": False, "hri": False}), ("rrm", {"hri": False}),
                     ("hri", {"rrm": False, "rsi": False})]:
        det = build(cgp_warmup_batches=1, **on)
        det.load_state_dict(buffers, strict=False)
        variants[name] = logits(det, b)
    assert torch.equal(variants["cgp"], logits(build("sam"), b))
    assert not torch.allclose(variants["rsi"], variants["cgp"], atol=1e-4)
    assert not torch.allclose(variants["rrm"], variants["rsi"], atol=1e-4)
    assert variants["hri"].shape == (4,) and not torch.allclose(variants["hri"], variants["cgp"], atol=1e-4)


def _next_stage_input(det, b, layer):
    """Logits of ``b`` plus the injected stage's output and the input of the module that runs after it."""
    seen = {}
    stage, after = det.backbone.blocks[layer], det.backbone.modules_after(layer)[0][0]
    handles = [stage.register_forward_hook(lambda m, args, out: seen.setdefault("out", out.detach().clone())),
               after.register_forward_pre_hook(lambda m, args: seen.setdefault("in", args[0].detach().clone()))]
    try:
        out = logits(det, b)
    finally:
        for handle in handles:
            handle.remove()
    return out, seen["out"], seen["in"]


def test_stream_injection_shifts_the_cnn_feature_map_by_the_specified_update():
    # EfficientNet-Lite0 stage 2 (blocks.2: 40 channels, 4×4 at 32 px); blocks.3 runs after it.
    b = batch()
    det = build(**EFFNET, rsi_layers=[2], hri_layers=[2], cgp_warmup_batches=1)
    warm(det, b)  # CGP has seen both classes: the mask is on
    out, stage_out, next_in = _next_stage_input(det, b, 2)
    tokens = stage_out.flatten(2).transpose(1, 2)  # [B, N, C]
    g = tokens.mean(1)
    # The spec's mask, computed here from the buffers: ĉ from the bias-corrected means (§3), the
    # top ⌈κ·N⌉ scores <norm(p_i) − mean_j norm(p_j), ĉ> per image (§4).
    m = det.cfg.cgp_momentum
    means = det.cgp_mean_2 / (1 - m ** det.cgp_updates.float())[:, None]
    c_hat = (means[1] - means[0]) / (means[1] - means[0]).norm()
    z = F.layer_norm(tokens, tokens.shape[-1:], eps=1e-6)
    keep = (z - z.mean(1, keepdim=True)) @ c_hat
    idx = keep.topk(math.ceil(0.25 * tokens.shape[1]), dim=1).indices
    r = torch.stack([tokens[n, idx[n]].mean(0) for n in range(len(tokens))])
    update = 0.2 * g.norm(dim=1, keepdim=True) / (r.norm(dim=1, keepdim=True) + 1e-6) * r
    assert update.abs().max() > 1e-2
    # P_l ← P_l + update at every position, before the next stage ...
    torch.testing.assert_close(next_in, stage_out + update[:, :, None, None], rtol=1e-4, atol=1e-5)
    # ... so the pooled vector gets exactly the ViT update, and HRI reads the injected state.
    torch.testing.assert_close(next_in.mean((2, 3)), g + update, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out, det.head(F.layer_norm(g + update, g.shape[-1:], eps=1e-6)).squeeze(1),
                               rtol=1e-4, atol=1e-5)


def test_readout_mode_is_v1_injection_only_in_the_read_out_vector():
    b = batch()
    runs = {}
    for mode in ("stream", "readout"):
        for hri in ([2], [2, 3]):
            det = build(**EFFNET, rsi_layers=[2], hri_layers=hri, rsi_mode=mode, cgp_warmup_batches=1)
            warm(det, b)
            runs[mode, len(hri)] = _next_stage_input(det, b, 2)
    out, stage_out, next_in = runs["readout", 1]
    assert torch.equal(next_in, stage_out)  # v1: later stages see the stage output unchanged
    assert not torch.allclose(runs["stream", 1][2], runs["stream", 1][1], atol=1e-3)
    # Both modes give the injected stage the same read-out vector; only a later stage tells them apart.
    torch.testing.assert_close(out, runs["stream", 1][0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(runs["readout", 2][0], runs["stream", 2][0], atol=1e-4)
    # Without injection HRI reads the plain pooled vector: readout's injection moves the logits (v1).
    plain = build(**EFFNET, rsi_layers=[2], hri_layers=[2], rsi=False, cgp_warmup_batches=1)
    warm(plain, b)
    assert not torch.allclose(logits(plain, b), out, atol=1e-4)
    # A ViT's class token is in the stream in both modes.
    vits = []
    for mode in ("stream", "readout"):
        vit = build(rsi_mode=mode, cgp_warmup_batches=1)
        warm(vit, b)
        vits.append(logits(vit, b))
    assert torch.equal(*vits)


def test_warm_up_leaves_batchnorm_statistics_and_parameters_alone():
    det = build(**RESNET, tune="full", cgp_warmup_batches=1)
    before = copy.deepcopy(det.state_dict())
    warm(det, batch())
    changed = {k for k, v in det.state_dict().items() if not torch.equal(v, before[k])}
    assert changed and all(k.startswith("cgp_") for k in changed)


def _fit_recorded(protocol, name: str, max_steps: int | None):
    proto = load_protocol(protocol)
    splits = resolve_all(proto, build_sources(proto, None))
    torch.manual_seed(0)
    det = resolve_detector(name, {"cgp_warmup_batches": 2} if name == "corit" else {},
                           proto.detector_defaults).build()
    seen = {"steps": [], "warmup": [], "optimizer": []}
    train_step, warmup_step, configure = det.train_step, det.warmup_step, det.configure_optimizer

    def record(key, fn):
        def wrapped(batch, ctx):
            seen[key].append(batch["index"].tolist())
            return fn(batch, ctx)
        return wrapped

    def configure_recorded(total_steps):
        optimizer, scheduler = configure(total_steps)
        seen["optimizer"].append(optimizer)
        return optimizer, scheduler

    det.train_step, det.warmup_step = record("steps", train_step), record("warmup", warmup_step)
    det.configure_optimizer = configure_recorded
    runner = Runner(RunnerOptions(batch_size=4, max_steps=max_steps), seed=0)
    selection = runner.fit(det, splits["train"], splits["val"], "last", proto.budget.max_epochs, None)
    adam_steps = {int(state["step"]) for state in seen["optimizer"][0].state.values()}
    return det, seen, selection, adam_steps


@pytest.mark.parametrize("max_steps", [None, 5], ids=["epochs", "max_steps"])
def test_sam_and_corit_make_the_same_steps_over_the_same_images(tiny_protocol, max_steps):
    _, sam_seen, sam_sel, sam_adam = _fit_recorded(tiny_protocol, "sam", max_steps)
    corit, corit_seen, corit_sel, corit_adam = _fit_recorded(tiny_protocol, "corit", max_steps)
    steps = sam_sel["steps_total"]
    assert steps == (max_steps or 12)  # tiny protocol: 24 train images, batch 4, 2 epochs
    # Same batches in the same order, step for step: the warm-up reads its own loader.
    assert corit_seen["steps"] == sam_seen["steps"] and len(sam_seen["steps"]) == steps
    assert corit_sel["steps_total"] == steps and sam_adam == corit_adam == {steps}
    # The warm-up passes are extra forward passes: CGP saw them and every step.
    assert len(corit_seen["warmup"]) == 2 and sam_seen["warmup"] == []
    assert int(corit.cgp_batches) == 2 + steps


def test_cgp_buffers_update_only_in_a_train_step_and_hold_the_class_means():
    det = build(cgp_warmup_batches=1, **CGP_ONLY)
    b = batch()
    start = cgp_means(det)
    logits(det, b)
    det.train()(b["image"])  # a training-mode forward outside train_step collects nothing
    assert all(torch.equal(start[k], v) for k, v in cgp_means(det).items())
    warm(det, b)
    layers = det._cgp_layers
    assert layers == list(range(6, 12)) and det.cgp_batches == 1 and det.cgp_updates.tolist() == [1, 1]
    with torch.no_grad():
        states, _ = det.backbone.forward_layers(b["image"], layers)
    m = det.cfg.cgp_momentum
    for i, s in zip(layers, states):
        signal = channel_norm(s.tokens.float()).mean(1)
        expected = torch.stack([signal[b["label"] == c].mean(0) for c in (0, 1)])
        torch.testing.assert_close(getattr(det, f"cgp_mean_{i}") / (1 - m), expected, rtol=1e-4, atol=1e-5)


def test_a_class_absent_from_the_batch_is_not_updated():
    det = build(cgp_warmup_batches=1, rrm=False, hri=False)
    out = step(det, batch(labels=(1, 1, 1, 1)))
    assert det.cgp_updates.tolist() == [0, 1]
    assert "cgp_var_full" in out and "cgp_norm" not in out  # ‖CGP‖ needs both classes
    assert torch.count_nonzero(det.cgp_mean_6[0]) == 0 and torch.count_nonzero(det.cgp_mean_6[1]) > 0


def test_cgp_buffers_round_trip_through_the_state_dict():
    det = build(cgp_warmup_batches=1)
    b = batch()
    step(det, b)
    state = copy.deepcopy(det.state_dict())
    assert {"cgp_mean_6", "cgp_mean_11", "cgp_updates", "cgp_batches"} <= set(state)
    clone = build(seed=5, cgp_warmup_batches=1)
    clone.load_state_dict(state, strict=True)
    assert torch.equal(logits(clone, b), logits(det, b))
    fresh = build(cgp_warmup_batches=1)  # CGP not ready: loading it makes det forget it was ready
    det.load_state_dict(fresh.state_dict(), strict=True)
    assert torch.equal(logits(det, b), logits(fresh, b))


def test_warm_up_batches_skip_optimisation_then_train_and_log_the_diagnostics():
    det = build(cgp_warmup_batches=2)
    b = batch()
    params = {n: p.clone() for n, p in det.named_parameters()}
    assert det.warmup_batches == 2 and build(cgp_warmup_batches=2, cgp=False, rrm=False, rsi=False).warmup_batches == 0
    for _ in range(2):
        out = warm(det, b)
        assert {"loss", "cgp_var_full", "cgp_norm"} <= set(out)
        assert all(torch.equal(params[n], p) for n, p in det.named_parameters())
    out = step(det, b)
    assert det.cgp_batches == 3
    assert any(not torch.equal(params[n], p) for n, p in det.named_parameters())
    for key in ["loss", "loss_perturbed", "cgp_var_full", "cgp_var_masked", "cgp_norm", "cgp_norm_inj",
                "cgp_var_masked_l6", "cgp_norm_inj_l11"]:
        assert torch.isfinite(torch.as_tensor(out[key])), key


def test_same_seed_same_logits_after_a_step():
    b = batch()
    results = []
    for _ in range(2):
        det = build(cgp_warmup_batches=0)
        step(det, b), step(det, b)
        results.append(logits(det, b))
    assert torch.equal(*results)


@pytest.mark.parametrize("settings,match", [
    ({"rho": -1.0}, "rho"),
    ({"rho": float("nan")}, "rho"),
    ({"tune": "last:0"}, "tune"),
    ({"tune": "last:99"}, "tune"),
    ({"tune": "everything"}, "tune"),
    ({"rsi_layers": "last99"}, "rsi_layers"),
    ({"rsi_layers": [3, 12]}, "rsi_layers"),
    ({"rsi_layers": "first_half"}, "rsi_layers"),
    ({"rsi_layers": []}, "rsi_layers"),
    ({"hri_layers": [-13]}, "hri_layers"),
    ({"hri_layers": "last0"}, "hri_layers"),
    ({"cgp": False}, "need the Contrastive Gradient Proxy"),
    ({"cgp": False, "rsi": False}, "need the Contrastive Gradient Proxy"),
    ({"rrm_keep": 0.0}, "rrm_keep"),
    ({"cgp_momentum": 1.0}, "cgp_momentum"),
    ({"rsi_mode": "inside"}, "rsi_mode"),
])
def test_bad_settings_are_config_errors(settings, match):
    with pytest.raises(ConfigError, match=match):
        build(**settings)


@pytest.mark.slow
def test_cgp_buffers_are_synchronised_across_two_processes(tmp_path):
    script = tmp_path / "sync.py"
    script.write_text(textwrap.dedent(f"""
        import sys, torch
        from accelerate import Accelerator
        from bench.plugin.types import StepContext
        from bench.plugin.factory import resolve_detector
        from detectors.blocks.corit_parts import channel_norm

        acc = Accelerator(cpu=True)
        rank = acc.process_index
        torch.manual_seed(0)
        det = resolve_detector("corit", {{**{VIT!r}, **{CGP_ONLY!r}, "cgp_warmup_batches": 1}}).build()
        labels = torch.tensor([1, 1, 1, 0] if rank == 0 else [0, 0, 1, 0, 0])
        images = torch.randn(len(labels), 3, 32, 32, generator=torch.Generator().manual_seed(rank + 1))
        with torch.no_grad():
            states, _ = det.backbone.eval().forward_layers(images, det._cgp_layers)
        sums = [torch.stack([channel_norm(s.tokens).mean(1)[labels == c].sum(0) for c in (0, 1)])
                for s in states]
        optimizer, _ = det.configure_optimizer(2)
        model, optimizer = acc.prepare(det, optimizer)
        model.train()
        ctx = StepContext(model=model, optimizer=optimizer, accelerator=acc)
        batch = {{"image": images, "label": labels}}
        det.warmup_step(batch, ctx), det.train_step(batch, ctx)
        # Defaults (HRI on) under DDP: a second step fails if a trainable parameter gets no gradient.
        torch.manual_seed(0)
        full = resolve_detector("corit", {{**{VIT!r}, "cgp_warmup_batches": 0}}).build()
        f_opt, _ = full.configure_optimizer(2)
        f_model, f_opt = acc.prepare(full, f_opt)
        f_model.train()
        f_ctx = StepContext(model=f_model, optimizer=f_opt, accelerator=acc)
        for _ in range(2):
            full.train_step({{"image": images, "label": labels}}, f_ctx)
        torch.save({{"buffers": {{k: v for k, v in det.state_dict().items() if k.startswith("cgp_")}},
                    "full": {{k: v for k, v in full.state_dict().items() if k.startswith("cgp_")}}, "sums": sums, "counts": torch.bincount(labels, minlength=2), "world": acc.num_processes}},
                   sys.argv[1] + f"/rank{{rank}}.pt")
    """))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(tmp_path)]
    done = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0]["world"] == 2
    counts = ranks[0]["counts"] + ranks[1]["counts"]
    m = 0.99
    for n, (s0, s1) in enumerate(zip(ranks[0]["sums"], ranks[1]["sums"])):
        key = f"cgp_mean_{6 + n}"
        assert torch.equal(ranks[0]["buffers"][key], ranks[1]["buffers"][key])
        # Two updates with the same batches: the bias-corrected mean is the count-weighted mean.
        expected = (s0 + s1) / counts[:, None]
        torch.testing.assert_close(ranks[0]["buffers"][key] / (1 - m ** 2), expected, rtol=1e-4, atol=1e-5)
    assert ranks[0]["buffers"]["cgp_updates"].tolist() == [2, 2]
    assert all(torch.equal(v, ranks[1]["full"][k]) for k, v in ranks[0]["full"].items())

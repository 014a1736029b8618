"""Tests for bench/plugin/steps.py: the plain step and SAM as a train step over any base optimizer."""

from __future__ import annotations

import copy

import pytest
import torch
from accelerate import Accelerator
from torch import nn

from bench.errors import ConfigError
from bench.plugin.detector import Detector
from bench.plugin.steps import sam_step, standard_step
from bench.plugin.types import StepContext


class Tiny(Detector):
    """Two-layer MLP with a BatchNorm: enough to see perturbation, restore and running statistics."""

    def __init__(self):
        super().__init__()
        # No bias before the BatchNorm: its gradient is rounding noise, which Adam would amplify.
        self.net = nn.Sequential(nn.Linear(6, 5, bias=False), nn.BatchNorm1d(5), nn.Tanh(), nn.Linear(5, 1))

    def forward(self, images):
        return self.net(images.flatten(1)).squeeze(1)


def _setup(prepare: bool = True, lr: float = 0.1):
    torch.manual_seed(0)
    model = Tiny().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    acc = Accelerator(cpu=True)
    prepared, optimizer = acc.prepare(model, optimizer) if prepare else (model, optimizer)
    return model, StepContext(model=prepared, optimizer=optimizer, accelerator=acc)


def _batch():
    g = torch.Generator().manual_seed(1)
    return {"image": torch.randn(8, 6, 1, 1, generator=g), "label": torch.tensor([0, 1] * 4)}


def _grads(model: Tiny, batch) -> list[torch.Tensor]:
    model.zero_grad(set_to_none=True)
    model.loss(model(batch["image"]), batch).backward()
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("prepare", [True, False], ids=["accelerate_optimizer", "plain_optimizer"])
def test_sam_step_equals_a_manual_sam_update(adaptive, prepare):
    rho, batch = 0.5, _batch()
    model, ctx = _setup(prepare)
    reference = copy.deepcopy(model)
    w0 = [p.detach().clone() for p in reference.parameters()]
    g = _grads(reference, batch)
    scale = [w.abs() if adaptive else torch.ones_like(w) for w in w0]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(s * gi) for s, gi in zip(scale, g)]))
    with torch.no_grad():
        for p, s, gi in zip(reference.parameters(), scale, g):
            p.add_(rho * s * s * gi / norm)
    g_perturbed = _grads(reference, batch)
    with torch.no_grad():
        for p, w in zip(reference.parameters(), w0):
            p.copy_(w)
    base = torch.optim.AdamW(reference.parameters(), lr=0.1, weight_decay=0.01)
    for p, gp in zip(reference.parameters(), g_perturbed):
        p.grad = gp
    base.step()

    out = sam_step(model, batch, ctx, rho=rho, adaptive=adaptive)
    assert set(out) == {"loss", "loss_perturbed"} and out["loss_perturbed"] > out["loss"]
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6)
    assert all(p.grad is None for p in model.parameters())


def test_perturbed_pass_leaves_batchnorm_statistics_alone():
    batch = _batch()
    model, ctx = _setup()
    once = copy.deepcopy(model)
    once(batch["image"])  # one training-mode pass at w moves the running statistics once
    sam_step(model, batch, ctx, rho=0.5)
    bn, expected = model.net[1], once.net[1]
    assert torch.equal(bn.running_mean, expected.running_mean) and torch.equal(bn.running_var, expected.running_var)
    assert int(bn.num_batches_tracked) == 1 and bn.momentum == expected.momentum


def test_rho_zero_is_exactly_the_standard_step():
    batch = _batch()
    model, ctx = _setup()
    plain, plain_ctx = _setup()
    out = sam_step(model, batch, ctx, rho=0.0)
    standard_step(plain, batch, plain_ctx)
    assert torch.equal(out["loss"], out["loss_perturbed"])
    for p, q in zip(model.state_dict().values(), plain.state_dict().values()):
        assert torch.equal(p, q)


def test_adaptive_differs_from_plain_sam():
    batch = _batch()
    sam, ctx = _setup()
    asam, actx = _setup()
    sam_step(sam, batch, ctx, rho=0.5)
    sam_step(asam, batch, actx, rho=0.5, adaptive=True)
    assert any(not torch.equal(p, q) for p, q in zip(sam.parameters(), asam.parameters()))


@pytest.mark.parametrize("rho", [-0.1, float("nan"), "0.05"])
def test_bad_radius_is_a_config_error(rho):
    model, ctx = _setup()
    with pytest.raises(ConfigError, match="rho"):
        sam_step(model, _batch(), ctx, rho=rho)

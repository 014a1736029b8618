"""``check_detector``: the adapter contract as reusable checks (scikit-learn's ``check_estimator`` idea).

Third-party adapters call it in their own tests::

    from bench.testing import check_detector
    def test_my_detector():
        check_detector(lambda: MyDetector(MyDetector.Config(image_size=32)))
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
import torch
from PIL import Image
from torch import nn

from bench.errors import ConfigError
from bench.plugin.detector import Detector
from bench.plugin.settings import build_config
from bench.plugin.types import FeatureSet, StepContext


class _CallCounter(nn.Module):
    """Stands in for the prepared model so the check can see whether ``train_step`` calls ``ctx.model``."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, *args, **kwargs):
        self.calls += 1
        return self.inner(*args, **kwargs)


def _images(detector: Detector, n: int, train: bool, margin: int = 8) -> torch.Tensor:
    rng = np.random.default_rng(0)
    size = detector.data_config().image_size + margin
    transform = detector.transform(train=train)
    pics = [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]
    return torch.stack([transform(p) for p in pics])


def _is_number(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.numel() == 1
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_detector(factory: Callable[[], Detector], batch_size: int = 4) -> list[str]:
    """Run every contract check on detectors built by ``factory``; return the names of the checks run.

    A detector that needs forward-only passes before its first optimisation step declares how many
    in ``warmup_batches``; they run through ``warmup_step`` first, as the runner runs them, and the
    first ``train_step`` after them must move a trainable parameter.

    Raises ``AssertionError`` naming the broken rule.
    """
    from accelerate import Accelerator

    torch.manual_seed(0)
    det = factory()
    done = []
    assert isinstance(det, Detector), f"factory returned {type(det).__name__}, not a bench.Detector"

    try:
        build_config(type(det).Config, {"surely_not_a_setting": 1}, where="check")
    except ConfigError:
        done.append("config_rejects_unknown_keys")
    else:
        raise AssertionError("Config accepted an unknown key; it must be a dataclass (bench validates keys)")

    size = det.data_config().image_size
    x = _images(det, batch_size, train=False)
    assert x.shape == (batch_size, 3, size, size), f"transform(train=False) gave {tuple(x.shape[1:])}, " \
                                                   f"expected (3, {size}, {size}) from data_config()"
    # Training may use another size than evaluation (NPR trains on 224 crops and tests 256-px images), but one
    # square size whatever the input's.
    shape = _images(det, 2, train=True).shape[1:]
    assert shape[0] == 3 and shape[1] == shape[2] and _images(det, 2, train=True, margin=24).shape[1:] == shape, \
        "transform(train=True) does not give one square size for inputs of different sizes"
    done.append("transform_size")
    check_forward(det, x)
    done.append("forward_shape")
    if det.fits_features:
        check_features(det, x)
        done.append("fit_features")
    else:
        acc = Accelerator(cpu=True)
        check_train_step(det, batch_size, lambda model, optimizer: acc.prepare(model, optimizer), acc)
        done.append("train_step")

    det.eval()
    with torch.no_grad():
        before = det(x)
    clone = factory()
    clone.load_state_dict(copy.deepcopy(det.state_dict()), strict=True)
    clone.eval()
    with torch.no_grad():
        after = clone(x)
    assert torch.allclose(before, after, atol=1e-5), "state_dict round trip changes the outputs"
    done.append("state_dict_round_trip")
    return done


def check_forward(det: Detector, x: torch.Tensor) -> None:
    """``forward`` maps ``[B, 3, H, W]`` to ``[B]`` floats (AssertionError otherwise)."""
    det.eval()
    with torch.no_grad():
        out = det(x)
    assert isinstance(out, torch.Tensor), f"forward returned {type(out).__name__}, expected a tensor of logits"
    assert out.shape == (len(x),), f"forward returned shape {tuple(out.shape)}, expected ({len(x)},)"
    assert out.dtype.is_floating_point, f"forward returned {out.dtype}, expected a float dtype"


def check_features(det: Detector, x: torch.Tensor) -> None:
    """``features`` gives ``[B, D]`` and ``fit_features`` accepts feature sets (closed-form detectors)."""
    assert any(p.requires_grad for p in det.parameters()), "the detector has no trainable parameter"
    with torch.no_grad():
        feats = det.features(x)
    assert feats.ndim == 2 and feats.shape[0] == len(x), f"features() gave shape {tuple(feats.shape)}, " \
                                                          f"expected ({len(x)}, D)"
    labels = torch.tensor([0, 1] * (len(x) // 2) + [0] * (len(x) % 2))
    fake = FeatureSet(torch.randn(16, feats.shape[1]), torch.tensor([0, 1] * 8))
    det.fit_features(fake, FeatureSet(feats.float(), labels), "best:auc")


def check_train_step(det: Detector, batch_size: int, prepare: Callable, accelerator) -> None:
    """The declared warm-up, then one ``train_step``: it calls ``ctx.model``, returns a mapping of
    numbers, moves a trainable parameter and leaves frozen parameters and their buffers alone.

    ``prepare(model, optimizer)`` wraps them as the runner would (Accelerate's ``prepare``, or the
    identity for a throwaway copy); ``accelerator`` goes into the step context.
    """
    trainable = {n: p.detach().clone() for n, p in det.named_parameters() if p.requires_grad}
    frozen = {n: p.detach().clone() for n, p in det.named_parameters() if not p.requires_grad}
    assert trainable, "the detector has no trainable parameter"
    counter = _CallCounter(det)
    optimizer, _ = det.configure_optimizer(total_steps=1)
    model, optimizer = prepare(counter, optimizer)
    model.train()
    device = next(det.parameters()).device
    batch = {"image": _images(det, batch_size, train=True).to(device),
             "label": torch.tensor([0, 1] * (batch_size // 2), device=device),
             "index": torch.arange(batch_size, device=device)}
    buffers = {n: b.clone() for n, b in det.named_buffers()}
    ctx = StepContext(model=model, optimizer=optimizer, accelerator=accelerator)
    for _ in range(int(det.warmup_batches or 0)):
        det.warmup_step(batch, ctx)
    assert all(torch.equal(p, trainable[n]) for n, p in det.named_parameters() if n in trainable), \
        "warmup_step changed a trainable parameter; warm-up passes must not optimise"
    counter.calls = 0
    out = det.train_step(batch, ctx)
    moved = [n for n, p in det.named_parameters() if n in trainable and not torch.equal(p, trainable[n])]
    assert counter.calls > 0, "train_step never called ctx.model; call ctx.model(...), not self(...), so DDP " \
                              "gradient sync and autocast apply"
    assert isinstance(out, Mapping) and all(_is_number(v) for v in out.values()), \
        f"train_step returned {type(out).__name__}; return a dict of scalar numbers or tensors to log"
    assert moved, "the first train_step (after warmup_batches warm-up passes) left every trainable " \
                  "parameter unchanged; step the optimizer (ctx.optimizer.step()) in train_step"
    for name, p in det.named_parameters():
        assert name not in frozen or torch.equal(p, frozen[name]), f"frozen parameter {name} changed in training"
    frozen_modules = {n.rsplit(".", 1)[0] for n in frozen}
    for name, b in det.named_buffers():
        if name.rsplit(".", 1)[0] in frozen_modules and b.is_floating_point():
            assert torch.equal(b, buffers[name]), f"buffer {name} of a frozen module changed in training " \
                                                  "(keep frozen parts in eval mode)"

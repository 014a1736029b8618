"""What a detector costs: parameters, forward FLOPs per image, training time and predict throughput.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (PyTorch's own per-operator
formulas: a multiply-add is 2 FLOPs; matrix products, convolutions and attention are counted,
element-wise operations are not) on one forward pass of a deep copy of the detector in eval mode,
batch 1, at its evaluation input size (``data_config().image_size``, square), so the run's own
weights, buffers and hooks are never touched. Times are the run's wall clock on its device.
"""

from __future__ import annotations

import copy
from typing import Any

import torch

#: How the GFLOPs are measured, stored beside the number.
FLOPS_METHOD = "torch.utils.flop_counter.FlopCounterMode, one forward pass, batch 1, eval mode (2 FLOPs per multiply-add)"


def forward_gflops(detector: torch.nn.Module, image_size: int) -> dict[str, Any]:
    """``{"gflops_per_image", "input", "method"}`` of one forward pass (``gflops_per_image`` None with ``error``)."""
    from torch.utils.flop_counter import FlopCounterMode

    shape = [1, 3, int(image_size), int(image_size)]
    out: dict[str, Any] = {"gflops_per_image": None, "input": shape, "method": FLOPS_METHOD}
    model = copy.deepcopy(detector).eval()
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(torch.zeros(shape, device=device))
        out["gflops_per_image"] = round(counter.get_total_flops() / 1e9, 6)
    except (RuntimeError, NotImplementedError, TypeError, ValueError) as err:  # recorded, never a made-up number
        out["error"] = f"{type(err).__name__}: {err}"[:300]
    finally:
        del model
    return out


def device_name(device: torch.device | str) -> str:
    """``cuda:0 (NVIDIA H100 80GB HBM3)`` or ``cpu (<CPU model>)``."""
    from bench.run.provenance import cpu_info

    device = torch.device(device)
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({cpu_info()['model']})"


def cost_record(detector: torch.nn.Module, device: torch.device | str, fit_seconds: float, predict_seconds: float,
                images: int, cache: dict[str, Any] | None, tests: list[str] | None = None) -> dict[str, Any]:
    """The ``cost`` block of results.json.

    ``predict_images_per_second`` is end to end (decoding, transform, forward) over every test image;
    ``predict_cached_share`` is the share of those images whose features came from the feature
    cache, which makes the throughput faster than a fresh forward pass (the pages then say so).
    ``tests``: the test sets' split names (default: every split but train and val).
    """
    tests = {k: v for k, v in ((cache or {}).get("splits") or {}).items()
             if (k in tests if tests is not None else k not in ("train", "val"))}
    hits = sum(int(v.get("hits", 0)) for v in tests.values())
    return {
        "params_total": sum(p.numel() for p in detector.parameters()),
        "params_trainable": sum(p.numel() for p in detector.parameters() if p.requires_grad),
        **forward_gflops(detector, detector.data_config().image_size),
        "fit_seconds": round(fit_seconds, 2),
        "predict_seconds": round(predict_seconds, 2),
        "predict_images": int(images),
        "predict_images_per_second": round(images / predict_seconds, 2) if predict_seconds > 0 else None,
        "predict_cached_share": round(hits / images, 4) if images else 0.0,
        "device": device_name(device),
    }

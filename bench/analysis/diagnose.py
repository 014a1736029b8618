"""Layer-wise gradient signal-to-noise ratio (GSNR) of a detector's training loss (shared/corit.md §9).

On probe samples of a protocol's train split, per-sample gradients g_i of ``detector.loss`` w.r.t.
every trainable parameter are reduced to a mean m and an unbiased variance v per parameter element.
Per element r_j = m_j² / (v_j + 1e-12); per layer ``gsnr_mean`` = mean of r_j and
``gsnr_ratio`` = ‖m_l‖² / (Σ v_l + 1e-12).

Layers follow the backbone's tapped layers (``Backbone.layer_names``) in forward order:
``stem`` (depth 0, parameters before the first tapped layer), the tapped layers (depth 1..L; a
parameter between two tapped modules, e.g. an untapped CNN stage, counts towards the next tapped
layer, whose output it feeds), ``final`` (depth L+1: norms, pooling, projection after the last
layer) and ``head`` (depth L+2: every trainable parameter outside the backbone).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from bench.errors import BenchError, ConfigError

EPS = 1e-12
COLUMNS = ["detector", "run", "seed", "layer", "depth", "n_params", "gsnr_mean", "gsnr_ratio"]
# Root-level names of library models that sit after the last block even when they are registered
# first (open_clip registers ``proj`` on the root module, before its transformer).
_FINAL_NAMES = {"proj", "ln_post", "norm", "fc_norm", "head", "head_norm", "conv_head", "bn2", "attn_pool",
                "global_pool", "final_conv"}


def _find_backbone(detector: nn.Module) -> tuple[str, nn.Module] | None:
    from detectors.blocks.backbones import Backbone

    return next(((name, m) for name, m in detector.named_modules() if isinstance(m, Backbone)), None)


def layer_groups(detector: nn.Module) -> dict[str, tuple[str, int]]:
    """Map every trainable parameter name of ``detector`` to ``(layer, depth)`` (see the module docstring).

    Only the first :class:`detectors.blocks.backbones.Backbone` found is split into layers; a detector
    without one has every trainable parameter in ``head``.
    """
    found = _find_backbone(detector)
    trainable = [name for name, p in detector.named_parameters() if p.requires_grad]
    groups: dict[str, tuple[str, int]] = {}
    n_layers = 0
    if found is not None:
        prefix, backbone = found
        names = list(backbone.layer_names)
        n_layers = len(names)
        # ``blocks`` are the tapped modules in layer_names order; identity works across libraries
        # (open_clip's blocks live at transformer.resblocks.N but are named blocks.N).
        owner = {id(p): i for i, block in enumerate(backbone.blocks) for p in block.parameters()}
        full = f"{prefix}.model." if prefix else "model."
        pointer = 0
        for name, p in backbone.model.named_parameters():
            if id(p) in owner:
                index = owner[id(p)]
                pointer = index + 1
                group = (names[index], index + 1)
            elif name.split(".")[0] in _FINAL_NAMES or pointer >= n_layers:
                group = ("final", n_layers + 1)
            elif pointer == 0:
                group = ("stem", 0)
            else:
                group = (names[pointer], pointer + 1)
            groups[full + name] = group
    return {name: groups.get(name, ("head", n_layers + 2)) for name in trainable}


def _merge(state: dict[str, list], grads: dict[str, Tensor]) -> None:
    """Fold a chunk of per-sample gradients [b, ...] into running (count, mean, M2) in float64 (Chan et al.)."""
    for name, g in grads.items():
        g = g.detach().to(torch.float64)
        b = g.shape[0]
        chunk_mean = g.mean(0)
        chunk_m2 = ((g - chunk_mean) ** 2).sum(0)
        if name not in state:
            state[name] = [b, chunk_mean, chunk_m2]
            continue
        n, mean, m2 = state[name]
        delta = chunk_mean - mean
        total = n + b
        state[name] = [total, mean + delta * (b / total), m2 + chunk_m2 + delta ** 2 * (n * b / total)]


def _loss_batch(x: Tensor, y: Tensor) -> dict[str, Tensor]:
    return {"image": x, "label": y, "index": torch.zeros_like(y)}


def _vmap_grads(detector: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    from torch.func import functional_call, grad, vmap

    params = {n: p.detach() for n, p in detector.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in detector.named_parameters() if not p.requires_grad}
    buffers = {n: b.detach() for n, b in detector.named_buffers()}

    def one(trainable: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        logits = functional_call(detector, (trainable, frozen, buffers), (xi[None],))
        return detector.loss(logits, _loss_batch(xi[None], yi[None]))

    return vmap(grad(one), in_dims=(None, 0, 0))(params, x, y)


def _loop_grads(detector: nn.Module, x: Tensor, y: Tensor) -> dict[str, Tensor]:
    named = [(n, p) for n, p in detector.named_parameters() if p.requires_grad]
    rows = []
    for i in range(x.shape[0]):
        # enable_grad: callers may sit under no_grad (e.g. inside an evaluation loop).
        with torch.enable_grad():
            loss = detector.loss(detector(x[i:i + 1]), _loss_batch(x[i:i + 1], y[i:i + 1]))
            grads = torch.autograd.grad(loss, [p for _, p in named], allow_unused=True)
        rows.append([torch.zeros_like(p) if g is None else g for (_, p), g in zip(named, grads)])
    return {n: torch.stack([row[k] for row in rows]) for k, (n, _) in enumerate(named)}


def gradient_moments(detector: nn.Module, images: Tensor, labels: Tensor, method: str = "auto",
                     chunk_size: int = 32) -> tuple[dict[str, tuple[Tensor, Tensor]], str]:
    """Mean and unbiased variance (float64) of per-sample loss gradients for each trainable parameter.

    The detector runs in eval mode (BatchNorm uses running statistics, dropout is off).
    ``method``: ``"vmap"`` (torch.func ``vmap(grad(functional_call))``), ``"loop"`` (micro-batches of
    one) or ``"auto"`` (vmap, falling back to the loop when vmap cannot trace the model). Runs on the
    device of the detector's parameters. Returns the moments and the method used.
    """
    if method not in ("auto", "vmap", "loop"):
        raise ConfigError(f"GSNR method must be 'auto', 'vmap' or 'loop', got {method!r}.")
    if images.shape[0] < 2:
        raise ConfigError(f"GSNR needs at least 2 probe samples for a variance, got {images.shape[0]}.")
    if not any(p.requires_grad for p in detector.parameters()):
        raise ConfigError(f"{type(detector).__name__} has no trainable parameters, so it has no gradient to measure.")
    device = next(p for p in detector.parameters() if p.requires_grad).device
    images, labels = images.to(device), labels.to(device, torch.int64)
    # Per-sample gradients of a chunk take chunk x n_trainable floats: cap them near 2 GiB (full
    # fine-tuning of a large ViT then runs one sample at a time).
    n_trainable = sum(p.numel() for p in detector.parameters() if p.requires_grad)
    chunk_size = max(1, min(chunk_size, 2 ** 29 // n_trainable))
    was_training = detector.training
    detector.eval()
    state: dict[str, list] = {}
    try:
        for start in range(0, images.shape[0], chunk_size):
            x, y = images[start:start + chunk_size], labels[start:start + chunk_size]
            if method != "loop":
                try:
                    _merge(state, _vmap_grads(detector, x, y))
                    method = "vmap"
                    continue
                except (RuntimeError, NotImplementedError, ValueError, TypeError):
                    # vmap cannot trace every model (data-dependent control flow, .item(), in-place
                    # buffer updates); "auto" falls back, an explicit "vmap" request does not.
                    if method == "vmap" or state:
                        raise
                    method = "loop"
            _merge(state, _loop_grads(detector, x, y))
    finally:
        detector.train(was_training)
    return {name: (mean, m2 / (n - 1)) for name, (n, mean, m2) in state.items()}, method


def layer_gsnr(detector: nn.Module, images: Tensor, labels: Tensor, method: str = "auto",
               chunk_size: int = 32) -> pd.DataFrame:
    """Per-layer GSNR of ``detector``'s loss on ``images`` [N, 3, H, W] with ``labels`` [N] (1 = fake).

    Columns: layer, depth, n_params, gsnr_mean, gsnr_ratio; one row per layer that has trainable
    parameters, in depth order. ``frame.attrs["method"]`` records how per-sample gradients were taken.
    """
    moments, used = gradient_moments(detector, images, labels, method, chunk_size)
    groups = layer_groups(detector)
    acc: dict[tuple[int, str], list[float]] = {}
    for name, (mean, var) in moments.items():
        r = mean ** 2 / (var + EPS)
        row = acc.setdefault((groups[name][1], groups[name][0]), [0, 0.0, 0.0, 0.0])
        row[0] += mean.numel()
        row[1] += float(r.sum())
        row[2] += float((mean ** 2).sum())
        row[3] += float(var.sum())
    rows = [{"layer": layer, "depth": depth, "n_params": int(k), "gsnr_mean": r_sum / k,
             "gsnr_ratio": m_sq / (v_sum + EPS)} for (depth, layer), (k, r_sum, m_sq, v_sum) in sorted(acc.items())]
    frame = pd.DataFrame(rows, columns=COLUMNS[2:])
    frame.attrs["method"] = used
    return frame


def load_run_detector(run_dir: str | Path) -> nn.Module:
    """Rebuild the detector of a finished run and load its trained weights strictly.

    The detector comes from ``results.json`` (``detector.name`` and the resolved ``detector.config``);
    the weights from ``checkpoint/model.safetensors`` as the runner writes it (trainable parameters
    and buffers, see :mod:`bench.run.checkpoint`), through the detector's ``load_checkpoint`` hook.
    """
    from bench.plugin.factory import resolve_detector
    from bench.run.checkpoint import CHECKPOINT, read_checkpoint
    from bench.run.results import read_results

    run_dir = Path(run_dir)
    info = read_results(run_dir).get("detector") or {}
    if "name" not in info or "config" not in info:
        raise BenchError(f"{run_dir}/results.json has no detector name and config; it cannot be rebuilt.")
    if not (run_dir / CHECKPOINT).is_file():
        raise BenchError(f"{run_dir} has no {CHECKPOINT.as_posix()}, so its trained weights cannot be loaded; "
                         "re-run it with a bench version that saves checkpoints.")
    state, meta = read_checkpoint(run_dir / CHECKPOINT)
    spec = resolve_detector(info["name"], info["config"])
    if meta.get("config_sha256") and meta["config_sha256"] != spec.config_sha256():
        raise BenchError(f"{run_dir / CHECKPOINT} was saved for another configuration of {info['name']!r} than "
                         f"its results.json describes (or by another detector version); it cannot be rebuilt.")
    detector = spec.build()
    detector.load_checkpoint(state, str(run_dir / CHECKPOINT), meta)
    return detector


def probe_samples(protocol: Any, n: int, seed: int = 0, data_root: str | Path | None = None) -> tuple[list, Tensor]:
    """``n`` decoded images of the protocol's train split, balanced by class, drawn with ``seed``.

    Returns (PIL images after the protocol's perturbations, int64 labels); each detector applies
    its own ``transform(train=False)``. A class with fewer images than its share contributes all it has.
    """
    from bench.api import data_root_from
    from bench.data.dataset import RawDataset
    from bench.data.splits import ResolvedSplit, build_sources, resolve_split
    from bench.protocol import Protocol, load_protocol

    proto = protocol if isinstance(protocol, Protocol) else load_protocol(protocol)
    split = resolve_split("train", proto.train, build_sources(proto, data_root_from(data_root)))
    rng = np.random.default_rng(seed)
    keep = []
    for label, share in ((0, n // 2), (1, n - n // 2)):
        rows = np.flatnonzero(split.table["label"].to_numpy() == label)
        keep.extend(rng.choice(rows, size=min(share, len(rows)), replace=False).tolist())
    table = split.table.iloc[sorted(keep)].reset_index(drop=True)
    items = RawDataset(ResolvedSplit("probe", table, split.sources), transform=lambda image: image)
    images = [items[i]["image"] for i in range(len(items))]
    return images, torch.tensor(table["label"].to_numpy(), dtype=torch.int64)


def gsnr(protocol: str | Path, detectors: list[str] | None, runs: list[Path] | None, n: int = 128,
         out_dir: str | Path = "gsnr", data_root: str | Path | None = None,
         overrides: dict[str, Any] | None = None, seed: int = 0, method: str = "auto",
         chunk_size: int = 32, device: str | None = None) -> pd.DataFrame:
    """Layer-wise GSNR of fresh detectors and of trained runs; writes ``gsnr.csv`` and ``gsnr.png``.

    ``detectors`` are built fresh (the protocol's ``detector_defaults``, then ``overrides``,
    initialised under ``seed``); ``runs`` are run directories whose trained weights are loaded with
    :func:`load_run_detector` (``overrides`` do not apply to them). Every one is probed on the same
    ``n`` train samples of ``protocol``, on ``device`` (default: CUDA when available, else CPU).
    Returns the table written to ``gsnr.csv`` (columns ``COLUMNS``).
    """
    from bench.analysis.plots import plot_gsnr
    from bench.plugin.factory import resolve_detector
    from bench.protocol import load_protocol
    from bench.run.results import read_results

    if not detectors and not runs:
        raise ConfigError("GSNR needs at least one --detector or --run to measure.")
    if n < 2:
        raise ConfigError(f"-n must be at least 2 (a variance needs two samples), got {n}.")
    proto = load_protocol(protocol)
    specs = [resolve_detector(name, overrides, proto.detector_defaults) for name in detectors or []]
    images, labels = probe_samples(proto, n, seed, data_root)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    frames = []
    for spec in specs:
        torch.manual_seed(seed)
        frames.append(_probe(spec.build().to(device), spec.name, "fresh", images, labels, method,
                             chunk_size).assign(seed=seed)[COLUMNS])
    for run_dir in runs or []:
        results = read_results(Path(run_dir))
        frames.append(_probe(load_run_detector(run_dir).to(device), results["detector"]["name"], Path(run_dir).name,
                             images, labels, method, chunk_size).assign(seed=results.get("seed"))[COLUMNS])
    table = pd.concat(frames, ignore_index=True)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table.to_csv(out_dir / "gsnr.csv", index=False, float_format="%.6g")
    plot_gsnr(table, out_dir / "gsnr.png", title=f"{proto.name}: layer-wise GSNR, n={len(labels)}")
    return table


def _probe(detector: nn.Module, name: str, run: str, images: list, labels: Tensor, method: str,
           chunk_size: int) -> pd.DataFrame:
    transform = detector.transform(train=False)
    batch = torch.stack([transform(image) for image in images])
    return layer_gsnr(detector, batch, labels, method, chunk_size).assign(detector=name, run=run, seed=0)[COLUMNS]

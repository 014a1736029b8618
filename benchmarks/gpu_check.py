"""GPU throughput check: bare ViT-L/14 forward vs "predict" with the data path, bf16, 1 or 2 processes.

Needs only torch and torchvision (with the Pillow and numpy they install); see gpu_check.sh for how
to run it and what to report. Every throughput is images per second over one long pass; ratios
are predict / bare measured in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
import torch.distributed as dist
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torch.utils.data.distributed import DistributedSampler
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg, read_file
from torchvision.transforms import InterpolationMode, v2

CLIP_MEAN, CLIP_STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


class ViT(nn.Module):
    """CLIP-style ViT image tower (ViT-L/14: width 1024, 24 layers, 16 heads, 257 tokens at 224 px)."""

    def __init__(self, image_size: int, patch: int, width: int, layers: int, heads: int, out_dim: int):
        super().__init__()
        self.conv = nn.Conv2d(3, width, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(width) * width**-0.5)
        self.pos = nn.Parameter(torch.randn((image_size // patch) ** 2 + 1, width) * 0.01)
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        layer = nn.TransformerEncoderLayer(width, heads, 4 * width, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.proj = nn.Linear(width, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1), x], dim=1) + self.pos
        return self.proj(self.ln_post(self.blocks(self.ln_pre(x))[:, 0]))


def pil_decode():
    """The project's decoder when ``bench.data`` imports (it needs pandas), else the same steps mirrored."""
    try:
        from bench.data.base import open_image

        return open_image, "bench.data.base.open_image"
    except ImportError as err:
        def open_rgb(path):
            with Image.open(path) as img:
                img.load()
                return img.convert("RGB")
        return open_rgb, f"mirror of bench.data.base.open_image (bench.data not importable: {err})"


def pil_transform(size: int):
    """The project's eval transform (``bench.plugin.transforms.build_transform``), else the same steps mirrored."""
    try:
        from bench.plugin.transforms import build_transform
        from bench.plugin.types import DataConfig

        cfg = DataConfig(image_size=size, mean=CLIP_MEAN, std=CLIP_STD, interpolation="bicubic")
        return build_transform(cfg, train=False), "bench.plugin.transforms.build_transform"
    except ImportError as err:
        from torchvision import transforms as T

        return T.Compose([T.Resize(size, interpolation=InterpolationMode.BICUBIC), T.CenterCrop(size),
                          T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)]), f"mirror ({err})"


def resize_crop(size: int) -> v2.Compose:
    """The eval resize + center crop on tensors (uint8 stays uint8: 4x less to send from the workers)."""
    return v2.Compose([v2.Resize(size, interpolation=InterpolationMode.BICUBIC, antialias=True), v2.CenterCrop(size)])


def normalize() -> v2.Compose:
    """uint8 → float in [0, 1] → the model's normalisation (run on the device)."""
    return v2.Compose([v2.ToDtype(torch.float32, scale=True), v2.Normalize(CLIP_MEAN, CLIP_STD)])


class Files(Dataset):
    """``repeat`` passes over the files as one long epoch; ``mode`` is the decode path."""

    def __init__(self, paths: list[Path], mode: str, size: int, repeat: int = 1):
        self.paths, self.mode, self.repeat = paths, mode, repeat
        if mode == "pil":
            self.decode, _ = pil_decode()
            self.transform, _ = pil_transform(size)
        elif mode == "tv":
            self.transform = resize_crop(size)

    def __len__(self) -> int:
        return len(self.paths) * self.repeat

    def __getitem__(self, i: int):
        path = self.paths[i % len(self.paths)]
        if self.mode == "pil":
            return self.transform(self.decode(path))
        if self.mode == "bytes":
            # Decoded later on the device, a batch at once. Plain bytes, not tensors: a batch of
            # many small tensors would each be sent through a shared-memory file descriptor.
            return path.read_bytes()
        return self.transform(decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB))


class _Writer(Dataset):
    """Writes image i (seeded by i, so the files do not depend on the worker count); used by make_images."""

    def __init__(self, folder: Path, n: int):
        self.folder, self.n = folder, n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        gen = torch.Generator().manual_seed(i)
        low = torch.rand(1, 3, 8, 8, generator=gen)
        img = nn.functional.interpolate(low, size=256, mode="bicubic", align_corners=False)[0]
        img = (img + 0.04 * torch.randn(3, 256, 256, generator=gen)).clamp(0, 1)
        data = encode_jpeg((img * 255).to(torch.uint8), quality=90).numpy().tobytes()
        (self.folder / f"{i:06d}.jpg").write_bytes(data)
        return len(data)


def make_images(folder: Path, n: int) -> list[Path]:
    """n 256-px JPEGs (q 90, ~24 KB) of smooth random content with fine noise, written by all cores."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) < n:
        workers = max(1, len(os.sched_getaffinity(0)) - 1)
        for _ in DataLoader(_Writer(folder, n), batch_size=64, num_workers=workers, collate_fn=len):
            pass
    return sorted(folder.glob("*.jpg"))[:n]


class Measure:
    """Runs the model over loaders like the runner's predict loop (scores to CPU each batch)."""

    def __init__(self, args, device: torch.device):
        self.args, self.device = args, device
        dims = (args.size, 8, 64, 2, 4, 32) if args.dry_run else (args.size, 14, 1024, 24, 16, 768)
        with torch.device(device):
            self.model = ViT(*dims).eval()
        self.params = sum(p.numel() for p in self.model.parameters())
        self.resize_crop, self.normalize = resize_crop(args.size), normalize()

    def step(self, images: torch.Tensor) -> int:
        """One predict step: to the device (uint8 is normalised there), forward, scores back to the CPU."""
        images = images.to(self.device, non_blocking=True)
        if images.dtype == torch.uint8:
            images = self.normalize(images)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16):
            self.model(images).float().cpu()
        return len(images)

    def decode_gpu(self, batch: list[bytes]) -> torch.Tensor:
        """decode_jpeg on the device for a whole batch of JPEG files' bytes, then the eval transform."""
        data = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in batch]
        images = decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device)
        # Resize in float: CUDA has no uint8 bicubic kernel, and this skips a rounding step.
        return self.resize_crop(self.normalize(torch.stack(images)))

    def bare(self, batches: int) -> int:
        """Forward passes over one ready batch already on the device; returns the images processed."""
        x = torch.randn(self.args.batch_size, 3, self.args.size, self.args.size, device=self.device)
        return sum(self.step(x) for _ in range(batches))

    def bare_rate(self, batches: int) -> float:
        """Images per second of ``bare`` after three warm-up batches."""
        self.bare(3)
        start = time.perf_counter()
        return self.bare(batches) / (time.perf_counter() - start)

    def loader(self, paths, mode: str, workers: int, repeat: int, sampler_rank=None) -> DataLoader:
        ds = Files(paths, mode, self.args.size, repeat)
        sampler = DistributedSampler(ds, *sampler_rank, shuffle=False) if sampler_rank else None
        extra = {"persistent_workers": True, "prefetch_factor": 2} if workers else {}
        return DataLoader(ds, batch_size=self.args.batch_size, num_workers=workers, sampler=sampler,
                          pin_memory=self.device.type == "cuda", collate_fn=list if mode == "bytes" else None, **extra)

    def timed(self, loader: DataLoader, model: bool) -> float:
        """Images per second over one pass, from the first request (worker start-up included)."""
        n, start = 0, time.perf_counter()
        for batch in loader:
            images = self.decode_gpu(batch) if isinstance(batch, list) else batch
            n += self.step(images) if model else len(images)
            if time.perf_counter() - start > self.args.max_seconds:
                break
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return n / (time.perf_counter() - start)


def agreement(paths: list[Path], m: Measure) -> dict[str, float]:
    """Max and mean |difference| of the tensor paths against the PIL path, in 0-255 pixel units."""
    pil = torch.stack([Files(paths, "pil", m.args.size)[i] for i in range(len(paths))])
    tv = m.normalize(torch.stack([Files(paths, "tv", m.args.size)[i] for i in range(len(paths))]))
    dev = m.decode_gpu([p.read_bytes() for p in paths]).float().cpu()
    scale = torch.tensor(CLIP_STD).view(1, 3, 1, 1) * 255
    out = {}
    for name, other in (("cpu_tv", tv), ("device_decode", dev)):
        diff = ((other - pil).abs() * scale)
        out[f"{name}_max_abs_px"], out[f"{name}_mean_abs_px"] = diff.max().item(), diff.mean().item()
    return out


def single(args, paths: list[Path]) -> dict:
    device = torch.device("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    m = Measure(args, device)
    auto = max(1, len(os.sched_getaffinity(0)) - 1)
    r = {"device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
         "torch": torch.__version__, "torchvision": __import__("torchvision").__version__,
         "model_params_m": round(m.params / 1e6, 1), "batch_size": args.batch_size, "image_size": args.size,
         "files": len(paths), "images_per_pass": len(paths) * args.repeat, "workers_auto": auto,
         "decode_code": pil_decode()[1], "transform_code": pil_transform(args.size)[1]}
    r["bare"] = m.bare_rate(args.bare_batches)
    for mode in ("pil", "tv"):
        r[f"loader_{mode}"] = m.timed(m.loader(paths, mode, auto, args.repeat), model=False)
        r[f"predict_{mode}"] = m.timed(m.loader(paths, mode, auto, args.repeat), model=True)
    io_workers = min(auto, 4)
    r["io_workers_device_decode"] = io_workers
    r["loader_device_decode"] = m.timed(m.loader(paths, "bytes", io_workers, args.repeat), model=False)
    r["predict_device_decode"] = m.timed(m.loader(paths, "bytes", io_workers, args.repeat), model=True)
    few = paths[: min(len(paths), 4 * args.batch_size)]
    r["predict_pil_workers0"] = m.timed(m.loader(few, "pil", 0, 1), model=True)
    r.update(agreement(paths[:8], m))
    for key in ("pil", "tv", "device_decode", "pil_workers0"):
        r[f"ratio_{key}"] = r[f"predict_{key}"] / r["bare"]
    return r


def distributed(args, paths: list[Path]) -> dict:
    """Each of the processes takes its share of the images (DistributedSampler); throughput is the total."""
    cuda = torch.cuda.is_available() and not args.dry_run
    dist.init_process_group("nccl" if cuda else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    m = Measure(args, device)
    workers = max(0, (len(os.sched_getaffinity(0)) - 1) // world)

    def total(fn) -> float:
        dist.barrier()
        start = time.perf_counter()
        n = fn()
        elapsed = torch.tensor([time.perf_counter() - start, float(n)])
        dist.all_reduce(elapsed[:1], op=dist.ReduceOp.MAX)
        dist.all_reduce(elapsed[1:], op=dist.ReduceOp.SUM)
        return (elapsed[1] / elapsed[0]).item()

    def one_pass(mode: str, w: int) -> int:
        n, start = 0, time.perf_counter()
        for batch in m.loader(paths, mode, w, args.repeat, (world, rank)):
            n += m.step(m.decode_gpu(batch) if isinstance(batch, list) else batch)
            if time.perf_counter() - start > args.max_seconds:
                break
        return n

    m.bare(3)
    r = {"processes": world, "workers_per_process": workers, "bare": total(lambda: m.bare(args.bare_batches)),
         "predict_pil": total(lambda: one_pass("pil", workers)),
         "predict_device_decode": total(lambda: one_pass("bytes", min(workers, 4)))}
    dist.destroy_process_group()
    return r if rank == 0 else {}


def report(out: Path) -> str:
    """The figures as text: settings, throughputs, ratios predict / bare, 2 vs 1 processes."""
    r = json.loads((out / "single.json").read_text())
    w, io = r["workers_auto"], r["io_workers_device_decode"]
    lines = [f"device {r['device']}; torch {r['torch']}, torchvision {r['torchvision']}"]
    lines.append(f"model: ViT image tower, {r['model_params_m']}M parameters (random init), bf16 autocast, "
                 f"batch {r['batch_size']}, {r['image_size']} px")
    lines.append(f"data: {r['files']} JPEG files of 256 px, {r['images_per_pass']} images per timed pass "
                 f"(worker start-up included)\n  decode: {r['decode_code']}\n  transform: {r['transform_code']}")
    lines.append(f"  {'bare forward (ready batch on the device)':59s} {r['bare']:8.0f} img/s")
    rows = [("pil", f"CPU PIL decode + transform, {w} workers"),
            ("tv", f"CPU decode_jpeg + v2 resize on uint8, {w} workers"),
            ("device_decode", f"decode_jpeg on device + v2, {io} read workers"),
            ("pil_workers0", "CPU PIL decode + transform, 0 workers")]
    for key, what in rows:
        alone = f"  (data path alone {r['loader_' + key]:.0f} img/s)" if "loader_" + key in r else ""
        lines.append(f"  predict, {what:50s} {r['predict_' + key]:8.0f} img/s  ratio {r['ratio_' + key]:.2f}{alone}")
    lines.append(f"tensor paths vs PIL path, 0-255 units: CPU decode_jpeg max {r['cpu_tv_max_abs_px']:.2f} "
                 f"mean {r['cpu_tv_mean_abs_px']:.3f}; device decode max {r['device_decode_max_abs_px']:.2f} "
                 f"mean {r['device_decode_mean_abs_px']:.3f}")
    if (out / "distributed.json").exists():
        d = json.loads((out / "distributed.json").read_text())
        lines.append(f"{d['processes']} processes, {d['workers_per_process']} workers each: total img/s, x 1 process")
        for key in ("bare", "predict_pil", "predict_device_decode"):
            lines.append(f"  {key:59s} {d[key]:8.0f} img/s  x{d[key] / r[key]:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, help="folder for the generated JPEGs and results")
    parser.add_argument("--files", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=4, help="passes over the files in one timed epoch")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--bare-batches", type=int, default=30)
    parser.add_argument("--max-seconds", type=float, default=30, help="cap on one timed pass")
    parser.add_argument("--dry-run", action="store_true", help="tiny model on the CPU (proves the script works)")
    parser.add_argument("--distributed", action="store_true", help="the torchrun part (1 vs 2 processes)")
    parser.add_argument("--report", action="store_true", help="print the figures of the parts that ran")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    if args.dry_run:
        torch.set_num_threads(1)  # tiny model: on a small shared CPU extra threads only wait on each other
    out = Path(args.dir)
    if args.report:
        print(report(out))
        return
    if args.distributed:  # the single-process part made the images; both ranks only read them
        paths = sorted((out / "images").glob("*.jpg"))[: args.files]
        result = distributed(args, paths)
    else:
        result = single(args, make_images(out / "images", args.files))
    if result:
        (out / ("distributed.json" if args.distributed else "single.json")).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""Tests for opt-in GPU JPEG decoding: the CPU-side parts everywhere (encoded bytes, fallbacks, the batch
flow run with torchvision's CPU decoder), and nvjpeg's equivalence with the CPU path where a GPU exists."""

from __future__ import annotations

import pytest
import torch
from images import write_bad, write_image
from PIL import Image
from torch.utils.data import DataLoader

from bench.data.dataset import RawDataset
from bench.data.decode import CONVERSIONS
from bench.data.gpu_decode import (
    GPU_TOLERANCE,
    apply_gpu_decode,
    collate_encoded,
    decode_batch_gpu,
    unpack_encoded,
)
from bench.data.sources.folder import FolderSource
from bench.data.sources.photos import load_photo
from bench.data.splits import ResolvedSplit
from bench.errors import ImageError
from bench.plugin.transforms import build_transform
from bench.plugin.types import DataConfig

CFG = DataConfig(image_size=32, std=(0.5, 0.5, 0.5))


@pytest.fixture
def split(tmp_path):
    """Photo crops as JPEG (colour, grey, CMYK) and PNG, plus a truncated JPEG."""
    photo = Image.fromarray(load_photo("coffee")).resize((64, 48))
    (tmp_path / "d").mkdir()
    photo.save(tmp_path / "d/a_colour.jpg", quality=90)
    photo.convert("L").save(tmp_path / "d/b_grey.jpg", quality=90)
    photo.convert("CMYK").save(tmp_path / "d/c_cmyk.jpg")
    photo.save(tmp_path / "d/d_photo.png")
    write_image(tmp_path / "d/e_small.jpg", size=(40, 40), seed=2)
    write_bad(tmp_path / "d/f_cut.jpg", "truncated_jpeg")
    source = FolderSource("d", {"root": "d", "layout": "", "label": 0}, tmp_path)
    table = source.select("test")
    table["source"] = "d"
    return ResolvedSplit("test", table, {"d": source})


def test_jpeg_rows_come_encoded_and_others_decoded(split):
    data = RawDataset(split, build_transform(CFG, train=False), decode="gpu", skip_bad=True)
    samples = [data[i] for i in range(len(data))]
    encoded = [bool(s["encoded"].numel()) for s in samples]
    # CMYK JPEG and PNG are decoded on the CPU; the truncated JPEG has no end marker, so the CPU finds it bad.
    assert encoded == [True, True, False, False, True, False]
    raw = (split.sources["d"].file_root() / "a_colour.jpg").read_bytes()
    assert samples[0]["encoded"].dtype == torch.uint8 and bytes(samples[0]["encoded"].numpy()) == raw
    kinds = [CONVERSIONS[int(s["conversion"])] for s in samples[:5]]
    assert kinds == ["none", "grayscale", "cmyk", "none", "none"]
    assert not samples[0]["image"].any() and samples[3]["image"].any()
    assert [bool(s["valid"]) for s in samples] == [True] * 5 + [False]


@pytest.mark.parametrize("train", [False, True])
def test_batch_flow_equals_the_cpu_path(split, train):
    transform = build_transform(CFG, train=train)
    cpu = RawDataset(split, transform, {5}, seed=3, tensor_input=True)
    gpu = RawDataset(split, transform, {5}, seed=3, decode="gpu")
    batch = next(iter(DataLoader(gpu, batch_size=5, collate_fn=collate_encoded)))
    assert batch["encoded"].dtype == torch.uint8 and batch["encoded"].ndim == 1  # one flat tensor per batch
    assert len(batch["encoded_sizes"]) == 5 and batch["seed"].dtype == torch.int64
    # torchvision's CPU decoder runs the same flow here; the CUDA test below swaps in nvjpeg.
    done = apply_gpu_decode(batch, "cpu", transform, describe=gpu.describe)
    expected = torch.stack([cpu[i]["image"] for i in range(5)])
    assert torch.equal(done["image"], expected) and done["valid"].all()


def test_undecodable_encoded_rows_are_named_or_masked(split):
    transform = build_transform(CFG, train=False)
    data = RawDataset(split, transform, {5}, decode="gpu")
    first, second = data[0], data[1]
    second["encoded"] = second["encoded"][:200].clone()  # cut inside the scan, as a broken disk would
    batch = collate_encoded([first, second])
    with pytest.raises(ImageError, match="b_grey.jpg cannot be decoded on cpu"):
        apply_gpu_decode(batch, "cpu", transform, describe=data.describe)
    done = apply_gpu_decode(batch, "cpu", transform, describe=data.describe, skip_bad=True)
    assert done["valid"].tolist() == [True, False] and not done["image"][1].any()
    with pytest.raises(ValueError):
        decode_batch_gpu([], "cpu", transform)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="GPU JPEG decoding needs a CUDA device")
def test_nvjpeg_matches_the_cpu_decoder_within_tolerance(split):
    from torchvision.io import ImageReadMode, decode_jpeg

    transform = build_transform(CFG, train=False)
    data = RawDataset(split, transform, {5}, decode="gpu")
    batch = collate_encoded([data[i] for i in range(5)])
    encoded = unpack_encoded(batch)
    rows = [k for k, e in enumerate(encoded) if e.numel()]
    for k in rows:
        cpu = decode_jpeg(encoded[k], mode=ImageReadMode.RGB).float()
        gpu = decode_jpeg(encoded[k], mode=ImageReadMode.RGB, device="cuda").cpu().float()
        assert (cpu - gpu).abs().mean() < GPU_TOLERANCE
    done = apply_gpu_decode(batch, "cuda", transform, describe=data.describe)
    assert done["image"].is_cuda
    cpu = RawDataset(split, transform, {5}, tensor_input=True)
    expected = torch.stack([cpu[k]["image"] for k in range(5)])
    diff = (done["image"].cpu() - expected).abs()
    assert diff.mean() < GPU_TOLERANCE / 255 / 0.5

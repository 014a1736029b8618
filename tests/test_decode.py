"""Tests for the decoding rules: conversions recorded by kind, fixed 16-bit/float rules, first frames,
the decompression-bomb guard, header-only checks, and the torchvision path giving PIL's pixels."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from images import BAD_KINDS, bad_bytes, rgb_array, write_bad, write_image
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

from bench.data import tensor_decode
from bench.data.decode import (
    CONVERSIONS,
    MAX_IMAGE_PIXELS,
    check_header,
    conversion_index,
    decode_bytes,
    decode_file,
    to_rgb_info,
)
from bench.data.tensor_decode import decode_tensor, decode_tensor_file, fast_kind, jpeg_info
from bench.errors import ImageError


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int, depth: int, colour: int, rows: bytes | None = None,
        extra: bytes = b"") -> bytes:
    """A PNG written by hand (PIL cannot write 16-bit RGB); ``rows`` None leaves out the pixel data."""
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    head = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr)
    body = _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b"") if rows is not None else b""
    return head + extra + body


def png16_rgb(arr: np.ndarray) -> bytes:
    h, w, _ = arr.shape
    return png(w, h, 16, 2, b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h)))


def _save(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


# -- kinds -----------------------------------------------------------------------------------------
def test_conversions_start_with_none_and_are_unique():
    assert CONVERSIONS[0] == "none" and len(set(CONVERSIONS)) == len(CONVERSIONS)
    assert conversion_index("16bit") == CONVERSIONS.index("16bit")


def _kind(data: bytes) -> tuple[np.ndarray, str]:
    img, kind = decode_bytes(data, "test image")
    assert img.mode == "RGB"
    return np.asarray(img), kind


def test_every_mode_is_converted_and_named():
    rgb = Image.fromarray(rgb_array((8, 6), seed=1))
    half = Image.fromarray(np.dstack([rgb_array((8, 6), seed=1), np.full((6, 8), 128, np.uint8)]), "RGBA")
    opaque = Image.fromarray(np.dstack([rgb_array((8, 6), seed=1), np.full((6, 8), 255, np.uint8)]), "RGBA")
    cases = {
        "none": _save(rgb, "PNG"),
        "grayscale": _save(rgb.convert("L"), "PNG"),
        "bilevel": _save(rgb.convert("1"), "PNG"),
        "palette": _save(rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG"),
        "cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "alpha_composited": _save(half, "PNG"),
        "alpha_opaque": _save(opaque, "PNG"),
        "other_mode": _save(rgb.convert("YCbCr"), "TIFF"),
    }
    for expected, data in cases.items():
        assert _kind(data)[1] == expected, expected
    # Half-transparent pixels are composited over white: (v + 255) / 2, not dropped to black.
    arr, _ = _kind(cases["alpha_composited"])
    assert np.abs(arr.astype(int) - (rgb_array((8, 6), seed=1).astype(int) + 255) / 2).max() <= 1
    assert np.array_equal(_kind(cases["alpha_opaque"])[0], rgb_array((8, 6), seed=1))


def test_16bit_is_the_high_byte_for_grey_and_colour_never_stretched():
    grey = np.array([[0, 255, 256, 999], [65535, 32768, 257, 1]], dtype=np.uint16)
    arr, kind = _kind(_save(Image.fromarray(grey), "PNG"))
    assert kind == "16bit"
    assert np.array_equal(arr[..., 0], (grey >> 8).astype(np.uint8))  # 0..999 stays dark, not 0..255
    colour = np.random.default_rng(0).integers(0, 65536, (4, 5, 3))
    arr, kind = _kind(png16_rgb(colour))
    assert kind == "16bit" and np.array_equal(arr, (colour >> 8).astype(np.uint8))


def test_32bit_int_and_float_follow_fixed_rules():
    ints = np.array([[-5, 0, 255, 65535, 70000, 1 << 20]], dtype=np.int32)
    img, kind = to_rgb_info(Image.fromarray(ints, mode="I"))
    assert kind == "32bit_int"
    assert np.asarray(img)[0, :, 0].tolist() == [0, 0, 0, 255, 255, 255]
    floats = np.array([[-1.0, 0.0, 0.5, 1.0, 7.0, np.nan]], dtype=np.float32)
    img, kind = to_rgb_info(Image.fromarray(floats, mode="F"))
    assert kind == "float"
    assert np.asarray(img)[0, :, 0].tolist() == [0, 0, 128, 255, 255, 0]


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animated_images_give_their_first_frame(fmt):
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    kw = {"lossless": True} if fmt == "WEBP" else {}
    data = _save(frames[0], fmt, save_all=True, append_images=frames[1:], duration=50, **kw)
    arr, kind = _kind(data)
    assert kind == "animated_first_frame"
    assert tuple(arr[0, 0]) == (255, 0, 0)
    still, kind = _kind(_save(frames[1], "GIF"))
    assert kind == "palette" and tuple(still[0, 0]) == (0, 0, 255)


# -- bad files ---------------------------------------------------------------------------------------
class _no_warning:
    """Assert the block emits no warning (PIL's bomb warning must become our error)."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings(record=True)
        self.caught = self._ctx.__enter__()
        warnings.simplefilter("always")

    def __exit__(self, *exc):
        self._ctx.__exit__(*exc)
        assert not [w for w in self.caught if "DecompressionBomb" in type(w.message).__name__]


@pytest.mark.parametrize("side", [14000, 10000])  # PIL's error zone, and its warning zone
def test_decompression_bombs_are_image_errors(tmp_path, side):
    path = tmp_path / "bomb.png"
    path.write_bytes(png(side, side, 8, 2, rows=b"\x00"))  # a header, and no pixels behind it
    assert side * side > MAX_IMAGE_PIXELS
    with _no_warning():
        with pytest.raises(ImageError, match=r"bomb.png is above the limit of 89,478,485 pixels.*--skip-bad"):
            decode_file(path)
        with pytest.raises(ImageError, match=rf"bomb.png is {side}x{side} = .*above the limit"):
            decode_tensor_file(path)
        assert "above the limit" in check_header(path, str(path))


def test_broken_files_fail_on_both_paths_naming_the_file(tmp_path):
    for kind, suffix in BAD_KINDS.items():
        path = write_bad(tmp_path / f"{kind}{suffix}", kind)
        with pytest.raises(ImageError, match=kind):
            decode_file(path)
        with pytest.raises(ImageError, match=kind):
            decode_tensor_file(path)
    with pytest.raises(ImageError, match="does not exist"):
        decode_tensor_file(tmp_path / "gone.png")


def test_header_check_reads_no_pixels(tmp_path):
    good = write_image(tmp_path / "ok.png", size=(20, 10))
    assert check_header(good, "ok") is None
    # A truncated PNG has a valid header: only a full decode finds it.
    truncated = write_bad(tmp_path / "cut.png", "truncated_png")
    assert check_header(truncated, "cut") is None
    with pytest.raises(ImageError):
        decode_file(truncated)
    noise = write_bad(tmp_path / "noise.png", "random_bytes")
    assert "no readable image header" in check_header(noise, "noise")


# -- torchvision path --------------------------------------------------------------------------------
def _photo(size=(48, 40)) -> Image.Image:
    from bench.data.sources.photos import load_photo

    return Image.fromarray(load_photo("chelsea")).resize(size)


@pytest.mark.parametrize("fmt,kw,fast", [
    ("JPEG", {"quality": 90}, ("jpeg", "none")),
    ("JPEG", {"quality": 75, "progressive": True}, ("jpeg", "none")),
    ("JPEG", {"quality": 90, "subsampling": 0}, ("jpeg", "none")),
    ("PNG", {}, ("png", "none")),
    ("PNG", {"interlace": 1}, ("png", "none")),
])
def test_tensor_path_gives_pils_pixels(fmt, kw, fast):
    data = _save(_photo(), fmt, **kw)
    assert fast_kind(data, "x") == fast
    tensor, kind = decode_tensor(data, "x")
    image, pil_kind = decode_bytes(data, "x")
    assert (kind, tensor.dtype, tensor.shape) == (pil_kind, torch.uint8, (3, 40, 48))
    assert (tensor.int() - pil_to_tensor(image).int()).abs().max() <= 1  # libjpeg builds may round apart


def test_tensor_path_grey_and_pil_fallbacks_agree_on_kind_and_pixels():
    photo = _photo()
    grey = photo.convert("L")
    cases = {
        "grayscale": [_save(grey, "JPEG"), _save(grey, "PNG")],
        "cmyk": [_save(photo.convert("CMYK"), "JPEG")],
        "16bit": [png16_rgb(np.asarray(photo).astype(np.uint16) * 257)],
        "palette": [_save(photo.convert("P"), "PNG"), _save(photo, "GIF")],
        "none": [_save(photo, "WEBP", lossless=True), _save(photo, "BMP"), _save(photo, "TIFF")],
    }
    for expected, blobs in cases.items():
        for data in blobs:
            tensor, kind = decode_tensor(bytearray(data), "x")
            image, pil_kind = decode_bytes(data, "x")
            assert kind == pil_kind == expected
            assert (tensor.int() - pil_to_tensor(image).int()).abs().max() <= 1
    # Transparency keeps PNG off the torchvision path (it would drop alpha instead of compositing).
    assert fast_kind(_save(photo.convert("RGBA"), "PNG"), "x") is None
    keyed = png(4, 4, 8, 2, bytes(4 * 13), extra=_chunk(b"tRNS", bytes(6)))  # a transparent colour key
    assert fast_kind(keyed, "x") is None


def test_jpeg_without_end_marker_goes_to_pil(monkeypatch):
    data = _save(_photo(), "JPEG")
    assert jpeg_info(data)[:3] == (48, 40, 3)
    assert fast_kind(data + b"trailing", "x") is None  # PIL decides whether such a file is whole
    assert fast_kind(bad_bytes("truncated_jpeg"), "x") is None
    calls = []
    monkeypatch.setattr(tensor_decode, "decode_bytes", lambda d, w: calls.append(w) or decode_bytes(d, w))
    decode_tensor(data + b"trailing", "x")
    assert calls == ["x"]


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    for decode in (decode_file, decode_tensor_file):
        with pytest.raises(ImageError, match="zero-byte"):
            decode(path)

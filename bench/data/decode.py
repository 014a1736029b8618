"""Image decoding: one documented set of rules for every source, with the conversion each image needed.

Every file is decoded to 8-bit RGB by these rules (version :data:`DECODE_VERSION`; bump it when a
rule changes, since cached features key on it):

- **Size guard.** Width × height is read from the header before any pixel is decoded; more than
  :data:`MAX_IMAGE_PIXELS` (89,478,485: PIL's default limit, ~9459²) is an :class:`ImageError`
  (a decompression bomb), like any unreadable file, so ``--skip-bad-images`` can skip it. PIL's
  warning zone (above the limit, below twice it) is an error too, never a warning.
- **Several frames** (animated GIF, APNG, animated WebP, multi-page TIFF): the first frame,
  recorded ``animated_first_frame``.
- **16 bits per channel** (``I;16`` grey, 16-bit RGB/RGBA PNG or TIFF): the high byte, ``v >> 8``
  (0..65535 → 0..255, one fixed rule, never stretched per image; PIL already reduces 16-bit RGB
  this way): ``16bit``.
- **32-bit integer** (``I``): clipped to 0..65535, then ``v >> 8`` (such files hold 16-bit data
  in practice): ``32bit_int``. **Float** (``F``): NaN → 0, clipped to [0, 1], × 255, rounded
  half to even: ``float``.
- **Transparency** (RGBA, LA, PA, or a transparent palette index or colour key): composited over white,
  ``alpha_composited``; an alpha channel that is 255 everywhere is dropped, ``alpha_opaque``.
- **CMYK**: PIL's conversion, ``cmyk``. **Palette**: looked up, ``palette``. **Bilevel** (``1``):
  0 → 0, 1 → 255, ``bilevel``. **Grey** (``L``): replicated to three channels, ``grayscale``.
  Any other mode (YCbCr, LAB, HSV, RGBX, ...): PIL's ``convert("RGB")``, ``other_mode``.
- EXIF orientation and ICC profiles are not applied: pixels are used as stored.
- **Format mismatch**: a file whose content is another format than its extension says (a TIFF or
  PNG named ``.jpg``, a JPEG named ``.png``) is decoded by its content and recorded
  ``format_mismatch``, ahead of every other kind (the file is not what its name claims).

One kind is recorded per image: the first that applies in :data:`CONVERSIONS` order (a 16-bit
RGBA PNG is ``16bit``; an animated palette GIF ``animated_first_frame``). ``none`` means the file
was 8-bit RGB already. :func:`decode_tensor` (in :mod:`bench.data.tensor_decode`) follows the same
rules and gives the same pixels.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from bench.data.sniff import sniff_size
from bench.errors import ImageError

#: Bump when a rule above changes: cached features and recorded conversion counts depend on it.
DECODE_VERSION = "3"
#: Kinds of conversion, index 0 = none; when several apply, the first in this order is recorded.
CONVERSIONS: tuple[str, ...] = (
    "none", "format_mismatch", "animated_first_frame", "16bit", "32bit_int", "float", "alpha_composited",
    "alpha_opaque", "cmyk", "palette", "bilevel", "grayscale", "other_mode",
)
#: What an extension promises: the formats PIL (or the header sniffer) may report for it. MPO is a
#: multi-picture JPEG (many cameras), DIB a headerless BMP. Other extensions are not checked.
EXTENSION_FORMATS: dict[str, frozenset[str]] = {
    **dict.fromkeys((".jpg", ".jpeg", ".jpe", ".jfif"), frozenset({"JPEG", "MPO"})),
    **dict.fromkeys((".png", ".apng"), frozenset({"PNG"})),
    **dict.fromkeys((".bmp", ".dib"), frozenset({"BMP", "DIB"})),
    ".gif": frozenset({"GIF"}), ".webp": frozenset({"WEBP"}),
    **dict.fromkeys((".tif", ".tiff"), frozenset({"TIFF"})),
    **dict.fromkeys((".ppm", ".pgm", ".pbm", ".pnm"), frozenset({"PPM"})),
    ".tga": frozenset({"TGA"}), **dict.fromkeys((".jp2", ".j2k"), frozenset({"JPEG2000"})),
}
#: Largest width × height decoded (PIL's default ``MAX_IMAGE_PIXELS``, fixed here so that a library
#: changing PIL's global cannot change what is decoded).
MAX_IMAGE_PIXELS = 1024 * 1024 * 1024 // 4 // 3

# JPEG and PNG headers are read from this many first bytes (a JPEG's EXIF/ICC segments come before its size).
_SNIFF_BYTES = 1 << 16
_FIX = "shrink it, or remove it or pass --skip-bad-images to leave it out."
_SIXTEEN = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S")
_ALPHA = ("RGBA", "LA", "PA", "RGBa", "La")
# What PIL raises for a file it cannot parse or decode (besides FileNotFoundError).
_DECODE_ERRORS = (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError,
                  Image.DecompressionBombError, Image.DecompressionBombWarning)


def format_mismatch(where: str, fmt: str | None) -> bool:
    """True when the file named ``where`` holds format ``fmt`` although its extension promises another."""
    expected = EXTENSION_FORMATS.get(os.path.splitext(where)[1].lower())
    return expected is not None and fmt is not None and fmt.upper() not in expected


def conversion_index(kind: str) -> int:
    """Position of ``kind`` in :data:`CONVERSIONS` (what datasets return as ``conversion``)."""
    return CONVERSIONS.index(kind)


def check_size(width: int, height: int, where: str) -> None:
    """Raise :class:`ImageError` when ``width × height`` exceeds :data:`MAX_IMAGE_PIXELS`."""
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageError(
            f"{where} is {width}x{height} = {width * height:,} pixels, above the limit of "
            f"{MAX_IMAGE_PIXELS:,} "
            f"(a decompression-bomb guard); {_FIX}"
        )


def _stored_16bit(img: Image.Image) -> bool:
    """True when the decoder will read 16 bits per channel (PIL reduces 16-bit RGB to 8 bits silently)."""
    if img.mode in _SIXTEEN:
        return True
    for tile in getattr(img, "tile", None) or ():
        args = tile[3] if len(tile) > 3 else None
        raw = args[0] if isinstance(args, tuple) and args else args
        if isinstance(raw, str) and ";16" in raw:
            return True
    return False


def _from_array(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr.astype(np.uint8), mode="L").convert("RGB")


def to_rgb_info(img: Image.Image, stored_16bit: bool = False,
                animated: bool = False) -> tuple[Image.Image, str]:
    """Convert a loaded image of any mode to 8-bit RGB by the module's rules; return it and the kind.

    ``stored_16bit`` and ``animated`` say what the file held (known only before decoding; see
    :func:`decode_file`).
    """
    mode = img.mode
    if mode in _SIXTEEN:
        rgb, kind = _from_array(np.asarray(img).astype(np.uint16) >> 8), "16bit"
    elif mode == "I":
        rgb, kind = _from_array(np.clip(np.asarray(img, dtype=np.int64), 0, 65535) >> 8), "32bit_int"
    elif mode == "F":
        arr = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0, posinf=1.0, neginf=0.0)
        rgb, kind = _from_array(np.round(np.clip(arr, 0.0, 1.0) * 255.0)), "float"
    elif mode in _ALPHA or "transparency" in img.info:  # an alpha channel, or a transparent colour key
        rgba = img.convert("RGBA")
        if rgba.getchannel("A").getextrema()[0] == 255:
            rgb, kind = rgba.convert("RGB"), "alpha_opaque"
        else:
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            rgb, kind = Image.alpha_composite(background, rgba).convert("RGB"), "alpha_composited"
    elif mode == "RGB":
        rgb, kind = img, "none"
    else:
        kinds = {"CMYK": "cmyk", "P": "palette", "1": "bilevel", "L": "grayscale"}
        rgb, kind = img.convert("RGB"), kinds.get(mode, "other_mode")
    if animated:
        kind = "animated_first_frame"
    elif stored_16bit and (kind == "none" or CONVERSIONS.index(kind) > CONVERSIONS.index("16bit")):
        kind = "16bit"
    return rgb, kind


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB by the module's rules (the conversion kind is dropped)."""
    return to_rgb_info(img)[0]


def _open(fp, where: str) -> Image.Image:
    """Open (header only) with PIL's bomb warning turned into an error and our own size limit."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{where} is above the limit of {MAX_IMAGE_PIXELS:,} pixels, a decompression-bomb "
                         f"guard (PIL: {err}); {_FIX}") from err
    try:
        check_size(*img.size, where)
    except ImageError:
        img.close()
        raise
    return img


def _decode(fp, where: str) -> tuple[Image.Image, str]:
    try:
        with _open(fp, where) as img:
            animated = bool(getattr(img, "is_animated", False))
            if animated:
                img.seek(0)
            sixteen = _stored_16bit(img)
            fmt = img.format
            img.load()
            # A loaded image keeps its pixels when the ``with`` closes its file.
            rgb, kind = to_rgb_info(img, sixteen, animated)
            return rgb, "format_mismatch" if format_mismatch(where, fmt) else kind
    except ImageError:
        raise
    except _DECODE_ERRORS as err:
        raise ImageError(f"{where} cannot be decoded ({type(err).__name__}: {err})") from err


def decode_file(path: str | Path) -> tuple[Image.Image, str]:
    """Fully decode ``path`` into 8-bit RGB; return the image and its conversion kind.

    Raises :class:`ImageError` naming the file when it is missing, empty, too large or undecodable.
    """
    path = Path(path)
    try:
        if os.stat(path).st_size == 0:
            raise ImageError(f"{path} is a zero-byte file")
    except FileNotFoundError as err:
        raise ImageError(f"{path} does not exist") from err
    except OSError as err:
        raise ImageError(f"{path} cannot be read ({err.strerror})") from err
    return _decode(path, str(path))


def decode_bytes(data: bytes, where: str) -> tuple[Image.Image, str]:
    """Decode encoded image bytes (``where`` names them in errors); return the RGB image and its kind."""
    if not data:
        raise ImageError(f"{where} is empty (zero bytes)")
    return _decode(io.BytesIO(data), where)


def open_image(path: Path) -> Image.Image:
    """Fully decode ``path`` into an RGB image, raising :class:`ImageError` with the reason."""
    return decode_file(path)[0]


def check_header(fp, where: str) -> str | None:
    """Why the image at ``fp`` (a path or file object) is unusable from its header alone, or None.

    Reads the header only: JPEG and PNG sizes are read from their first bytes
    (:mod:`bench.data.sniff`), other formats are opened with PIL without ``load``. No pixel is decoded.
    """
    if isinstance(fp, (str, os.PathLike)):
        try:
            with open(fp, "rb") as f:
                head = f.read(_SNIFF_BYTES)
        except FileNotFoundError:
            return f"{where} does not exist"
        except OSError as err:
            return f"{where} cannot be read ({err.strerror})"
        size = sniff_size(head)
        if size is not None:
            try:
                check_size(*size, where)
            except ImageError as err:
                return str(err)
            return None
    try:
        with _open(fp, where):
            return None
    except ImageError as err:
        return str(err)
    except FileNotFoundError:
        return f"{where} does not exist"
    except _DECODE_ERRORS as err:
        return f"{where} has no readable image header ({type(err).__name__}: {err})"

"""Reading an image's size and layout from its first bytes, without PIL and without decoding (JPEG, PNG).

Used by the header-only check before a run and by the tensor decode path to choose its decoder.
"""

from __future__ import annotations

_SOF = {*range(0xC0, 0xD0)} - {0xC4, 0xC8, 0xCC}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def jpeg_info(data: bytes | bytearray) -> tuple[int, int, int, int] | None:
    """(width, height, components, SOF marker) from a JPEG's frame header, or None if it has none."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    i, n = 2, len(data)
    while i + 4 <= n:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _SOF:
            if i + 10 > n:
                return None
            height = (data[i + 5] << 8) | data[i + 6]
            width = (data[i + 7] << 8) | data[i + 8]
            return width, height, data[i + 9], marker
        if marker in (0xDA, 0xD9):  # scan or end before any frame header
            return None
        i += 2 + ((data[i + 2] << 8) | data[i + 3])
    return None


def png_info(data: bytes | bytearray) -> tuple[int, int, int, int, bool] | None:
    """(width, height, bit depth, colour type, has tRNS or acTL before IDAT) of a PNG, or None."""
    if data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR" or len(data) < 33:
        return None
    width = int.from_bytes(data[16:20], "big")
    height = int.from_bytes(data[20:24], "big")
    depth, colour = data[24], data[25]
    i, extra = 33, False
    while i + 8 <= len(data):
        kind = bytes(data[i + 4:i + 8])
        if kind == b"IDAT":
            break
        extra |= kind in (b"tRNS", b"acTL")
        i += 12 + int.from_bytes(data[i:i + 4], "big")
    return width, height, depth, colour, extra


def sniff_size(data: bytes | bytearray) -> tuple[int, int] | None:
    """(width, height) of a JPEG or PNG from its first bytes, or None (another format, or not in ``data``)."""
    info = jpeg_info(data) or png_info(data)
    return (info[0], info[1]) if info is not None else None

"""Data sources and the one ``Dataset`` wrapper. See :mod:`bench.data.base` for the source contract
and :mod:`bench.data.decode` for the decoding rules."""

from bench.data.base import (
    CONVERSIONS,
    DECODE_VERSION,
    TABLE_COLUMNS,
    Source,
    decode_file,
    make_table,
    open_image,
    to_rgb,
)

__all__ = ["CONVERSIONS", "DECODE_VERSION", "TABLE_COLUMNS", "Source", "decode_file", "make_table",
           "open_image", "to_rgb"]

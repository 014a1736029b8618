"""Data sources and the one ``Dataset`` wrapper. See :mod:`bench.data.base` for the source contract."""

from bench.data.base import TABLE_COLUMNS, Source, make_table, open_image, to_rgb

__all__ = ["TABLE_COLUMNS", "Source", "make_table", "open_image", "to_rgb"]

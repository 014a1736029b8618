"""Recognising a local CLIP checkpoint as one of open_clip's pretrained releases, from open_clip's own table.

open_clip's pretrained table (``open_clip.list_pretrained`` / ``get_pretrained_cfg``) records, for
each release, where it is downloaded from and whether it was trained with QuickGELU. It knows the
files in two ways, and :func:`release_of` uses both:

- a ``url`` that carries the file's sha256: OpenAI's releases (``openaipublic.azureedge.net/clip/
  models/<sha256>/ViT-B-32.pt``, the full hash) and open_clip's own early releases
  (``.../rn50-quickgelu-yfcc15m-455df137.pt``, the hash's first 8 hex digits), which is exactly
  what open_clip checks after a download;
- an ``hf_hub`` repository id (``timm/vit_base_patch32_clip_224.openai``), found in a path inside a
  Hugging Face cache (``.../models--timm--vit_base_patch32_clip_224.openai/snapshots/...``).

A file that matches is built with the activation its release was trained with, whatever
architecture name the spec gives (a wrong activation gives wrong features without any error).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Release:
    """One entry of open_clip's pretrained table: architecture, tag, and its training activation."""

    arch: str
    tag: str
    quick_gelu: bool
    matched_by: str  # "sha256" or "hf_hub"


def url_sha256(url: str) -> str | None:
    """The sha256 (or its prefix) a release URL carries, the way open_clip's downloader reads it; else None."""
    if "openaipublic" in url:
        return url.split("/")[-2].lower()
    if "mlfoundations" in url:
        return os.path.splitext(os.path.basename(url))[0].split("-")[-1].lower()
    return None


def release_table() -> list[tuple[str, str, dict]]:
    """``(arch, tag, pretrained cfg)`` for every entry of the installed open_clip's pretrained table."""
    import open_clip

    return [(arch, tag, open_clip.get_pretrained_cfg(arch, tag)) for arch, tag in open_clip.list_pretrained()]


@lru_cache(maxsize=16)
def _file_sha256(real: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(real, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: str) -> str:
    """sha256 of a file, remembered per (real path, size, modification time) within the process."""
    real = os.path.realpath(path)
    st = os.stat(real)
    return _file_sha256(real, st.st_size, st.st_mtime_ns)


def _hub_repo(path: str) -> str | None:
    """``org/name`` of a path inside a Hugging Face cache (``models--org--name/snapshots/...``), else None."""
    for part in os.path.realpath(path).split(os.sep) + os.path.abspath(path).split(os.sep):
        if part.startswith("models--"):
            return part.removeprefix("models--").replace("--", "/")
    return None


def release_of(path: str) -> Release | None:
    """The pretrained-table entry whose file ``path`` is (by sha256, else by hub cache path), or None."""
    table = release_table()
    digest = None
    for arch, tag, cfg in table:
        expected = url_sha256(cfg.get("url") or "")
        if expected and len(expected) >= 8:
            digest = digest or file_sha256(path)
            if digest.startswith(expected):
                return Release(arch, tag, bool(cfg.get("quick_gelu", False)), "sha256")
    repo = _hub_repo(path)
    if repo is not None:
        for arch, tag, cfg in table:
            if (cfg.get("hf_hub") or "").strip("/") == repo:
                return Release(arch, tag, bool(cfg.get("quick_gelu", False)), "hf_hub")
    return None


def activation_of(visual) -> str:
    """The activation of the built image tower's MLPs: ``quick_gelu``, ``gelu``, or the module's class name."""
    from open_clip.transformer import QuickGELU
    from torch import nn

    acts = {type(m.mlp.gelu) for m in getattr(getattr(visual, "transformer", None), "resblocks", [])
            if hasattr(getattr(m, "mlp", None), "gelu")}
    if not acts:
        return "n/a"
    names = sorted("quick_gelu" if a is QuickGELU else "gelu" if a is nn.GELU else a.__name__ for a in acts)
    return "+".join(names)

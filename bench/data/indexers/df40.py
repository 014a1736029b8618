"""DF40 (YZY-stack/DF40): its two released folders of face crops, ``DF40`` (test) and ``DF40_train``.

The release is fakes only for its 31 "known" methods (reals are FaceForensics++ and Celeb-DF's own,
indexed by ``ffpp`` and ``celebdf``); the 9 "unknown" sets carry their own ``real`` folder. Its
README promises ``<method>/{ff,cdf}`` and ``<method>/{fake,real}``; the download differs in ways the
DF40 issues list, which this indexer reads rather than refuses:

- folder names differ from the method names (``StarGAN2``, ``Whichisreal``/``whichfaceisreal``,
  ``heygen_new``, upper/lower case): mapped onto DF40's names, lower-cased (#20, #29, #30);
- frames sit in ``frames/<video>/``, directly in ``<video>/`` (EFS methods) or below another folder
  (``cdf/Fake_from_Celeb-real/<video>/``): a video is the folder holding its frames;
- ``DF40_train/<method>/<video>/`` without ``ff``: the training release covers FF++ only (#28);
- empty video folders (hundreds for RDDM and sd2.1, #40), folders of videos instead of frames
  (heygen, #29) and a set without its ``real`` folder (CollabDiff, #29): left out and reported.

Subsets are ``<method>_ff`` / ``<method>_cdf`` for the domain folders and ``<method>`` for a set with
its own reals. The test release is ``test``. DF40 selects checkpoints on its test sets; the training
release has no validation split, so a tenth of it (by the first FF++ id in the video name, so one
identity stays on one side across methods) is held out as ``val``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from bench.data.holdout import held_out
from bench.data.indexers.common import Row, need_dir, scan, subdirs
from bench.errors import ConfigError, DataError, did_you_mean

#: DF40's 31 known methods by family (README table; names as in its ``test_config.yaml``, lower-cased).
FAMILIES = {
    "fs": ("fsgan", "faceswap", "simswap", "inswap", "blendface", "uniface", "mobileswap", "e4s", "facedancer"),
    "fr": ("fomm", "facevid2vid", "wav2lip", "mraa", "one_shot_free", "pirender", "tpsm", "lia", "danet",
           "sadtalker", "mcnet", "hyperreenact"),
    "efs": ("vqgan", "stylegan2", "stylegan3", "styleganxl", "sd2.1", "ddim", "rddm", "pixart", "dit", "sit"),
}
#: The 9 sets of protocol 3 (unknown methods and domains), as DF40's README lists them.
UNKNOWN = ("deepfacelab", "heygen", "whichisreal", "midjourney", "stargan", "starganv2", "styleclip", "e4e",
           "collabdiff")
METHODS = tuple(m for family in FAMILIES.values() for m in family) + UNKNOWN
#: Folder names of the download that are not the method's name (lower-cased).
ALIASES = {"stargan2": "starganv2", "whichfaceisreal": "whichisreal", "heygen_new": "heygen",
           "fs_vid2vid": "facevid2vid"}
DOMAINS = ("ff", "cdf")
LABELS = {"fake": 1, "real": 0}
#: Folder names that hold many videos or stills, never one video's frames (``inversions``: e4e's stills, #41).
CONTAINERS = {"frames", "inversions", *DOMAINS, *LABELS}
_FF_ID = re.compile(r"\d{3}")


def method_name(folder: str) -> str | None:
    """DF40's name for a download folder (``StarGAN2`` -> ``starganv2``), or None when it is none of the 40."""
    name = ALIASES.get(folder.lower(), folder.lower())
    return name if name in METHODS else None


def _release(root: Path, release: str | None) -> str:
    if release is None:
        return "train" if root.name.lower().endswith("_train") else "test"
    if release not in ("train", "test"):
        raise ConfigError(f"The df40 option release is {release!r}; use train (DF40_train) or test (DF40).")
    return release


def _group(root: Path, rel: str) -> str:
    """The video id of a frame: ``<ROOT name>/<folder holding it>``, or '' for a still among stills."""
    parent = PurePosixPath(rel).parent
    if parent.name.lower() in CONTAINERS or parent == PurePosixPath("."):
        return ""
    return f"{root.name}/{parent.as_posix()}"


def _split(release: str, group: str, rel: str) -> str:
    if release == "test":
        return "test"
    name = PurePosixPath(group).name if group else PurePosixPath(rel).stem
    found = _FF_ID.search(name)
    return "val" if held_out(found.group() if found else name) else "train"


def _parts(root: Path, folder: str, method: str, notes: list[str]) -> list[tuple[str, str, int]]:
    """(relative folder, subset, label) of each part of one method folder."""
    kids = {k.lower(): k for k in subdirs(root / folder)}
    parts = [(f"{folder}/{kids[d]}", f"{method}_{d}", 1) for d in DOMAINS if d in kids]
    parts += [(f"{folder}/{kids[k]}", method, label) for k, label in LABELS.items() if k in kids]
    if "fake" in kids and "real" not in kids:
        notes.append(f"{root / folder} has no real folder, so its set holds fakes only (DF40 issue #29).")
    if not parts:
        notes.append(f"{root / folder} has no ff, cdf, fake or real folder; its videos are read as the FF++ "
                     "domain, the only one DF40's training release covers (DF40 issue #28).")
        parts = [(folder, f"{method}_ff", 1)]
    return parts


def index_df40(root: Path, release: str | None = None, notes: list[str] | None = None) -> Iterator[Row]:
    """Index a DF40 release folder: ``ROOT/<method>/{ff,cdf}/...`` (fakes) or ``ROOT/<method>/{fake,real}/...``.

    ``release`` is ``test`` (the ``DF40`` download) or ``train`` (``DF40_train``; default: ``train``
    when ROOT's name ends in ``_train``). Method folders are matched to DF40's 40 names whatever their
    spelling; a folder that is none of them is refused. See the module docstring for the gaps read.
    """
    notes = [] if notes is None else notes
    release = _release(root, release)
    folders = subdirs(need_dir(root, "DF40 method", "DF40 <method>/{ff,cdf} or <method>/{fake,real}"))
    names = {}
    for folder in folders:
        method = method_name(folder)
        if method is None:
            raise DataError(f"{root / folder} is not a DF40 method folder.{did_you_mean(folder.lower(), METHODS)} "
                            f"Rename it to its DF40 name or move it out of {root}.")
        if method in names:
            raise DataError(f"{root} holds two folders for DF40 method {method!r} ({names[method]}, {folder}); keep one.")
        names[method] = folder
    if not names:
        raise DataError(f"{root} holds no DF40 method folder; pass the DF40 or DF40_train download folder.")
    for method, folder in sorted(names.items()):
        found = 0
        for rel_folder, subset, label in _parts(root, folder, method, notes):
            images, empty, others = scan(root / rel_folder)
            if empty:
                notes.append(f"{root / rel_folder}: {empty} empty video folder(s) left out (DF40 issues #16, #40).")
            if not images and others:
                kinds = ", ".join(f"{n} {ext}" for ext, n in sorted(others.items()))
                notes.append(f"{root / rel_folder} holds no frames ({kinds}); extract them to index it (DF40 issue #29).")
            for name in images:
                rel = f"{rel_folder}/{name}"
                group = _group(root, rel)
                yield Row(rel, label, _split(release, group, rel), subset, group)
                found += 1
        if not found:
            notes.append(f"{root / folder} holds no images.")

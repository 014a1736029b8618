"""Where the dataset folder is, when ``bench data index LAYOUT ROOT`` was given the wrong one.

Each layout has a *signature*: what its folder holds at the top, checked strictly enough that a
folder of another dataset does not pass (CNNDetection's ``test/`` is not UnivFD's diffusion folder
although some of its generators have ``0_real``/``1_fake``). When indexing fails, :func:`hints`
says, in this order of preference:

- ROOT is another layout's folder: "ROOT looks like a forensynths dataset: use `bench data index forensynths ROOT`";
- a folder one or two levels below ROOT has this layout's signature (ROOT was a data root, one level too
  high): "ROOT/FaceForensics++ looks like the dataset folder: pass it as ROOT";
- nothing, when ROOT has the layout's signature itself (the problem is inside the dataset) or no
  folder is recognisably the dataset (a hint then would only mislead).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.data.indexers.common import images_in, subdirs

_LABELS = {"0_real", "1_fake"}
_SPLITS = ("train", "val", "test")
#: Folders looked at below ROOT (per level) for the "one level too high" hint.
_MAX_CANDIDATES = 50


def _has_labels(path: Path) -> bool:
    return bool(_LABELS & set(subdirs(path)))


def _forensynths(path: Path) -> bool:
    """``{train,val,test}/<set>/[<class>/]{0_real,1_fake}``: a split whose sets hold label folders."""
    return any(_has_labels(path / s / d) or any(_has_labels(path / s / d / c) for c in subdirs(path / s / d)[:20])
               for s in _SPLITS for d in subdirs(path / s)[:20])


def _univfd_diffusion(path: Path) -> bool:
    """Every top folder holds ``0_real``/``1_fake`` folders or images directly, and none is a split folder."""
    folders = subdirs(path)
    return (bool(folders) and not set(folders) & set(_SPLITS)
            and any(_has_labels(path / f) for f in folders)
            and all(_has_labels(path / f) or images_in(path / f) for f in folders))


def _genimage_generator(path: Path) -> bool:
    def split_with_classes(p: Path) -> bool:
        return any({"ai", "nature"} & set(subdirs(p / s)) for s in ("train", "val"))

    return split_with_classes(path) or any(d.lower().startswith("imagenet") and split_with_classes(path / d)
                                           for d in subdirs(path))


def _genimage(path: Path) -> bool:
    folders = subdirs(path)
    return bool(folders) and all(_genimage_generator(path / f) for f in folders)


def _real_fake_sets(path: Path) -> bool:
    """``ROOT/{0_real,1_fake}``, or set folders holding them directly or one class folder down, at least one
    directly (a folder of collections, each a folder of sets, is then the collection's parent, not a set folder)."""
    folders = subdirs(path)
    if _LABELS & set(folders):
        return True
    direct = [_has_labels(path / f) for f in folders]
    return (any(direct) and all(d or any(_has_labels(path / f / c) for c in subdirs(path / f)[:20])
                                for d, f in zip(direct, folders, strict=True)))


#: Layout -> does a folder look like that dataset's folder? (deepfakebench has none: its ROOT is an FF++,
#: Celeb-DF, ... folder named by its JSON, so the other layouts' signatures describe it.)
SIGNATURES: dict[str, Callable[[Path], bool]] = {
    "ffpp": lambda p: (p / "original_sequences" / "youtube").is_dir(),
    "dfd": lambda p: (p / "original_sequences" / "actors").is_dir()
    or (p / "manipulated_sequences" / "DeepFakeDetection").is_dir(),
    "celebdf": lambda p: (p / "List_of_testing_videos.txt").is_file()
    or sum((p / f).is_dir() for f in ("Celeb-real", "YouTube-real", "Celeb-synthesis")) >= 2,
    "dfdc": lambda p: (p / "test" / "labels.csv").is_file(),
    "dfdcp": lambda p: (p / "dataset.json").is_file() and any((p / m).is_dir() for m in ("method_A", "method_B")),
    "deeperforensics": lambda p: (p / "lists" / "splits").is_dir() and (p / "manipulated_videos").is_dir(),
    "uadfv": lambda p: (p / "real").is_dir() and (p / "fake").is_dir(),
    "forensynths": _forensynths,
    "univfd_diffusion": _univfd_diffusion,
    "genimage": _genimage,
    "real_fake_sets": _real_fake_sets,
    "drct2m": lambda p: (p / "DRCT-2M").is_dir() or (p / "MSCOCO").is_dir(),
}


def _candidates(root: Path) -> list[Path]:
    """Folders one and two levels below ``root`` (at most :data:`_MAX_CANDIDATES` per level)."""
    first = [root / d for d in subdirs(root)[:_MAX_CANDIDATES]]
    return first + [p / d for p in first for d in subdirs(p)[:_MAX_CANDIDATES]]


def hints(layout: str, root: Path) -> str:
    """Sentences (each starting with a space) saying where the ``layout`` dataset folder is, or ''."""
    own = SIGNATURES.get(layout)
    if own is None or own(root):
        return ""
    others = [name for name, looks in SIGNATURES.items() if name != layout and looks(root)]
    if others:
        return f" {root} looks like a {others[0]} dataset: use `bench data index {others[0]} {root}`."
    found: list[Path] = []
    for path in _candidates(root):  # the shallowest: a generator folder inside a found dataset is not another
        if not any(q in path.parents for q in found) and own(path):
            found.append(path)
    return "".join(f" {p} looks like the dataset folder: pass it as ROOT." for p in found[:3])

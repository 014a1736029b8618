"""Generated-image test collections: sets of ``0_real``/``1_fake`` folders, and DRCT-2M with its COCO reals.

``real_fake_sets`` reads the layout most image benchmarks ship their test sets in (GANGen-Detection,
DiffusionForensics as NPR packages them, AIGCDetectBenchmark's test folder, Chameleon):
``ROOT/<set>/[<class>/...]/{0_real,1_fake}/<image>``. ``drct2m`` reads DRCT-2M's generator folders
beside the MSCOCO images its fakes were made from, which DRCT does not redistribute.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from bench.data.holdout import held_out
from bench.data.indexers.common import Row, need_dir, scan, subdirs
from bench.data.indexers.images import LABEL_DIRS, label_from_dirs
from bench.errors import DataError, did_you_mean

#: DRCT-2M's 16 generators, in DRCT's own index order (``data/dataset.py``, ``CLASS2LABEL_MAPPING`` 1-16).
DRCT_GENERATORS = (
    "ldm-text2im-large-256", "stable-diffusion-v1-4", "stable-diffusion-v1-5", "stable-diffusion-2-1",
    "stable-diffusion-xl-base-1.0", "stable-diffusion-xl-refiner-1.0", "sd-turbo", "sdxl-turbo",
    "lcm-lora-sdv1-5", "lcm-lora-sdxl", "sd-controlnet-canny", "sd21-controlnet-canny",
    "controlnet-canny-sdxl-1.0", "stable-diffusion-inpainting", "stable-diffusion-2-inpainting",
    "stable-diffusion-xl-1.0-inpainting-0.1",
)
#: DRCT's image folders: train2017 is split into train and a held-out val, val2017 is the test set.
COCO_SPLITS = {"train2017": "train", "val2017": "test"}
COCO_URL = "https://cocodataset.org/#download"


def _has_labels(path: Path, depth: int = 1) -> bool:
    """True when ``path`` has a 0_real or 1_fake folder, directly or ``depth`` class folders below."""
    found = subdirs(path)
    return bool(set(found) & set(LABEL_DIRS)) or (depth > 0 and any(_has_labels(path / d, depth - 1) for d in found))


def index_real_fake_sets(root: Path, notes: list[str] | None = None) -> Iterator[Row]:
    """Index test sets laid out as ``ROOT/<set>/[<class>/...]/{0_real,1_fake}/<image>``.

    Every image is ``test``; its subset is its set folder, lower-cased (``ADM`` -> ``adm``); ROOT
    itself may hold ``0_real``/``1_fake`` (one set, named after ROOT). Every image must sit below a
    label folder, and every set folder must have one: anything else is refused, naming it.
    """
    notes = [] if notes is None else notes
    sets = subdirs(need_dir(root, "test set folder", "ROOT/<set>/{0_real,1_fake}"))
    if set(sets) & set(LABEL_DIRS):
        sets = [""]
    if not sets:
        raise DataError(f"{root} holds no set folders; the layout is ROOT/<set>/[<class>/]{{0_real,1_fake}}/*.")
    names = {s: (s or root.name).lower() for s in sets}
    if len(set(names.values())) != len(names):
        raise DataError(f"{root} holds set folders that differ only in case ({', '.join(sets)}); keep one of each.")
    for folder in sets:
        base = root / folder if folder else root
        if not _has_labels(base):
            raise DataError(f"{base} has no 0_real or 1_fake folder, so {root} is not a folder of test sets "
                            f"(ROOT/<set>/[<class>/]{{0_real,1_fake}}/*); remove it or pass the right ROOT.")
        images, empty, _ = scan(base)
        labels = set()
        for rel in images:
            label = label_from_dirs(rel)
            if label is None:
                raise DataError(f"{base / rel} is not below a 0_real or 1_fake folder; move or remove it, so that "
                                "no image is labelled by guess.")
            labels.add(label)
            yield Row(f"{folder}/{rel}" if folder else rel, label, "test", names[folder])
        if len(labels) == 1:
            notes.append(f"{base} holds only {'real' if 0 in labels else 'fake'} images; a test set on it alone "
                         "cannot be scored.")
        if empty:
            notes.append(f"{base}: {empty} empty folder(s).")


def _coco_split(folder: str, name: str) -> str:
    """train2017 images go to ``train``, or to ``val`` when :func:`held_out` (by file stem); val2017 to ``test``."""
    split = COCO_SPLITS[folder]
    return "val" if split == "train" and held_out(PurePosixPath(name).stem) else split


def _coco_folder(base: Path, rel: str, subset: str, label: int) -> Iterator[Row]:
    for folder in COCO_SPLITS:
        if (base / folder).is_dir():
            images, _, _ = scan(base / folder)
            for name in images:
                yield Row(f"{rel}/{folder}/{name}", label, _coco_split(folder, name), subset)


def index_drct2m(root: Path, notes: list[str] | None = None) -> Iterator[Row]:
    """Index DRCT-2M with its reals: ``ROOT/DRCT-2M/<generator>/{train2017,val2017}/*`` and ``ROOT/MSCOCO/{train2017,val2017}/*``.

    ROOT is the folder DRCT's scripts call ``DRCT_data``. Subsets are the generator folder names
    (DRCT's 16) and ``mscoco`` for the reals, which DRCT does not redistribute: without
    ``ROOT/MSCOCO`` the index is refused. ``val2017`` is the test set (as in DRCT); ``train2017`` is
    split into ``train`` and a held-out ``val`` (a tenth, by file stem, the same for a COCO image and
    the fakes named after it), because DRCT's own 9:1 split is a seeded shuffle of its file lists.
    ``DR/`` (DRCT's reconstructions, training data of the DRCT method only) is not indexed.
    """
    notes = [] if notes is None else notes
    drct = root / "DRCT-2M"
    if not drct.is_dir():
        hint = (f" {root} holds DRCT-2M's generator folders itself: pass the folder above it, which must also "
                "hold MSCOCO." if set(subdirs(root)) & set(DRCT_GENERATORS) else "")
        raise DataError(f"{drct} does not exist; the drct2m layout is ROOT/DRCT-2M/<generator>/{{train2017,val2017}} "
                        f"beside ROOT/MSCOCO/{{train2017,val2017}}.{hint}")
    coco = root / "MSCOCO"
    if not any((coco / f).is_dir() for f in COCO_SPLITS):
        raise DataError(f"{coco} has no train2017 or val2017 folder: DRCT-2M does not redistribute its real images "
                        f"(DRCT issue #10); download the COCO 2017 train and val images from {COCO_URL} into {coco}.")
    generators = subdirs(drct)
    unknown = [g for g in generators if g not in DRCT_GENERATORS]
    if unknown:
        raise DataError(f"{drct / unknown[0]} is not a DRCT-2M generator folder.{did_you_mean(unknown[0], DRCT_GENERATORS)} "
                        f"The 16 are: {', '.join(DRCT_GENERATORS)}.")
    missing = [g for g in DRCT_GENERATORS if g not in generators]
    if missing:
        notes.append(f"{drct} lacks {len(missing)} of DRCT-2M's 16 generators: {', '.join(missing)}.")
    if (root / "DR").is_dir():
        notes.append(f"{root / 'DR'} (DRCT's reconstructions, training data of the DRCT method) is not indexed.")
    yield from _coco_folder(coco, "MSCOCO", "mscoco", 0)
    for generator in generators:
        yield from _coco_folder(drct / generator, f"DRCT-2M/{generator}", generator, 1)

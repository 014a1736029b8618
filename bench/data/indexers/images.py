"""Still-image benchmarks: CNNDetection/ForenSynths, UnivFD's diffusion folders and GenImage."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from bench.data.holdout import held_out
from bench.data.indexers.common import Row, images_in, need_dir, subdirs, walk_images
from bench.errors import DataError

LABEL_DIRS = {"0_real": 0, "1_fake": 1}
#: UnivFD's real pools: images directly in these folders (no 0_real below) are real.
REAL_POOLS = {"laion", "imagenet"}
#: GenImage folder names (top-level download folders, lower-cased, as the download and as GenImage's README
#: spells them, and the inner ``imagenet_*`` folders) -> subset.
GENIMAGE_NAMES = {
    "stable diffusion v1.4": "sd_v1_4", "stable diffusion v1.5": "sd_v1_5",
    "midjourney": "midjourney", "imagenet_midjourney": "midjourney",
    "stable_diffusion_v_1_4": "sd_v1_4", "imagenet_ai_0419_sdv4": "sd_v1_4",
    "stable_diffusion_v_1_5": "sd_v1_5", "imagenet_ai_0424_sdv5": "sd_v1_5",
    "adm": "adm", "imagenet_ai_0508_adm": "adm",
    "glide": "glide", "imagenet_glide": "glide",
    "wukong": "wukong", "imagenet_ai_0424_wukong": "wukong",
    "vqdm": "vqdm", "imagenet_ai_0419_vqdm": "vqdm",
    "biggan": "biggan", "imagenet_ai_0419_biggan": "biggan",
}
GENIMAGE_LABELS = {"ai": 1, "nature": 0}


def label_from_dirs(rel: str) -> int | None:
    """The label of the nearest ``0_real``/``1_fake`` folder above ``rel``, or None."""
    for part in reversed(PurePosixPath(rel).parts[:-1]):
        if part in LABEL_DIRS:
            return LABEL_DIRS[part]
    return None


def index_forensynths(root: Path) -> Iterator[Row]:
    """Index a CNNDetection/ForenSynths tree: ``{train,val,test}/<set>/[<class>/]{0_real,1_fake}/*``.

    The subset is the folder below the split: the LSUN class for ProGAN ``train``/``val``
    (``airplane`` ... ``tvmonitor``), the generator for ``test`` (``progan``, ``seeingdark``, ...),
    whose class sub-folders (progan, stylegan, stylegan2, cyclegan) are descended into.
    """
    splits = [s for s in ("train", "val", "test") if (root / s).is_dir()]
    if not splits:
        raise DataError(f"{root} has no train, val or test folder; the ForenSynths layout is "
                        "{train,val,test}/<set>/[<class>/]{0_real,1_fake}/*.png.")
    for split in splits:
        for subset in subdirs(root / split):
            for rel in walk_images(root / split / subset):
                label = label_from_dirs(rel)
                if label is None:
                    raise DataError(f"{root / split / subset / rel} is not below a 0_real or 1_fake folder; "
                                    "the ForenSynths layout labels every image by such a folder.")
                yield Row(f"{split}/{subset}/{rel}", label, split, subset)


def index_univfd_diffusion(root: Path) -> Iterator[Row]:
    """Index UnivFD's ``diffusion_datasets``: one folder per generator (fakes) plus ``laion``/``imagenet`` reals.

    Layout: ``ROOT/<generator>/1_fake/*.png``, ``ROOT/{laion,imagenet}/0_real/*``; a folder without
    ``0_real``/``1_fake`` must hold its images directly (``ROOT/dalle/*.png``): it is real when it is
    a real pool, fake otherwise. A folder with neither, or an image outside the label folders of a
    folder that has them, is refused (ROOT is then not the ``diffusion_datasets`` folder). Every
    image is in ``test``; the subset is the top folder (``guided``, ``ldm_200``, ..., ``laion``).
    """
    folders = subdirs(need_dir(root, "diffusion folder", "UnivFD diffusion_datasets/<generator>/1_fake"))
    if not folders:
        raise DataError(f"{root} holds no generator folder; expected guided, ldm_200, ..., laion, imagenet.")
    layout = "ROOT/<generator>/1_fake/*.png and ROOT/{laion,imagenet}/0_real/*"
    labelled = {f: [d for d in subdirs(root / f) if d in LABEL_DIRS] for f in folders}
    bad = [f for f in folders if not labelled[f] and not images_in(root / f)]
    if bad:
        raise DataError(f"{root / bad[0]} holds neither 0_real/1_fake folders nor images, so {root} is not "
                        f"UnivFD's diffusion_datasets folder (expected {layout}).")
    for subset in folders:
        default = 0 if subset.lower() in REAL_POOLS else 1
        for rel in walk_images(root / subset):
            label = label_from_dirs(rel)
            if label is None and labelled[subset]:
                raise DataError(f"{root / subset / rel} is outside the 0_real/1_fake folders of "
                                f"{root / subset}; move or remove it, so that no image is labelled by guess.")
            yield Row(f"{subset}/{rel}", default if label is None else label, "test", subset)


def _has_splits(path: Path) -> bool:
    return bool({"train", "val"} & set(subdirs(path)))


def _genimage_dirs(root: Path) -> Iterator[tuple[str, str]]:
    """(subset, folder with train/val) for every generator folder, one or two levels deep.

    Every top folder must be a generator folder (``<gen>/{train,val}``, or ``<gen>/imagenet_*/{train,val}``
    for the download's inner folder names): anything else means ROOT is not the GenImage folder.
    """
    layout = "<generator>/[imagenet_*/]{train,val}/{ai,nature}/*"
    tops = subdirs(root)
    inner = {top: [d for d in subdirs(root / top) if _has_splits(root / top / d) and d.lower().startswith("imagenet")]
             for top in tops}
    stray = [top for top in tops if not _has_splits(root / top) and not inner[top]]
    if stray and len(stray) == len(tops):  # nothing here is a generator: ROOT is not the GenImage folder
        raise DataError(f"{root} holds no GenImage generator folder ({layout}; {root / stray[0]} is none), so "
                        "it is not the GenImage folder; pass the folder that holds the generators as ROOT.")
    if stray:  # generators beside a folder that is none: that folder is what does not belong
        raise DataError(f"{root / stray[0]} is not a GenImage generator folder ({layout}) although "
                        f"{len(tops) - len(stray)} folder(s) beside it are; move it out of {root}.")
    for top in tops:
        if _has_splits(root / top):
            yield GENIMAGE_NAMES.get(top.lower(), top.lower()), top
            continue
        for name in inner[top]:
            subset = GENIMAGE_NAMES.get(top.lower()) or GENIMAGE_NAMES.get(name.lower(), top.lower())
            yield subset, f"{top}/{name}"


def _check_labels(root: Path, folder: str) -> None:
    """Refuse a generator folder whose train/val folders hold no ai/nature folder."""
    for split in ("train", "val"):
        found = subdirs(root / folder / split)
        if (root / folder / split).is_dir() and not set(found) & set(GENIMAGE_LABELS):
            raise DataError(f"{root / folder / split} holds {', '.join(found) or 'nothing'} instead of ai "
                            "and nature folders; GenImage's layout is "
                            "<generator>/[imagenet_*/]{train,val}/{ai,nature}/*.")


def index_genimage(root: Path) -> Iterator[Row]:
    """Index GenImage: ``ROOT/<generator>/[imagenet_*/]{train,val}/{ai,nature}/*``.

    Subsets are canonical generator names (``midjourney``, ``sd_v1_4``, ``sd_v1_5``, ``adm``,
    ``glide``, ``wukong``, ``vqdm``, ``biggan``) whatever the download's folder names. GenImage's ``val``
    folder is its test set, so it is indexed as split ``test``; the tenth of each ``train`` folder that
    :func:`held_out` picks by file stem becomes ``val``, the split checkpoints are selected on (GenImage
    releases none). A folder of another layout is refused.
    """
    found = list(_genimage_dirs(need_dir(root, "GenImage generator", "GenImage <generator>/{train,val}/{ai,nature}")))
    if not found:
        raise DataError(f"{root} holds no <generator>/{{train,val}} folder; the GenImage layout is "
                        "<generator>/[imagenet_*/]{train,val}/{ai,nature}/*.")
    names = [n for n, _ in found]
    if len(set(names)) != len(names):
        raise DataError(f"{root} holds two folders for one generator ({', '.join(sorted(names))}); keep one.")
    for subset, folder in found:
        _check_labels(root, folder)
        for folder_split in ("train", "val"):
            for label_dir, label in GENIMAGE_LABELS.items():
                base = f"{folder}/{folder_split}/{label_dir}"
                if (root / base).is_dir():
                    for rel in walk_images(root / base):
                        yield Row(f"{base}/{rel}", label, _genimage_split(folder_split, rel), subset)


def _genimage_split(folder_split: str, rel: str) -> str:
    """GenImage's ``val`` folder is its test set; a tenth of ``train`` (by file stem) is held out for selection."""
    if folder_split == "val":
        return "test"
    return "val" if held_out(PurePosixPath(rel).stem) else "train"

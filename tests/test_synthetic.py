"""Tests of the synthetic source, its generators and domains, and write_folder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from bench.data.base import TABLE_COLUMNS
from bench.data.sources.forgeries import GENERATORS, parse_domain
from bench.data.sources.photos import DEFAULT_PHOTOS, PHOTO_NAMES
from bench.data.sources.synthetic import LABEL_DIRS, SPLITS, SyntheticSource, subset_names, write_folder
from bench.errors import ConfigError

TINY = {"image_size": 32, "n_per_class": 4, "seed": 0}
DOMAINS = ["jpeg60", "resize0.5", "resize1.5", "blur1", "noise3", "resize2+jpeg75"]


def make(**overrides) -> SyntheticSource:
    return SyntheticSource("synth", {**TINY, **overrides}, None)


def pixels(source: SyntheticSource, item_id: str) -> np.ndarray:
    return np.asarray(source.load(item_id))


def test_table_has_both_classes_per_subset_and_standard_columns():
    table = make().select("test", ["upsample_nearest", "blend_rect@jpeg60"])
    assert list(table.columns) == TABLE_COLUMNS
    assert (table["group"] == table["id"]).all()
    assert set(table["split"]) == {"test"}
    counts = table.groupby(["subset", "label"]).size()
    assert counts.to_dict() == {
        (s, lab): 4 for s in ["blend_rect@jpeg60", "upsample_nearest"] for lab in (0, 1)
    }


def test_default_subsets_are_all_generators_and_n_per_class_is_per_split():
    source = make(n_per_class={"train": 3, "val": 2, "test": 1})
    assert set(source.select("train")["subset"]) == set(GENERATORS)
    assert len(source.select("train", ["peaks_p4"])) == 6
    assert len(source.select("val", ["peaks_p4"])) == 4
    assert len(source.select("test", ["peaks_p4"])) == 2


def test_same_id_gives_identical_pixels_across_instances():
    ids = ["train/blend_blob/1/000002", "test/upsample_tconv@resize0.5/1/000003", "val/djpeg_q50/0/000001"]
    first = [pixels(make(), i) for i in ids]
    second = [pixels(make(), i) for i in reversed(ids)][::-1]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_data_seed_changes_the_images():
    item_id = "test/peaks_p4/1/000000"
    assert not np.array_equal(pixels(make(seed=0), item_id), pixels(make(seed=1), item_id))


def test_reals_are_shared_across_generators_of_a_split_but_differ_between_indices():
    source = make()
    a = pixels(source, "test/upsample_nearest/0/000001")
    np.testing.assert_array_equal(a, pixels(source, "test/blend_rect/0/000001"))
    assert not np.array_equal(a, pixels(source, "test/upsample_nearest/0/000002"))


def test_default_photos_are_disjoint_and_cover_every_photo():
    splits = [set(DEFAULT_PHOTOS[s]) for s in SPLITS]
    assert sum(len(s) for s in splits) == len(set().union(*splits)) == len(PHOTO_NAMES)


def test_overlapping_photos_are_rejected():
    with pytest.raises(ConfigError, match="'chelsea'.*disjoint"):
        make(photos={"train": ["chelsea"], "val": ["chelsea"]})


def test_unknown_photo_is_named():
    with pytest.raises(ConfigError, match="'chelse'.*'chelsea'"):
        make(photos={"test": ["chelse"]})


def test_splits_draw_from_their_own_photos():
    # A split restricted to one photo reproduces exactly that photo's crops, whatever else is listed.
    only = make(photos={"train": ["rocket"], "val": ["coffee"], "test": ["china"]})
    alone = make(photos={"train": ["astronaut"], "val": ["chelsea"], "test": ["china"]})
    np.testing.assert_array_equal(
        pixels(only, "test/peaks_p4/0/000000"), pixels(alone, "test/peaks_p4/0/000000")
    )
    assert not np.array_equal(pixels(only, "val/peaks_p4/0/000000"), pixels(alone, "val/peaks_p4/0/000000"))


@pytest.mark.parametrize("generator", list(GENERATORS))
def test_every_generator_makes_a_valid_image_that_differs_from_its_base_crop(generator):
    source = make()
    for index in range(3):
        image = source.load(f"train/{generator}/1/{index:06d}")
        assert isinstance(image, Image.Image) and image.mode == "RGB" and image.size == (32, 32)
        base = source.render(f"train/{generator}/1/{index:06d}", generate=False)
        assert np.abs(np.asarray(image, dtype=np.int16) - base).mean() > 0.2


@pytest.mark.parametrize("domain", DOMAINS)
def test_every_domain_changes_reals_and_keeps_the_size(domain):
    source = make()
    clean = pixels(source, "test/peaks_p4/0/000000")
    shifted = source.load(f"test/peaks_p4@{domain}/0/000000")
    assert shifted.mode == "RGB" and shifted.size == (32, 32)
    assert np.abs(np.asarray(shifted, dtype=np.int16) - clean).mean() > 0.2


@pytest.mark.parametrize(
    ("subset", "named"),
    [
        ("upsample_neerest", "upsample_neerest"),
        ("blend_rect@jpg60", "jpg60"),
        ("blend_rect@jpeg101", "jpeg101"),
    ],
)
def test_unknown_generator_or_domain_is_named(subset, named):
    with pytest.raises(ConfigError, match=named):
        make().select("test", [subset])
    with pytest.raises(ConfigError, match=named):
        make().load(f"test/{subset}/1/000000")


def test_unknown_generator_suggests_the_close_name():
    with pytest.raises(ConfigError, match="Did you mean 'upsample_nearest'"):
        make().select("test", ["upsample_neerest"])


def test_unknown_split_is_named():
    with pytest.raises(ConfigError, match="'testing'.*'test'"):
        make().select("testing")
    with pytest.raises(ConfigError, match="'dev'"):
        make(n_per_class={"dev": 3})


def test_malformed_id_and_bad_spec_values_are_rejected():
    with pytest.raises(ConfigError, match="malformed"):
        make().load("test/peaks_p4/000000")
    with pytest.raises(ConfigError, match="image_size"):
        make(image_size=8)
    with pytest.raises(ConfigError, match="n_per_class"):
        make(n_per_class={"train": 0})
    with pytest.raises(ConfigError, match="unknown key 'size'"):
        SyntheticSource("synth", {"size": 32}, None)


def test_parse_domain_chains_operations():
    assert parse_domain("resize0.5+jpeg75") == [("resize", 0.5), ("jpeg", 75.0)]
    with pytest.raises(ConfigError, match="resize1"):
        parse_domain("resize1")


def test_subset_names_lists_every_family():
    families = {family for family, _ in GENERATORS.values()}
    assert families == {"upsample", "resynth", "blend", "inpaint", "peaks", "djpeg"}
    assert subset_names() == list(GENERATORS)


def test_write_folder_writes_the_expected_tree(tmp_path):
    source = make(n_per_class=2)
    count = write_folder(
        source, tmp_path, subsets_by_split={"train": ["peaks_p4"], "test": ["blend_rect@blur1"]}
    )
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.png"))
    expected = sorted(
        f"{split}/{subset}/{LABEL_DIRS[label]}/{index:06d}.png"
        for split, subset in [("train", "peaks_p4"), ("test", "blend_rect@blur1")]
        for label in (0, 1)
        for index in range(2)
    )
    assert count == len(files) and files == expected
    written = np.asarray(Image.open(tmp_path / "test/blend_rect@blur1/1_fake/000001.png"))
    np.testing.assert_array_equal(written, pixels(source, "test/blend_rect@blur1/1/000001"))

"""Indexers of released benchmark folders, each on a small tree built as the release ships it, known gaps included.

DF40's renamed and empty folders (its issues #16, #20, #28, #29, #40, #41), DRCT-2M without its COCO reals
(DRCT issue #10), GenImage's JPEG reals beside PNG fakes, and the 0_real/1_fake sets of AIGCDetectBenchmark,
GANGen-Detection and Chameleon.
"""

from __future__ import annotations

import pytest
from images import image_bytes
from test_indexers import load, touch, video

from bench.cli import main
from bench.data.holdout import held_out
from bench.data.indexers import index_dataset
from bench.errors import ConfigError, DataError

JPEG = image_bytes((8, 8), seed=3, fmt="JPEG")


# -- DF40 -----------------------------------------------------------------------------------------
def make_df40_test(root):
    """The test release as downloaded: the README's folders, with the spellings and gaps users found."""
    video(root / "simswap/ff/frames/000_003")
    video(root / "simswap/cdf/frames/id0_id1_0000")
    video(root / "facevid2vid/ff/frames/004_982")
    video(root / "VQGAN/ff/440")                                  # EFS: no frames/ folder
    (root / "VQGAN/ff/441").mkdir(parents=True)                   # empty video folders (#40)
    (root / "VQGAN/ff/442").mkdir(parents=True)
    video(root / "VQGAN/cdf/Fake_from_Celeb-real/id0_0000")       # an extra folder level
    touch(root / "StarGAN2/fake/1.png")                           # renamed (starganv2), flat stills
    touch(root / "StarGAN2/real/1.jpg", JPEG)
    touch(root / "stargan/fake/fake/1.png")                       # nested fake/fake
    touch(root / "stargan/real/real/1.png")
    touch(root / "Whichisreal/fake/a.png")
    touch(root / "Whichisreal/real/b.png")
    touch(root / "heygen_new/fake/clip.mp4", b"\x00")             # videos, no frames (#29)
    video(root / "heygen_new/real/v01")
    video(root / "CollabDiff/fake/0001")                          # no real folder (#29)
    for who in ("Celeb-real", "Youtube-real"):                    # e4e as released: inversions, not fake/real (#41)
        touch(root / f"e4e/cdf/{who}/inversions/00001.jpg", JPEG)
        touch(root / f"e4e/cdf/{who}/inversions/00002.jpg", JPEG)
    video(root / "e4e/ff/005")


def test_df40_test_release_reads_renamed_and_empty_folders(tmp_path):
    root = tmp_path / "DF40"
    make_df40_test(root)
    notes: list[str] = []
    table = load(index_dataset("df40", root, notes=notes), tmp_path)
    assert set(table["split"]) == {"test"}
    assert sorted(table["subset"].unique()) == [
        "collabdiff", "e4e_cdf", "e4e_ff", "facevid2vid_ff", "heygen", "simswap_cdf", "simswap_ff", "stargan",
        "starganv2", "vqgan_cdf", "vqgan_ff", "whichisreal"]
    by_subset = table.groupby("subset")
    assert by_subset["label"].apply(lambda s: sorted(set(s))).to_dict() == {
        "collabdiff": [1], "e4e_cdf": [1], "e4e_ff": [1], "facevid2vid_ff": [1], "heygen": [0], "simswap_cdf": [1],
        "simswap_ff": [1], "stargan": [0, 1], "starganv2": [0, 1], "vqgan_cdf": [1], "vqgan_ff": [1],
        "whichisreal": [0, 1]}
    groups = by_subset["group"].nunique().to_dict()
    # A video is the folder holding its frames, at whatever depth; stills and e4e's inversions are one image each.
    assert groups["vqgan_cdf"] == 1 and groups["simswap_ff"] == 1
    assert "DF40/VQGAN/cdf/Fake_from_Celeb-real/id0_0000" in set(table["group"])
    assert groups["e4e_cdf"] == 4 and groups["stargan"] == 2 and groups["starganv2"] == 2
    text = "\n".join(notes)
    assert "VQGAN/ff: 2 empty video folder(s) left out" in text
    assert "heygen_new/fake holds no frames (1 .mp4)" in text
    assert "CollabDiff has no real folder" in text


def test_df40_training_release_holds_out_a_tenth_by_identity(tmp_path):
    root = tmp_path / "DF40_train"
    ids = [f"{i:03d}" for i in range(40)]
    for i, a in enumerate(ids):
        b = ids[(i + 1) % len(ids)]
        video(root / f"simswap/ff/frames/{a}_{b}", 2)
        video(root / f"blendface/ff/frames/{a}_{b}", 2)
        video(root / f"VQGAN/{a}", 2)                              # no ff folder in the training release (#28)
    notes: list[str] = []
    table = load(index_dataset("df40", root, notes=notes), tmp_path)
    assert sorted(table["subset"].unique()) == ["blendface_ff", "simswap_ff", "vqgan_ff"]
    assert any("VQGAN has no ff, cdf, fake or real folder" in n for n in notes)
    first_id = table["group"].str.extract(r"/(\d{3})[^/]*$")[0]
    assert (table["split"] == first_id.map(lambda i: "val" if held_out(i) else "train")).all()
    assert set(table["split"]) == {"train", "val"}
    # One identity is on one side for every method.
    assert (table.groupby(first_id)["split"].nunique() == 1).all()


def test_df40_refuses_a_folder_that_is_no_method_and_a_bad_release(tmp_path):
    root = tmp_path / "DF40"
    video(root / "simswap/ff/frames/000_003")
    video(root / "simswapp/ff/frames/000_003")
    with pytest.raises(DataError, match=r"simswapp is not a DF40 method folder\. Did you mean 'simswap'"):
        index_dataset("df40", root)
    with pytest.raises(ConfigError, match="release is 'dev'"):
        index_dataset("df40", root, release="dev")
    video(root / "SimSwap/ff/frames/001_004")
    (root / "simswapp").rename(root / "mobileswap")
    with pytest.raises(DataError, match=r"two folders for DF40 method 'simswap'"):
        index_dataset("df40", root)


# -- DRCT-2M ---------------------------------------------------------------------------------------
def make_drct(root, stems=("000000000009", "000000000025", "000000000030", "000000000034")):
    for stem in stems:
        touch(root / f"MSCOCO/train2017/{stem}.jpg", JPEG)
        for generator in ("stable-diffusion-v1-4", "sdxl-turbo"):
            touch(root / f"DRCT-2M/{generator}/train2017/{stem}.png")
    for stem in ("000000000139", "000000000285"):
        touch(root / f"MSCOCO/val2017/{stem}.jpg", JPEG)
        for generator in ("stable-diffusion-v1-4", "sdxl-turbo"):
            touch(root / f"DRCT-2M/{generator}/val2017/{stem}.png")


def test_drct2m_refuses_without_its_coco_reals(tmp_path):
    root = tmp_path / "DRCT_data"
    make_drct(root)
    (root / "MSCOCO").rename(tmp_path / "elsewhere")
    with pytest.raises(DataError, match=r"MSCOCO has no train2017 or val2017 folder: DRCT-2M does not redistribute "
                                        r"its real images.*cocodataset.org"):
        index_dataset("drct2m", root)
    with pytest.raises(DataError, match=r"DRCT_data/DRCT-2M holds DRCT-2M's generator folders itself"):
        index_dataset("drct2m", root / "DRCT-2M")


def test_drct2m_splits_and_subsets(tmp_path):
    root = tmp_path / "DRCT_data"
    stems = [f"{i:012d}" for i in range(1, 41)]
    make_drct(root, stems)
    video(root / "DR/DRCT-2M/stable-diffusion-v1-4/full_inpainting/train2017", 1)
    notes: list[str] = []
    table = load(index_dataset("drct2m", root, notes=notes), tmp_path)
    assert sorted(table["subset"].unique()) == ["mscoco", "sdxl-turbo", "stable-diffusion-v1-4"]
    assert table.groupby("subset")["label"].unique().apply(list).to_dict() == {
        "mscoco": [0], "sdxl-turbo": [1], "stable-diffusion-v1-4": [1]}
    test = table[table["split"] == "test"]
    assert test["id"].str.contains("/val2017/").all() and len(test) == 6
    train = table[table["split"] != "test"]
    assert set(train["split"]) == {"train", "val"}
    # A COCO image and the fakes named after it fall on the same side.
    stem = train["id"].str.extract(r"/(\d+)\.\w+$")[0]
    assert (train.groupby(stem)["split"].nunique() == 1).all()
    assert not table["id"].str.startswith("DR/").any()
    assert any("lacks 14 of DRCT-2M's 16 generators" in n for n in notes)
    assert any("DR (DRCT's reconstructions" in n for n in notes)
    touch(root / "DRCT-2M/stable-diffusion-v14/train2017/x.png")
    with pytest.raises(DataError, match=r"stable-diffusion-v14 is not a DRCT-2M generator folder\. Did you mean"):
        index_dataset("drct2m", root, overwrite=True)


# -- 0_real/1_fake test sets -------------------------------------------------------------------------
def test_real_fake_sets_aigcdetect_layout(tmp_path):
    root = tmp_path / "AIGCDetectBenchmark/test"
    for cls in ("car", "cat"):
        touch(root / f"progan/{cls}/0_real/1.png")
        touch(root / f"progan/{cls}/1_fake/1.png")
    touch(root / "ADM/0_real/n01.JPEG", JPEG)
    touch(root / "ADM/1_fake/1.PNG")
    touch(root / "stable_diffusion_v_1_4/0_real/1.png")
    touch(root / "stable_diffusion_v_1_4/1_fake/1.png")
    touch(root / "DALLE2/1_fake/1.png")
    notes: list[str] = []
    table = load(index_dataset("real_fake_sets", root, notes=notes), tmp_path)
    assert table.groupby("subset").size().to_dict() == {"adm": 2, "dalle2": 1, "progan": 4, "stable_diffusion_v_1_4": 2}
    assert set(table["split"]) == {"test"} and (table["group"] == table["id"]).all()
    assert any("DALLE2 holds only fake images" in n for n in notes)
    touch(root / "ADM/stray.png")
    with pytest.raises(DataError, match=r"ADM/stray.png is not below a 0_real or 1_fake folder"):
        index_dataset("real_fake_sets", root, overwrite=True)


def test_real_fake_sets_one_set_at_root_and_a_root_one_level_too_high(tmp_path):
    root = tmp_path / "Chameleon"
    touch(root / "0_real/a.jpg", JPEG)
    touch(root / "1_fake/b.png")
    table = load(index_dataset("real_fake_sets", root), tmp_path)
    assert sorted(table["id"]) == ["0_real/a.jpg", "1_fake/b.png"] and set(table["subset"]) == {"chameleon"}
    touch(tmp_path / "up/data/GANGen-Detection/AttGAN/0_real/1.png")
    with pytest.raises(DataError, match=r"up/data has no 0_real or 1_fake folder, so .*up is not a folder of test "
                                        r"sets.*up/data/GANGen-Detection looks like the dataset folder"):
        index_dataset("real_fake_sets", tmp_path / "up")


# -- GenImage: JPEG reals beside PNG fakes, folder names as its README spells them --------------------
def test_genimage_readme_names_and_jpeg_reals(tmp_path):
    root = tmp_path / "GenImage"
    for top in ("Stable Diffusion V1.4", "Stable Diffusion V1.5"):
        for split in ("train", "val"):
            touch(root / f"{top}/{split}/ai/001_sdv4_00001.png")
            touch(root / f"{top}/{split}/nature/n01440764_10026.JPEG", JPEG)
    table = load(index_dataset("genimage", root), tmp_path)
    assert sorted(table["subset"].unique()) == ["sd_v1_4", "sd_v1_5"]
    ext = table["id"].str.rsplit(".", n=1).str[1]
    assert table.groupby("label").apply(lambda t: sorted(set(ext[t.index]))).to_dict() == {0: ["JPEG"], 1: ["png"]}


def test_index_command_prints_the_notes(tmp_path, capsys):
    root = tmp_path / "DF40"
    make_df40_test(root)
    main(["data", "index", "df40", str(root)])
    out = capsys.readouterr().out
    assert f"wrote {root / 'index.csv'}" in out
    assert "note: " in out and "2 empty video folder(s)" in out

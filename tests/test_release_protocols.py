"""The protocols of issue 21 (DF40, CNNDetection, NPR, AIGCDetectBenchmark, GenImage degraded, DRCT-2M, in the wild):
each resolves on mini trees indexed from the released layouts, and says what is missing when data is absent."""

from __future__ import annotations

import pytest
from test_indexers import touch
from test_real_protocols import make_face_root, video

from bench.data.holdout import held_out
from bench.data.indexers import index_dataset
from bench.data.indexers.df40 import FAMILIES, UNKNOWN
from bench.data.splits import build_source, build_sources, resolve_all, resolve_split
from bench.data.verify import verify_protocol
from bench.errors import ConfigError, DataError
from bench.protocol import Perturb, load_protocol

#: FF++-style ids of which exactly some are held out as val by the df40 indexer.
IDS = [f"{i:03d}" for i in range(30)]


def real_fake(base, n=1):
    video(base / "0_real", n)
    video(base / "1_fake", n)


# -- DF40 -----------------------------------------------------------------------------------------
def make_df40(root):
    make_face_root(root)
    test, train = root / "DF40", root / "DF40_train"
    for methods in FAMILIES.values():
        for m in methods:
            video(test / m / "ff/frames/004_005", 12)
            video(test / m / "cdf/frames/id1_id0_0000", 2)
            for a in IDS:
                video(train / m / f"ff/frames/{a}_999", 2)
    for m in UNKNOWN:
        if m == "e4e":
            video(test / "e4e/ff/004", 2)
        else:
            video(test / m / "fake/frames/v1", 2)
            video(test / m / "real/frames/v2", 2)
    index_dataset("df40", test)
    index_dataset("df40", train)


def test_df40_protocols_resolve_with_ffpp_and_celebdf_reals(tmp_path):
    assert any(held_out(a) for a in IDS) and not all(held_out(a) for a in IDS)
    make_df40(tmp_path)
    for name in ("df40_fs", "df40_fr", "df40_efs"):
        family = name.removeprefix("df40_")
        proto = load_protocol(name)
        splits = resolve_all(proto, build_sources(proto, tmp_path))
        train, val = splits["train"].table, splits["val"].table
        assert set(train.loc[train["label"] == 0, "source"]) == {"ffpp"} == set(val.loc[val["label"] == 0, "source"])
        assert set(train.loc[train["label"] == 1, "subset"]) == {f"{m}_ff" for m in FAMILIES[family]}
        # Selection uses the held-out tenth of the training release, never a test set.
        assert set(val.loc[val["label"] == 1, "source"]) == {"df40_train"}
        assert set(train["group"]).isdisjoint(val["group"])
        fs_ff = splits["test/fs_ff"].table
        assert fs_ff.groupby("label")["group"].nunique().to_dict() == {0: 2, 1: 9}
        assert fs_ff[fs_ff["label"] == 1].groupby("group").size().eq(8).all()  # 8 of 12 frames per video
        cdf = splits["test/efs_cdf"].table
        assert set(cdf.loc[cdf["label"] == 0, "subset"]) <= {"Celeb-real", "YouTube-real"}
        assert splits["test/deepfacelab"].counts() == (2, 2)
        assert set(splits["test/e4e"].table.loc[lambda t: t["label"] == 0, "source"]) == {"ffpp"}
    p4 = load_protocol("df40_p4")
    splits = resolve_all(p4, build_sources(p4, tmp_path))
    assert len(splits) == 2 + 71 and set(splits["train"].table.query("label == 1")["subset"]) == {"simswap_ff"}
    assert set(splits["test/sd2_1_cdf"].table.query("label == 1")["subset"]) == {"sd2.1_cdf"}
    report = verify_protocol("df40_fs", tmp_path, check_images=False, hash_files=False)
    assert not report.errors and not report.bad_files


# -- still-image protocols --------------------------------------------------------------------------
CNN13 = ["progan/airplane", "progan/car", "stylegan/bedroom", "biggan", "cyclegan/apple", "stargan", "gaugan", "crn",
         "imle", "seeingdark", "san", "deepfake", "stylegan2/car", "whichfaceisreal"]
AIGC = ["progan/car", "stylegan", "biggan", "cyclegan", "stargan", "gaugan", "stylegan2", "whichfaceisreal", "ADM",
        "Glide", "Midjourney", "stable_diffusion_v_1_4", "stable_diffusion_v_1_5", "VQDM", "wukong", "DALLE2"]
GENIMAGE = ["Midjourney", "stable_diffusion_v_1_4", "stable_diffusion_v_1_5", "ADM", "glide", "wukong", "VQDM",
            "BigGAN"]


def make_images(root):
    cnn = root / "CNNDetection"
    for split in ("train", "val"):
        for cls in ("airplane", "car", "cat", "chair", "horse"):
            real_fake(cnn / split / cls)
    for folder in CNN13:
        real_fake(cnn / "test" / folder)
    for collection, sets in [("GANGen-Detection", ["AttGAN", "BEGAN", "CramerGAN", "InfoMaxGAN", "MMDGAN", "RelGAN",
                                                   "S3GAN", "SNGAN", "STGAN"]),
                             ("DiffusionForensics", ["adm", "ddpm", "iddpm", "ldm", "pndm", "sdv1_new", "sdv2",
                                                     "vqdiffusion"]),
                             ("AIGCDetectBenchmark/test", AIGC)]:
        for s in sets:
            real_fake(root / collection / s)
    for folder in ("laion/0_real", "imagenet/0_real", "guided/1_fake", "ldm_200/1_fake", "ldm_200_cfg/1_fake",
                   "ldm_100/1_fake", "glide_100_27/1_fake", "glide_50_27/1_fake", "glide_100_10/1_fake", "dalle/1_fake"):
        video(root / "diffusion_datasets" / folder, 2)
    for generator in GENIMAGE:
        for split in ("train", "val"):
            video(root / "GenImage" / generator / split / "ai", 2)
            video(root / "GenImage" / generator / split / "nature", 2)
    for layout, folder in [("forensynths", "CNNDetection"), ("real_fake_sets", "GANGen-Detection"),
                           ("real_fake_sets", "DiffusionForensics"), ("real_fake_sets", "AIGCDetectBenchmark/test"),
                           ("univfd_diffusion", "diffusion_datasets"), ("genimage", "GenImage")]:
        index_dataset(layout, root / folder)


def test_image_protocols_resolve_on_their_released_layouts(tmp_path):
    make_images(tmp_path)
    resolved = {}
    for name in ("forensynths13", "forensynths8_npr", "aigcdetect16", "aigcdetect16_jpeg95", "aigcdetect16_blur1",
                 "aigcdetect16_resize50", "genimage_degraded"):
        proto = load_protocol(name)
        resolved[name] = resolve_all(proto, build_sources(proto, tmp_path))
        for key, split in resolved[name].items():
            assert split.counts()[0] and split.counts()[1], (name, key)
    assert resolved["forensynths13"]["test/progan"].counts() == (2, 2)  # both class folders
    npr = resolved["forensynths8_npr"]
    assert set(npr["train"].table["subset"]) == {"car", "cat", "chair", "horse"}
    assert npr["test/attgan"].counts() == (1, 1) and set(npr["test/guided"].table.query("label == 0")["subset"]) == {
        "imagenet"}
    assert set(resolved["aigcdetect16"]["test/sd_v1_4"].table["source"]) == {"aigcdetect"}
    for name, op in [("aigcdetect16_jpeg95", Perturb(jpeg=95)), ("aigcdetect16_blur1", Perturb(blur=1.0)),
                     ("aigcdetect16_resize50", Perturb(downscale=0.5))]:
        assert all(ops == (op,) for key, s in resolved[name].items() if key.startswith("test/") for ops in s.table["ops"])
        assert all(ops == () for ops in resolved[name]["train"].table["ops"])
    degraded = resolved["genimage_degraded"]
    assert degraded["test/sd_v1_4_lr64"].table["ops"].iloc[0] == (Perturb(shorter_side=64),)
    assert list(degraded["test/sd_v1_4_jpeg30"].table["ops"].map(len)) == [1] * 4  # reals and fakes alike
    assert degraded["test/sd_v1_4"].table["id"].tolist() == degraded["test/sd_v1_4_blur5"].table["id"].tolist()


def test_nocrop_mode_is_refused_before_any_work_but_its_data_verifies(tmp_path, capsys):
    from bench.cli import main

    make_images(tmp_path)
    proto = load_protocol("forensynths13_nocrop")
    assert proto.test_resolution == "native" and load_protocol("forensynths13").test_resolution == "detector"
    with pytest.raises(ConfigError, match=r"test_resolution: native.*does not apply yet.*forensynths13"):
        resolve_all(proto, build_sources(proto, tmp_path))
    report = verify_protocol("forensynths13_nocrop", tmp_path, check_images=False, hash_files=False)
    assert not report.errors and len(report.splits) == 2 + 13
    main(["show", "protocol", "forensynths13_nocrop", "--data-root", str(tmp_path)])
    assert "class counts unavailable" in capsys.readouterr().out


# -- DRCT-2M ----------------------------------------------------------------------------------------
def test_drct2m_protocols_resolve_and_count_coco_val(tmp_path):
    from bench.data.indexers.generated import DRCT_GENERATORS

    drct = tmp_path / "DRCT_data"
    stems = [f"{i:012d}" for i in range(1, 21)]
    for folder in ["MSCOCO"] + [f"DRCT-2M/{g}" for g in DRCT_GENERATORS]:
        for stem in stems:
            touch(drct / folder / "train2017" / f"{stem}.png")
        video(drct / folder / "val2017", 2)
    index_dataset("drct2m", drct)
    make_images(tmp_path)
    proto = load_protocol("drct2m")
    splits = resolve_all(proto, build_sources(proto, tmp_path))
    assert set(splits["train"].table["subset"]) == {"mscoco", "stable-diffusion-v1-4"}
    assert set(splits["val"].table["subset"]) == {"mscoco", "stable-diffusion-v1-4"}
    assert set(splits["train"].table["id"]).isdisjoint(splits["val"].table["id"])
    reals = [tuple(s.table.query("label == 0")["id"]) for k, s in splits.items() if k.startswith("test/")]
    assert len(set(reals)) == 1 and all("/val2017/" in i for i in reals[0])  # one COCO val2017 pool for all 16
    cross = load_protocol("drct2m_genimage")
    assert set(resolve_all(cross, build_sources(cross, tmp_path))["test/biggan"].table["source"]) == {"genimage"}
    report = verify_protocol("drct2m", tmp_path, check_images=False, hash_files=False)
    assert [(c.key, c.expected, c.found) for c in report.counts] == [("mscoco", 5000, 2)]


# -- in the wild: a folder set and two saved Hugging Face datasets ------------------------------------
def test_in_the_wild_resolves_and_counts(tmp_path):
    datasets = pytest.importorskip("datasets")
    from images import image_bytes

    make_images(tmp_path)
    real_fake(tmp_path / "Chameleon/test", 2)
    index_dataset("real_fake_sets", tmp_path / "Chameleon")
    image = [image_bytes(seed=i) for i in range(4)]
    datasets.Dataset.from_dict({"image_data": image, "label": [0, 1, 0, 1], "model_name": ["real", "sd", "real", "mj"]}
                               ).save_to_disk(str(tmp_path / "CommunityForensics-PublicEval"))
    datasets.Dataset.from_dict(
        {"image": [{"bytes": b, "path": None} for b in image], "label": [1, 0, 1, 0], "generator": ["a"] * 4},
        features=datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64"),
                                    "generator": datasets.Value("string")})).save_to_disk(str(tmp_path / "So-Fake-OOD"))
    proto = load_protocol("in_the_wild")
    splits = resolve_all(proto, build_sources(proto, tmp_path))
    assert [splits[f"test/{t}"].counts() for t in ("chameleon", "commfor_public_eval", "sofake_ood")] == [
        (2, 2), (2, 2), (2, 2)]
    assert set(splits["test/commfor_public_eval"].table["subset"]) == {"real", "sd", "mj"}
    report = verify_protocol("in_the_wild", tmp_path, check_images=False, hash_files=False)
    assert [(c.source, c.key, c.expected, c.found) for c in report.counts] == [("commfor_eval", "all", 51836, 4)]


# -- missing data: the message says what, where, how to get and index it -------------------------------
@pytest.mark.parametrize("name, test, says", [
    ("drct2m", "sd_v1_4", ["DRCT_data/index.csv", "does not redistribute", "bench data index drct2m <data-root>/DRCT_data"]),
    ("df40_fs", "deepfacelab", ["DF40/index.csv", "https://github.com/YZY-stack/DF40", "bench data index df40 <data-root>/DF40"]),
    ("forensynths8_npr", "attgan", ["GANGen-Detection/index.csv", "bench data index real_fake_sets"]),
    ("in_the_wild", "commfor_public_eval", [
        "CommunityForensics-PublicEval", ("Download it with `python -c \"import datasets; datasets.load_dataset("
                                          "'OwensLab/CommunityForensics', split='PublicEval')"
                                          ".save_to_disk('<data-root>/CommunityForensics-PublicEval')\"`")]),
])
def test_missing_data_says_where_to_get_it(tmp_path, name, test, says):
    proto = load_protocol(name)
    spec = proto.test[test]
    parts = [spec.real, spec.fake] if hasattr(spec, "real") else [spec]
    sources = {p.source: build_source(proto, p.source, tmp_path) for p in parts}
    with pytest.raises(DataError) as err:
        resolve_split(test, spec, sources)
    for text in says:
        assert text in str(err.value)
    assert "synthetic_universal" in str(err.value)

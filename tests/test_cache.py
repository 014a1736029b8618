"""The feature cache: per-item reuse, what misses, damaged entries, concurrent writers, info/clear, CLI."""

import multiprocessing
import os
import time
import warnings
from pathlib import Path

import pytest
import torch

from bench.cache.store import CacheWarning, FeatureCache, default_root, file_item_key
from bench.cli import main
from bench.errors import ConfigError
from bench.plugin.weights import state_fingerprint

PARTS = {"detector": "clip_linear", "backbone": "timm:vit_tiny_patch16_224@none", "weights": "ab12",
         "image_size": 32, "transform": "Compose(Resize(32), CenterCrop(32))", "decode": "1", "perturb": None,
         "precision": "no"}


def keys(n, prefix="img"):
    return [f"{prefix}/{i:04d}.png|{100 + i}|{1700000000000000000 + i}" for i in range(n)]


def shards(root: Path) -> list[Path]:
    return sorted(root.rglob("*.safetensors"))


def test_round_trip_in_key_order_and_subsets(tmp_path):
    cache = FeatureCache(tmp_path)
    ns = cache.namespace(PARTS)
    feats = torch.randn(12, 8)
    assert cache.store(ns, keys(12), feats, {"split": "train"})
    loaded = cache.load(ns, keys(12), split="train")
    assert loaded.dtype == torch.float32 and torch.equal(loaded, feats)
    order = [7, 2, 11, 2]
    assert torch.equal(cache.load(ns, [keys(12)[i] for i in order]), feats[order])
    assert cache.report() == {"enabled": True, "hits": 16, "misses": 0,
                              "splits": {"train": {"hits": 12, "misses": 0}, "all": {"hits": 4, "misses": 0}}}


def test_namespace_is_canonical_and_every_part_counts(tmp_path):
    cache = FeatureCache(tmp_path)
    ns = cache.namespace(PARTS)
    assert ns == cache.namespace(dict(reversed(list(PARTS.items()))))
    cache.store(ns, keys(4), torch.randn(4, 3))
    for part, value in [("weights", "cd34"), ("transform", "Compose(Resize(64))"), ("perturb", "jpeg=75"),
                        ("precision", "bf16"), ("decode", "2")]:
        other = cache.namespace({**PARTS, part: value})
        assert other != ns and cache.load(other, keys(4)) is None, part
    with pytest.raises(TypeError):
        cache.namespace({"transform": object()})


def test_a_changed_image_misses_alone_and_is_merged(tmp_path):
    cache = FeatureCache(tmp_path)
    ns = cache.namespace(PARTS)
    feats = torch.randn(6, 4)
    cache.store(ns, keys(6), feats)
    changed = keys(6)
    changed[3] = changed[3].replace("|103|", "|999|")  # same path, new size: new content
    assert cache.load(ns, changed, split="val") is None
    found = cache.lookup(ns, changed, split="val")
    assert found.missing == [3] and not found.complete
    fresh = torch.full((1, 4), 5.0)
    merged = found.merge(fresh)
    assert torch.equal(merged[[0, 1, 2, 4, 5]], feats[[0, 1, 2, 4, 5]]) and torch.equal(merged[3], fresh[0])
    cache.store(ns, [changed[3]], fresh)
    assert torch.equal(cache.load(ns, changed), merged)
    assert cache.stats["val"] == {"hits": 10, "misses": 2}


def test_damaged_entries_are_a_warned_miss_then_rewritten(tmp_path):
    cache = FeatureCache(tmp_path)
    ns = cache.namespace(PARTS)
    feats = torch.randn(10, 16)
    cache.store(ns, keys(10), feats)
    (path,) = shards(tmp_path)
    data = bytearray(path.read_bytes())
    data[-7] ^= 0xFF  # one flipped bit pattern inside the feature data: the file size is still right
    path.write_bytes(bytes(data))
    with pytest.warns(CacheWarning, match="checksum"):
        assert cache.load(ns, keys(10)) is None
    assert not path.exists()
    cache.store(ns, keys(10), feats)
    path.write_bytes(path.read_bytes()[:-100])  # truncated
    with pytest.warns(CacheWarning, match="unreadable"):
        assert cache.lookup(ns, keys(10)).features is None
    assert cache.store(ns, keys(10), feats) and torch.equal(cache.load(ns, keys(10)), feats)


def _writer(root, value, barrier, rounds):
    cache = FeatureCache(root)
    ns = cache.namespace(PARTS)
    barrier.wait()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any CacheWarning fails this process
        for _ in range(rounds):
            cache.store(ns, keys(64), torch.full((64, 32), float(value)))
            got = cache.load(ns, keys(64))
            # A reader sees one complete entry from some writer, never a mix or a partial file.
            if got is None or len(set(got.flatten().tolist())) != 1:
                raise SystemExit(1)


def test_concurrent_writers_leave_one_valid_entry(tmp_path):
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_writer, args=(tmp_path, value, barrier, 20)) for value in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(shards(tmp_path)) == 1 and not [p for p in files if p.name.endswith(".tmp")]
    cache = FeatureCache(tmp_path)
    got = cache.load(cache.namespace(PARTS), keys(64))
    assert got is not None and got.unique().item() in {0.0, 1.0, 2.0, 3.0}


def test_info_and_clear_by_age(tmp_path):
    cache = FeatureCache(tmp_path)
    ns_a, ns_b = cache.namespace(PARTS), cache.namespace({**PARTS, "image_size": 64})
    cache.store(ns_a, keys(5), torch.randn(5, 4), {"split": "train"})
    cache.store(ns_a, keys(3, "val"), torch.randn(3, 4), {"split": "val"})
    cache.store(ns_b, keys(5), torch.randn(5, 8))
    info = {row["namespace"]: row for row in cache.info()}
    assert info[ns_a]["shards"] == 2 and info[ns_a]["items"] == 8 and info[ns_a]["dim"] == 4
    assert info[ns_a]["parts"] == PARTS and {"split": "val"} in info[ns_a]["meta"]
    total = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert sum(row["bytes"] for row in info.values()) == total
    old = time.time() - 3 * 86400
    for path in (tmp_path / "features-v1" / ns_b).iterdir():
        os.utime(path, (old, old))
    assert cache.load(ns_a, keys(5)) is not None  # a hit refreshes its entry's age
    removed, freed = cache.clear(older_than_days=1)
    assert removed == 1 and freed > 0 and [row["namespace"] for row in cache.info()] == [ns_a]
    removed, freed = cache.clear()
    assert removed == 2 and cache.info() == [] and not any(tmp_path.rglob("*.safetensors"))
    with pytest.raises(ConfigError, match="older-than"):
        cache.clear(older_than_days=-1)


def test_disabled_unwritable_and_misplaced_caches(tmp_path):
    off = FeatureCache(tmp_path, enabled=False)
    ns = off.namespace(PARTS)
    assert not off.store(ns, keys(2), torch.randn(2, 3)) and off.load(ns, keys(2)) is None
    assert not any(tmp_path.iterdir()) and off.report()["enabled"] is False
    (tmp_path / "afile").write_text("x")
    below_a_file = FeatureCache(tmp_path / "afile" / "cache")
    with pytest.warns(CacheWarning, match="Could not write"):
        assert not below_a_file.store(ns, keys(2), torch.randn(2, 3))
    with pytest.raises(ConfigError, match="is a file"):
        FeatureCache(tmp_path / "afile").lookup(ns, keys(2))
    with pytest.raises(ValueError, match="finite"):
        FeatureCache(tmp_path).store(ns, keys(2), torch.tensor([[1.0, float("nan")], [0.0, 0.0]]))


def test_root_and_key_helpers(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path / "c"))
    assert FeatureCache().root == tmp_path / "c"
    monkeypatch.delenv("BENCH_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_root() == tmp_path / "xdg" / "forgery-bench"
    image = tmp_path / "a.png"
    image.write_bytes(b"1234")
    before = file_item_key(image)
    image.write_bytes(b"12345")
    assert file_item_key(image) != before and str(image.resolve()) in before
    weights = {"w": torch.ones(3, 2), "b": torch.zeros(2, dtype=torch.bfloat16)}
    same = state_fingerprint({"b": weights["b"].clone(), "w": weights["w"].clone()})
    assert state_fingerprint(weights) == same
    assert state_fingerprint({**weights, "w": weights["w"] * 2}) != same


def test_cli_info_and_clear(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_CACHE", str(tmp_path))
    cache = FeatureCache()
    cache.store(cache.namespace(PARTS), keys(4), torch.randn(4, 6), {"split": "train"})
    main(["cache", "info"])
    out = capsys.readouterr().out
    assert str(tmp_path) in out and "backbone=timm:vit_tiny_patch16_224@none" in out and "1 entries" in out
    main(["cache", "clear", "--older-than", "1"])
    assert "removed 0 entries" in capsys.readouterr().out
    main(["cache", "clear"])
    assert "removed 1 entries" in capsys.readouterr().out and cache.info() == []
    with pytest.raises(SystemExit) as exit_:
        main(["cache", "clear", "--older-than", "-2"])
    assert exit_.value.code == 2 and "older-than" in capsys.readouterr().err

"""What each protocol key means, one line each: printed by ``bench validate --help`` and used in the README.

Kept free of imports so the command line can print it without loading the schema; a test checks that
every field of :mod:`bench.protocol`'s models is described here and nothing else.
"""

from __future__ import annotations

#: ``(key path, meaning)``; ``<split>`` is a split mapping (train, val, a test set, or a test set's real/fake).
KEYS: list[tuple[str, str]] = [
    ("name", "the protocol's name; must equal the file name without .yaml"),
    ("version", "integer >= 1; bump it whenever the content changes (results record it with a hash)"),
    ("description", "what the protocol measures, in prose"),
    ("sources", "name -> a sources.yaml catalog name, or an inline spec {type: folder|manifest|hf|synthetic, ...}"),
    ("detector_defaults", "detector settings applied before -o overrides (e.g. the reference backbone)"),
    ("train", "<split> the detector is trained on, or {real: <split>, fake: <split>} when they are released apart"),
    ("val", "<split> (or {real, fake}) of the training domain used for checkpoint selection, plus `select`"),
    ("val.select", "last, or best:<metric> (auc, ap, eer, acc, oracle_acc, ece, tpr_at_fpr1, tpr_at_fpr5); never a test set"),
    ("test", "test set name -> <split>, or {real: <split>, fake: <split>, perturb, sanity} for a shared real pool"),
    ("groups", "group name -> list of test sets; a group's metric is the unweighted mean over them"),
    ("metrics", "metrics reported per test set: auc, ap, eer, acc, video_auc, oracle_acc, acc_val_thr, ece, tpr_at_fpr1, tpr_at_fpr5 (every run adds acc, acc_val_thr, oracle_acc, ece and the tpr_at_fpr ones)"),
    ("primary", "metric@group or metric@test that ranks the leaderboard, e.g. auc@unseen"),
    ("budget.max_epochs", "upper bound on training epochs, whatever the detector asks for"),
    ("budget.max_steps", "upper bound on optimisation steps"),
    ("seeds", "training seeds of a full leaderboard entry (default [0, 1, 2])"),
    ("test_resolution", "detector (each detector's eval transform, default) or native (test images whole, uncropped)"),
    ("rounds", ("a temporal protocol: {order: generators in release order, window: generators per window, "
                "training: cumulative|sliding, init: fresh|continued, test: <split> without subsets}; round k "
                "trains and selects on its windows and tests on the next (r<k>_next) and on all released so far "
                "(r<k>_growing); `test` and the groups next/growing are generated, train/val give no subsets")),
    ("<split>.source", "a name under `sources`"),
    ("<split>.split", "the source's split: train, val or test (or the dataset's own split name)"),
    ("<split>.subsets", "keep only these subsets (e.g. generators, manipulation methods); default all"),
    ("<split>.max_per_class", "keep at most this many images per class, sampled with sample_seed"),
    ("<split>.sample_seed", "seed of that sampling (default 0)"),
    ("<split>.frames_per_group", "frame datasets: keep this many evenly spaced frames per video"),
    ("<split>.perturb", "degrade real and fake alike: {jpeg: quality, blur: sigma, downscale: factor or shorter_side: px} or {chain: ai_genbench, seed}"),
    ("<split>.fake_perturb", "degrade fakes only (e.g. {jpeg: 96} to match JPEG reals)"),
    ("<split>.sanity", ("test sets only: true marks an in-domain sanity set that may share images with train or "
                       "val (otherwise refused); reported, never the primary nor in its group")),
]


def describe() -> str:
    """The keys as aligned text lines."""
    width = max(len(k) for k, _ in KEYS)
    return "\n".join(f"  {key:<{width}}  {meaning}" for key, meaning in KEYS)

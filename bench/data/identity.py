"""What each row of a resolved split is and holds: for the held-out check and for ``--resume``.

One ``stat`` per file gives both (:meth:`bench.data.base.Source.item_identities`): the row's
*identity* (which file it is, ``device:inode``, whatever path or source reached it; the item key
for sources without files) and its *content key* (path below the data root, size, modification
time). From them:

- :func:`check_held_out`: a test set that shares an image with train or val is refused (unless
  the protocol marks it ``sanity``), naming the first shared file; this is what ``bench validate``
  cannot see without the data (two sources over one folder, links, overlapping manifests).
- :attr:`SplitIdentity.fingerprint`: a hash of every row's content key and label, recorded when a
  run starts and compared when it is resumed (an edited image changes it).

Byte-identical copies at different paths are different files here (finding them means hashing
every image: ``bench data verify`` does that).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from bench.data.splits import ResolvedSplit
from bench.errors import DataError
from bench.protocol import Protocol


@dataclass
class SplitIdentity:
    """Per-row identities of one split, and the fingerprint of its content."""

    identities: list[str]
    fingerprint: str


def identify(split: ResolvedSplit) -> SplitIdentity:
    """Identities (table order) and content fingerprint of ``split``."""
    table = split.table
    identities = [""] * len(table)
    digest = hashlib.sha256()
    keys = [""] * len(table)
    for source_name, source in split.sources.items():
        rows = table.index[table["source"] == source_name].tolist()
        for row, (identity, key) in zip(rows, source.item_identities(table.loc[rows])):
            identities[row], keys[row] = identity, f"{source_name}|{key}"
    for key, label in zip(keys, table["label"].tolist()):
        digest.update(f"{key}\t{label}\n".encode())
    return SplitIdentity(identities, "sha256:" + digest.hexdigest())


def identify_all(splits: dict[str, ResolvedSplit]) -> dict[str, SplitIdentity]:
    """:func:`identify` for every split, by split name (``train``, ``val``, test names)."""
    return {split.name: identify(split) for split in splits.values()}


def check_held_out(proto: Protocol, splits: dict[str, ResolvedSplit], identity: dict[str, SplitIdentity]) -> None:
    """Refuse a test set that shares a file with train or val, unless the protocol marks it ``sanity``."""
    by_name = {s.name: s for s in splits.values()}
    used: dict[str, tuple[str, str]] = {}
    for key in ("train", "val"):  # by key: a round of a temporal run names them r<k>_train, r<k>_val
        table = splits[key].table
        for ident, source, item in zip(identity[splits[key].name].identities, table["source"], table["id"]):
            used.setdefault(ident, (key, f"{source}:{item}"))
    for test_name, test in proto.test.items():
        if test.sanity or test_name not in identity:
            continue
        table = by_name[test_name].table
        shared = [(row, used[ident]) for row, ident in enumerate(identity[test_name].identities) if ident in used]
        if shared:
            row, (where, first) = shared[0]
            mine = f"{table['source'].iloc[row]}:{table['id'].iloc[row]}"
            raise DataError(
                f"Test set {test_name!r} shares {len(shared)} of its {len(table)} images with {where} (first: {mine} "
                f"is the same file as {first}), so it is not held out; point it at other images, or mark it "
                "`sanity: true` in the protocol (an in-domain sanity set, reported but never ranked on)."
            )

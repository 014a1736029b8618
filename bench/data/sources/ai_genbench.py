"""The ``ai_genbench`` source: AI-GenBench's dataset as its build script saves it (``save_to_disk``).

The release (MI-BioLab/AI-GenBench, ``dataset_creation/simple_dataset_generation.py``, which writes it to
``<output_path>/ai_gen_bench_v1.0.0``) is a ``DatasetDict`` with splits ``train`` and ``validation`` and
columns ``image``, ``label`` (a ClassLabel: real, fake),
``generator`` (the generator's name; empty for real images) and ``file_id``: 4,000 fakes per
generator in ``train`` and 1,000 in ``validation``, with as many real images, which belong to no
generator. AI-GenBench pairs them: each real image goes with one fake image (its code shuffles the
reals with a fixed seed and pairs them one to one with the fakes), and a generator's test set is its
fakes plus the reals paired with them; a training window gets as many reals as it has fakes. So
here a real image's subset is the generator of the fake it is paired with, and selecting generators
selects their paired reals too. The pairing is of the same kind as AI-GenBench's, not its own image for
image (its code draws with Python's ``random`` under other seeds).

Splits: ``test`` is the release's ``validation`` split (AI-GenBench tests on it); ``train`` and
``val`` are the release's ``train`` split, with the tenth of its fakes that
:func:`bench.data.holdout.held_out` picks by ``file_id``, and the reals paired with them, held out as
``val``, the validation split (AI-GenBench itself has none apart from its test data). Ids are
``<our split>/<row>``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bench.data.base import make_table
from bench.data.holdout import held_out
from bench.data.sources.hf import HFSource
from bench.data.sources.manifest import only_subsets
from bench.errors import ConfigError, DataError

#: Our split -> the release's split.
RELEASE_SPLITS = {"train": "train", "val": "train", "test": "validation"}


class AIGenBenchSource(HFSource):
    """Rows of AI-GenBench's saved dataset, reals paired with generators (see the module docstring).

    Spec keys: ``path`` (the saved dataset, relative to the data root), ``pair_seed`` (the seed of
    the real-fake pairing; changing it gives another, equally valid pairing), and the ``hf``
    source's column keys for a release whose columns are named otherwise.
    """

    type_name = "ai_genbench"
    spec_keys: ClassVar[dict[str, Any]] = {
        "path": ...,
        "loader": "disk",
        "image_column": "image",
        "label_column": "label",
        # The release's label is a ClassLabel named real/fake; plain 0/1 integers read the same.
        "label_map": {"real": 0, "fake": 1, "0": 0, "1": 1},
        "generator_column": "generator",
        "id_column": "file_id",
        "pair_seed": 1337,
    }

    def __init__(self, name: str, spec: dict[str, Any], data_root: Path | None):
        super().__init__(name, spec, data_root)
        self._tables: dict[str, pd.DataFrame] = {}

    def _validate_spec(self, spec: dict[str, Any]) -> dict[str, Any]:
        out = super()._validate_spec(spec)
        if not isinstance(out["pair_seed"], int) or isinstance(out["pair_seed"], bool) or out["pair_seed"] < 0:
            raise ConfigError(f"{self._where()}: pair_seed must be a whole number >= 0, not {out['pair_seed']!r}.")
        # The hf machinery reads these keys; this source fixes them.
        return {**out, "name": None, "split_map": {}, "subset_column": None, "group_column": None}

    def _where(self) -> str:
        return f"Source {self.name!r} (type ai_genbench)"

    def _split(self, split: str) -> tuple[str, Any]:
        if split not in RELEASE_SPLITS:
            raise DataError(f"{self._where()} has the splits {', '.join(RELEASE_SPLITS)}, not {split!r}.")
        return RELEASE_SPLITS[split], self._release(RELEASE_SPLITS[split])

    def _release(self, release: str) -> Any:
        """The release's split ``release`` (``train`` or ``validation``), its columns checked."""
        splits = self._open()
        if release not in splits:
            raise DataError(f"{self._where()}: the dataset has no split {release!r} (it has {', '.join(splits)}); "
                            "build it with AI-GenBench's dataset_creation/simple_dataset_generation.py.")
        ds = splits[release]
        for key in ("image_column", "label_column", "generator_column", "id_column"):
            if self.spec[key] not in ds.column_names:
                raise ConfigError(f"{self._where()}: '{key}' is {self.spec[key]!r} but split {release!r} has "
                                  f"columns {', '.join(ds.column_names)}; set '{key}' to the right column.")
        return ds

    def _paired(self, release: str) -> pd.DataFrame:
        """The release split's rows with their label, generator (a real's: its paired fake's) and id."""
        if release in self._tables:
            return self._tables[release]
        ds = self._release(release)
        columns = [self.spec[k] for k in ("label_column", "generator_column", "id_column")]
        meta = ds.select_columns(columns).to_pandas()
        labels = meta[columns[0]].map(self._label_fn(ds, meta[columns[0]])).to_numpy()
        generators = meta[columns[1]].fillna("").astype(str).to_numpy(copy=True)
        reals, fakes = np.flatnonzero(labels == 0), np.flatnonzero(labels == 1)
        if len(reals) != len(fakes):
            raise DataError(
                f"{self._where()}: split {release!r} holds {len(reals)} real and {len(fakes)} fake images, but "
                "AI-GenBench pairs every real image with one fake; its build stops short when real images fail to "
                "download (LAION, RAISE), so fetch the missing ones and build the dataset again.")
        unnamed = int((generators[fakes] == "").sum())
        if unnamed:
            raise DataError(f"{self._where()}: split {release!r} has {unnamed} fake images without a generator "
                            f"name in column {columns[1]!r}; every fake needs one to be placed in time.")
        shuffled = np.random.default_rng(self.spec["pair_seed"]).permutation(reals)
        generators[shuffled] = generators[fakes]
        # A real image is held out with its partner, so each split stays balanced per generator.
        keys = meta[columns[2]].astype(str).to_numpy(copy=True)
        keys[shuffled] = keys[fakes]
        table = pd.DataFrame({"row": np.arange(len(labels)), "label": labels, "subset": generators, "key": keys})
        self._tables[release] = table
        return table

    def select(self, split: str, subsets: list[str] | None = None) -> pd.DataFrame:
        """Rows of ``split`` (``train``, ``val`` or ``test``) of the generators in ``subsets`` and their paired reals."""
        release, _ = self._split(split)
        table = self._paired(release)
        if split != "test":
            table = table[[held_out(k) == (split == "val") for k in table["key"]]]
        ids = [f"{split}/{r}" for r in table["row"]]
        rows = pd.DataFrame({"id": ids, "label": table["label"].to_numpy(), "split": split,
                             "subset": table["subset"].to_numpy(), "group": ids})
        return make_table(only_subsets(self._where(), rows, split, subsets).to_dict("records"))

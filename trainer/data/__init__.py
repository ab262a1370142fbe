"""Dataset readers by name: `read_dataset("fer2013", path)` → `Dataset`.

Each reader takes the dataset in the layout its users download and returns named splits with
the dataset's own label names (see `labels` for mapping between class sets by name)."""

from __future__ import annotations

import importlib
from pathlib import Path

from trainer.data.core import DataError, Dataset, Split

# name → "module:function"; resolved on use so that listing the names imports nothing heavy
READERS = {
    "fer2013": "trainer.data.fer2013:read_fer2013",
    "ferplus": "trainer.data.fer2013:read_ferplus",
    "ferplus7": "trainer.data.fer2013:read_ferplus7",
    "ckplus": "trainer.data.folders:read_ckplus",
    "jaffe": "trainer.data.folders:read_jaffe",
    "rafdb": "trainer.data.folders:read_rafdb",
    "affectnet": "trainer.data.folders:read_affectnet",
    "affectnet7": "trainer.data.folders:read_affectnet7",
    "caer": "trainer.data.folders:read_caer",
    "folder": "trainer.data.folders:read_folder",
}


def read_dataset(name: str, path: str | Path, skip_bad: bool = False) -> Dataset:
    if name not in READERS:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join(READERS)}")
    module, function = READERS[name].split(":")
    dataset = getattr(importlib.import_module(module), function)(Path(path), skip_bad=skip_bad)
    if not any(len(split) for split in dataset.splits.values()):
        # a file with only its header: every verb would fail later on empty tensors
        skipped = f" ({dataset.skipped.total} records skipped)" if dataset.skipped.total else ""
        raise DataError(f"{path}: holds no images{skipped}; expected a {name} dataset's records")
    return dataset


__all__ = ["READERS", "DataError", "Dataset", "Split", "read_dataset"]

"""Faces of another dataset added to a dataset's training split (`train --add-data`, `kfold
--into`): e.g. CK+'s posed lab faces beside FER2013's, so a model learns both without giving up
either. Validation and test stay the base dataset's own, so a mixed run is chosen and scored
exactly as an unmixed one.

Labels are matched by name into the base dataset's (`trainer.data.labels.index_map`); faces of
classes the base lacks (CK+ contempt for FER2013) are left out. The added faces are resized to
the base's stored side, and get one-hot `soft` targets where the base trains on votes.
"""

from __future__ import annotations

import numpy as np

from trainer.data.core import Dataset, Split
from trainer.data.labels import index_map


def parse_source(text: str, flag: str) -> tuple[str, str]:
    """`DATASET=PATH` (a reader name and its file or folder) → (name, path)."""
    from trainer.data import READERS

    name, sep, path = text.partition("=")
    if not sep or name not in READERS or not path:
        raise ValueError(
            f"{flag} {text!r}: expected DATASET=PATH with DATASET one of {', '.join(READERS)}, "
            "e.g. ckplus=../shared/data/ckplus"
        )
    return name, path


def mapped_split(split: Split, labels: tuple[str, ...], into: tuple[str, ...]) -> Split:
    """`split`'s faces of the classes `into` has, their targets as indices into `into`."""
    mapping = np.array([-1 if i is None else i for i in index_map(labels, into)])
    mapped = mapping[split.targets]
    keep = np.flatnonzero(mapped >= 0)
    part = split.subset(keep)
    part.targets = mapped[keep]
    part.soft = None  # votes over other labels do not carry over
    return part


def add_training(
    base: Dataset, extra: Dataset, repeat: int = 1, split: str | None = None
) -> Dataset:
    """`base` with `extra`'s training faces (its `split`, default its training split or its only
    one) appended `repeat` times to the training split."""
    if split is None:
        split = extra.train or (next(iter(extra.splits)) if len(extra.splits) == 1 else "train")
    train = with_faces(base, extra[split], extra.labels, repeat, f"{extra.name} {split}")
    return Dataset(
        f"{base.name}+{extra.name}", base.labels, {**base.splits, base.train: train},
        base.train, base.val, base.test, base.skipped, dict(base.aliases),
    )  # fmt: skip


def with_faces(
    base: Dataset, faces: Split, labels: tuple[str, ...], repeat: int = 1, what: str = ""
) -> Split:
    """`base`'s training split with `faces` (targets indexing `labels`) appended `repeat`
    times, their classes mapped by name into `base.labels`."""
    added = mapped_split(faces, labels, base.labels)
    if not len(added):
        raise ValueError(
            f"{what or faces.name}: no face of a class {base.name} has ({', '.join(base.labels)})"
        )
    own = base[base.train]
    return join([own] + [added] * repeat, own)


def join(parts: list[Split], like: Split) -> Split:
    """One split of `parts`, stored like `like` (in memory at its side and channels)."""
    if not like.in_memory:
        raise ValueError(f"split {like.name}: adding faces needs a dataset held in memory")
    side, channels = like.images.shape[1], 1 if like.images.ndim == 3 else 3
    images, soft = [], []
    for part in parts:
        if not part.in_memory or part.images.shape[1:] != like.images.shape[1:]:
            part = part.materialize(side, channels, progress=False)
        images.append(part.images)
        if like.soft is not None:
            soft.append(
                part.soft if part.soft is not None else np.eye(like.soft.shape[1])[part.targets]
            )
    groups = None
    if all(p.groups is not None for p in parts):
        groups = np.concatenate([np.asarray(p.groups, dtype=object) for p in parts])
    return Split(
        like.name,
        np.concatenate([p.targets for p in parts]),
        images=np.concatenate(images),
        soft=np.concatenate(soft).astype(np.float32) if soft else None,
        groups=groups,
        where=[w for p in parts for w in p.where] if all(p.where for p in parts) else None,
    )

"""A split's pixels on the training device, and the training batch built from them.

`Batches` holds a split as one uint8 tensor on the device when it fits (else DataLoader workers
decode it per batch); `make_batch` turns a uint8 batch into a `Batch`: the recipe's
augmentation (or the VGG recipe's ten crops), mixup, label smoothing or the split's own soft
targets (FER+ votes), and normalisation in the model's input view.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, replace

import numpy as np
import torch

from trainer.data import Split
from trainer.engine.augment import Augment, erase, ten_crop
from trainer.engine.recipes import Recipe
from trainer.engine.step import Batch, smooth, soft_targets
from trainer.engine.views import View, as_batch_tensor, normalize

STREAM_ABOVE_BYTES = 4 << 30  # path datasets larger than this are decoded per batch


class Batches:
    """A split's pixels for training: one uint8 tensor on the device when it fits (or when
    `stream` is off, as for validation splits), else decoded per batch by DataLoader workers.
    Either way batches come out as uint8 N×C×S×S."""

    def __init__(
        self,
        split: Split,
        side: int,
        channels: int,
        device: torch.device,
        classes: int,
        stream: bool = True,
    ):
        self.targets = torch.from_numpy(split.targets)
        self.soft = None if split.soft is None else torch.from_numpy(split.soft).float()
        self.split, self.side, self.channels, self.classes = split, side, channels, classes
        too_big = len(split) * side * side * channels > STREAM_ABOVE_BYTES
        if stream and not split.in_memory and too_big:
            self.images = None  # streamed
        else:
            held = split if split.in_memory else split.materialize(side, channels)
            self.images = as_batch_tensor(held.images).to(device)
        self.device = device

    def __len__(self) -> int:
        return len(self.targets)

    def __call__(
        self, order: torch.Tensor, batch_size: int
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self.images is not None:
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                yield self.images[idx.to(self.images.device)], idx
            return
        loader = torch.utils.data.DataLoader(
            _Decoded(self.split, self.side, self.channels),
            batch_size=batch_size,
            sampler=order.tolist(),
            num_workers=min(8, max(1, torch.get_num_threads())),
            pin_memory=self.device.type == "cuda",
        )
        start = 0
        for images in loader:
            yield images.to(self.device, non_blocking=True), order[start : start + len(images)]
            start += len(images)


class _Decoded(torch.utils.data.Dataset):
    def __init__(self, split: Split, side: int, channels: int):
        self.split, self.side, self.channels = split, side, channels

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> torch.Tensor:
        from trainer.data.core import resize

        image = resize(self.split.decode(i, self.channels), self.side)
        return as_batch_tensor(image[None])[0]


def stored_side(split: Split, view: View, train_size: int, recipe: Recipe) -> int:
    """The side at which a path dataset is decoded: enough for the training and the test view."""
    if split.in_memory:
        return split.images.shape[1]
    return max(round(train_size / recipe.train_crop), round(view.size / view.crop))


def make_batch(
    images: torch.Tensor,
    index: torch.Tensor,
    data: Batches,
    recipe: Recipe,
    view: View,
    augment: Augment,
    gen: torch.Generator,
    mix_rng: np.random.Generator,
    epoch: int,
) -> Batch:
    """A uint8 batch of `data` (at positions `index`) → a `Batch`: augmentation (or the ten
    crops of the VGG recipe, labels repeated), soft targets (the split's votes where it has
    them, else the labels with the recipe's smoothing), mixup, normalisation."""
    device = images.device
    y = data.targets[index].to(device)
    if data.soft is not None:
        targets = smooth(data.soft[index].to(device), recipe.label_smoothing)
    else:
        targets = soft_targets(y, data.classes, recipe.label_smoothing)
    if recipe.tencrop_train:
        x01 = _ten_crops(images, augment, gen, recipe)
        y, targets, index = y.repeat(10), targets.repeat(10, 1), index.repeat(10)
    else:
        x01 = augment(images, gen)
    if recipe.mixup:
        x01, targets = mixup(x01, targets, recipe.mixup, gen, mix_rng)
    return Batch(x01, normalize(view, x01), y, targets, index, epoch)


def mixup(
    x: torch.Tensor,
    targets: torch.Tensor,
    alpha: float,
    gen: torch.Generator,
    mix_rng: np.random.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup: each input and target blended with another of the batch, λ ~ Beta(α, α)."""
    lam = float(mix_rng.beta(alpha, alpha))
    perm = torch.randperm(len(x), generator=gen, device=x.device)
    return lam * x + (1 - lam) * x[perm], lam * targets + (1 - lam) * targets[perm]


def _ten_crops(images, augment: Augment, gen, recipe: Recipe) -> torch.Tensor:
    """VGG recipe: augment at the stored side, then feed all ten crops (erasing per crop)."""
    whole = replace(augment, size=images.shape[-1], crop=1.0, erase_p=0.0)
    crops = ten_crop(whole(images, gen), augment.size).flatten(0, 1)
    return erase(crops, recipe.erase_p, recipe.erase_area, gen) if recipe.erase_p else crops


def augment_for(recipe: Recipe, size: int) -> Augment:
    """The recipe's augmentation settings (fields of the same names) at the training size."""
    shared = {f.name for f in fields(Augment)} - {"size", "crop"}
    return Augment(size=size, crop=recipe.train_crop, **{k: getattr(recipe, k) for k in shared})

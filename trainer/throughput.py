"""Training throughput (images/s) of this project's training path next to a plain per-image
DataLoader baseline of the same model: what `python -m trainer throughput` prints.

Both paths train on the same synthetic data in FER2013's stored shape (random uint8 grey 48×48
faces, random labels), with the model family's recipe (or a named one), one crop per image:

* project: the images live on the device as one uint8 tensor and each batch is augmented there
  (`Augment`: crop, zoom, rotation, flip, jitter, erasing), normalised, made channels-last where
  the recipe says so, and stepped by `Step` (bf16 autocast on CUDA) — as `trainer.train.train`;
* baseline: a `DataLoader` over a per-image `Dataset` that turns each face into a PIL image and
  applies the equivalent torchvision transforms in worker processes, then the same `Step` in
  float32 without channels-last.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch

from fer_core.models import create_model, get_spec
from trainer.data import Split
from trainer.inference import View
from trainer.recipes import FAMILY_RECIPE, Recipe, get_recipe
from trainer.table import render
from trainer.train import (
    Batches,
    Step,
    _augment,
    make_optimizer,
    mix,
    resolve_device,
    training_batch,
    view_of,
)

IMAGES, SIDE, CLASSES = 2048, 48, 7  # FER2013's stored format: grey 48×48, 7 classes
DEFAULT_MODELS = ("vgg-fer-s", "vgg-fer", "zennet-r-sa", "zennet-m-sa", "autofernet")


@dataclass(frozen=True)
class Throughput:
    model: str
    recipe: str
    device: str
    threads: int
    workers: int  # the baseline's DataLoader workers
    batch_size: int
    input: str  # C×H×W fed to the network
    project_img_s: float
    baseline_img_s: float
    speedup: float


def synthetic_data(n: int = IMAGES, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n random uint8 grey SIDE×SIDE images and random labels 0..CLASSES-1."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, SIDE, SIDE), dtype=np.uint8)
    return images, rng.integers(0, CLASSES, n, dtype=np.int64)


def images_per_s(steps: Iterator[int], seconds: float, device: torch.device) -> float:
    """Images per second of `steps` (each item: the images of one training step just taken),
    after 2 warm-up steps, over at least 3 steps and `seconds`."""
    for _ in range(2):
        next(steps)
    _sync(device)
    images, taken, start = 0, 0, time.perf_counter()
    while True:
        images += next(steps)
        taken += 1
        _sync(device)
        elapsed = time.perf_counter() - start
        if taken >= 3 and elapsed >= seconds:
            return images / elapsed


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _model(name: str, device: torch.device, channels_last: bool) -> torch.nn.Module:
    torch.manual_seed(0)  # the same initial weights on both paths
    model = create_model(name).to(device).train()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def project_steps(
    name: str,
    recipe: Recipe,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    device: torch.device,
) -> Iterator[int]:
    """Training steps as `trainer.train.train` takes them, endlessly (a new order per epoch)."""
    view = view_of({"model": name}, recipe)
    data = Batches(Split("synthetic", labels, images), SIDE, view.channels, device)
    augment = _augment(recipe, recipe.train_size or view.size)
    model = _model(name, device, recipe.channels_last)
    step = Step(model, make_optimizer(model, recipe), recipe, device)
    gen = torch.Generator(device).manual_seed(0)
    mix_rng = np.random.default_rng(0)
    while True:
        for batch, idx in data(torch.randperm(len(data)), batch_size):
            x, y, targets = training_batch(
                batch, data.targets[idx].to(device), recipe, view, augment, gen, mix_rng, CLASSES
            )
            step(x, targets)
            yield len(y)


def per_image_transform(recipe: Recipe, view: View, size: int) -> Callable:
    """The usual torchvision pipeline equivalent to the recipe's batch augmentation."""
    from torchvision.transforms import v2

    ops: list = [v2.AutoAugment(v2.AutoAugmentPolicy.IMAGENET)] if recipe.autoaugment else []
    if recipe.rotate:
        ops.append(v2.RandomApply([v2.RandomRotation(recipe.rotate)], p=recipe.rotate_p))
    lo, hi = recipe.zoom
    if (lo, hi) != (1.0, 1.0):  # a view of crop / zoom of the side, at a random place
        if recipe.shift:
            shift = v2.RandomAffine(0, translate=(recipe.shift, recipe.shift))
            ops.append(v2.RandomApply([shift], p=recipe.shift_p))
        area = ((recipe.train_crop / hi) ** 2, min(1.0, (recipe.train_crop / lo) ** 2))
        ops.append(v2.RandomResizedCrop(size, scale=area, ratio=(1.0, 1.0), antialias=True))
    else:  # a random crop shifts by itself
        crop = round(recipe.train_crop * SIDE)
        ops.append(v2.RandomCrop(crop))
        if crop != size:
            ops.append(v2.Resize(size, antialias=True))
    if recipe.flip:
        ops.append(v2.RandomHorizontalFlip())
    if recipe.brightness or recipe.contrast:
        ops.append(v2.ColorJitter(brightness=recipe.brightness, contrast=recipe.contrast))
    k = view.scale / 255.0  # View.normalize: (x · 255 / scale − mean) / std
    ops += [
        v2.ToImage(),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize([m * k for m in view.mean], [s * k for s in view.std]),
    ]
    if recipe.erase_p:
        ops.append(v2.RandomErasing(recipe.erase_p, recipe.erase_area, (0.3, 3.3), "random"))
    return v2.Compose(ops)


class PerImage(torch.utils.data.Dataset):
    """Faces as numpy arrays, each made a PIL image (RGB for 3-channel models) and transformed."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform: Callable, mode: str):
        self.images, self.labels, self.transform, self.mode = images, labels, transform, mode

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        image = Image.fromarray(self.images[i], "L").convert(self.mode)
        return self.transform(image), int(self.labels[i])


def baseline_steps(
    name: str,
    recipe: Recipe,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    device: torch.device,
    workers: int,
) -> Iterator[int]:
    """Training steps fed by a per-image DataLoader, in float32 without channels-last."""
    recipe = recipe.override(amp=False, channels_last=False)
    view = view_of({"model": name}, recipe)
    transform = per_image_transform(recipe, view, recipe.train_size or view.size)
    loader = torch.utils.data.DataLoader(
        PerImage(images, labels, transform, "L" if view.channels == 1 else "RGB"),
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        persistent_workers=workers > 0,
        pin_memory=device.type == "cuda",
    )
    model = _model(name, device, channels_last=False)
    step = Step(model, make_optimizer(model, recipe), recipe, device)
    gen = torch.Generator(device).manual_seed(0)
    mix_rng = np.random.default_rng(0)
    while True:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            step(*mix(x, y, recipe, gen, mix_rng, CLASSES))
            yield len(y)


def throughput(
    name: str,
    batch_size: int = 64,
    seconds: float = 10.0,
    device: str | torch.device = "auto",
    threads: int = 0,
    workers: int = 2,
    recipe: str | None = None,
) -> Throughput:
    """Training images/s of `name` on both paths; `threads` 0 keeps torch's choice."""
    dev = resolve_device(device) if isinstance(device, str) else device
    chosen = get_recipe(recipe or FAMILY_RECIPE[get_spec(name).family])
    chosen = chosen.override(tencrop_train=False)  # one crop per image on both paths
    view = view_of({"model": name}, chosen)
    size = chosen.train_size or view.size
    images, labels = synthetic_data()

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        steps = project_steps(name, chosen, images, labels, batch_size, dev)
        project = images_per_s(steps, seconds, dev)
        steps = baseline_steps(name, chosen, images, labels, batch_size, dev, workers)
        baseline = images_per_s(steps, seconds, dev)
        steps.close()  # ends the DataLoader's workers
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)

    return Throughput(
        model=name,
        recipe=chosen.name,
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
        threads=used_threads,
        workers=workers,
        batch_size=batch_size,
        input=f"{view.channels}×{size}×{size}",
        project_img_s=project,
        baseline_img_s=baseline,
        speedup=project / baseline if baseline > 0 else math.inf,
    )


def format_table(rows: list[Throughput]) -> str:
    return render(
        (
            "model",
            "recipe",
            "input C×H×W",
            "device",
            "threads",
            "workers",
            "batch",
            "project img/s",
            "baseline img/s",
            "speed-up",
        ),
        [
            (
                r.model,
                r.recipe,
                r.input,
                r.device,
                str(r.threads),
                str(r.workers),
                str(r.batch_size),
                f"{r.project_img_s:.1f}",
                f"{r.baseline_img_s:.1f}",
                f"{r.speedup:.2f}×",
            )
            for r in rows
        ],
        align="lllrrrrrrr",
    )

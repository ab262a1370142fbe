"""Training throughput (images/s) of this project's training path, optionally next to a plain
per-image DataLoader baseline of the same model: what `python -m trainer throughput` prints.

Both paths train on the same synthetic data in FER2013's stored shape (random uint8 grey 48×48
faces, random labels), with the model family's recipe (or a named one), one crop per image:

* project: the images live on the device as one uint8 tensor and each batch is augmented there
  (`Augment`: crop, zoom, rotation, flip, jitter, erasing), normalised and stepped by `Step` in
  the run's `Precision` (bf16 autocast and channels-last where the hardware has native bf16) —
  exactly as `trainer.engine.loop.Run` trains;
* baseline (`--baseline`): a `DataLoader` over a per-image `Dataset` that turns each face into a
  PIL image and applies the equivalent torchvision transforms in worker processes, then the same
  `Step` in float32 without channels-last.
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
from trainer.engine.batches import Batches, augment_for, make_batch, mixup
from trainer.engine.loop import resolve_device
from trainer.engine.networks import view_of
from trainer.engine.recipes import FAMILY_RECIPE, Recipe, get_recipe
from trainer.engine.step import Batch, Precision, Step, make_optimizer, soft_targets
from trainer.engine.views import View
from trainer.evaluation.table import render

IMAGES, SIDE, CLASSES = 2048, 48, 7  # FER2013's stored format: grey 48×48, 7 classes
DEFAULT_MODELS = ("vgg-fer-s", "vgg-fer", "zennet-r-sa", "zennet-m-sa", "autofernet")


@dataclass(frozen=True)
class Throughput:
    name: str
    recipe: str
    device: str
    precision: str  # the project path's (`Precision.describe`)
    threads: int
    batch_size: int
    input: str  # C×H×W fed to the network
    images_per_s: float  # the project's training path
    workers: int | None = None  # the baseline's DataLoader workers
    baseline_img_s: float | None = None
    speedup: float | None = None


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


def _model(name: str, device: torch.device, precision: Precision) -> torch.nn.Module:
    torch.manual_seed(0)  # the same initial weights on both paths
    return precision.model(create_model(name).to(device).train())


def project_steps(
    name: str,
    recipe: Recipe,
    images: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    device: torch.device,
    precision: Precision,
) -> Iterator[int]:
    """Training steps as `trainer.engine.loop.Run` takes them, endlessly (a new order per
    epoch)."""
    view = view_of({"model": name}, recipe)
    data = Batches(Split("synthetic", labels, images), SIDE, view.channels, device, CLASSES)
    augment = augment_for(recipe, recipe.train_size or view.size)
    model = _model(name, device, precision)
    step = Step(model, make_optimizer(model, recipe), recipe, device, precision)
    gen = torch.Generator(device).manual_seed(0)
    mix_rng = np.random.default_rng(0)
    while True:
        for images_, index in data(torch.randperm(len(data)), batch_size):
            batch = make_batch(images_, index, data, recipe, view, augment, gen, mix_rng, 0)
            batch.x = precision.input(batch.x)
            step(batch)
            yield len(batch.y)


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
    fp32 = Precision.choose(recipe, device, "fp32")
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
    model = _model(name, device, fp32)
    step = Step(model, make_optimizer(model, recipe), recipe, device, fp32)
    gen = torch.Generator(device).manual_seed(0)
    mix_rng = np.random.default_rng(0)
    while True:
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            targets = soft_targets(y, CLASSES, recipe.label_smoothing)
            if recipe.mixup:
                x, targets = mixup(x, targets, recipe.mixup, gen, mix_rng)
            step(Batch(x, x, y, targets, torch.arange(len(y)), 0))
            yield len(y)


def throughput(
    name: str,
    batch_size: int = 64,
    seconds: float = 10.0,
    device: str | torch.device = "auto",
    threads: int = 0,
    workers: int = 2,
    recipe: str | None = None,
    precision: str = "auto",
    baseline: bool = False,
) -> Throughput:
    """Training images/s of `name` on the project's path (and on the per-image baseline when
    `baseline`); `threads` 0 keeps torch's choice."""
    dev = resolve_device(device) if isinstance(device, str) else device
    chosen = get_recipe(recipe or FAMILY_RECIPE[get_spec(name).family])
    chosen = chosen.override(tencrop_train=False)  # one crop per image on both paths
    how = Precision.choose(chosen, dev, precision, create_model(name))
    view = view_of({"model": name}, chosen)
    size = chosen.train_size or view.size
    images, labels = synthetic_data()

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        steps = project_steps(name, chosen, images, labels, batch_size, dev, how)
        project = images_per_s(steps, seconds, dev)
        base = None
        if baseline:
            steps = baseline_steps(name, chosen, images, labels, batch_size, dev, workers)
            base = images_per_s(steps, seconds, dev)
            steps.close()  # ends the DataLoader's workers
        used_threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(previous_threads)

    return Throughput(
        name=name,
        recipe=chosen.name,
        device=torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type,
        precision=how.describe(),
        threads=used_threads,
        batch_size=batch_size,
        input=f"{view.channels}×{size}×{size}",
        images_per_s=project,
        workers=workers if baseline else None,
        baseline_img_s=base,
        speedup=None if base is None else project / base if base > 0 else math.inf,
    )


def format_table(rows: list[Throughput]) -> str:
    optional = lambda v, fmt: "-" if v is None else format(v, fmt)  # noqa: E731
    return render(
        ("model", "recipe", "input C×H×W", "device", "precision", "threads", "batch",
         "images/s", "baseline img/s", "speed-up"),
        [
            (r.name, r.recipe, r.input, r.device, r.precision, str(r.threads),
             str(r.batch_size), f"{r.images_per_s:.1f}", optional(r.baseline_img_s, ".1f"),
             optional(r.speedup, ".2f"))
            for r in rows
        ],
        align="llllllrrrr",
    )  # fmt: skip

"""`python -m trainer train`: fit a registry model (or a genotype / structure file) to a dataset
with a recipe, validating on the dataset's validation split after every epoch.

The run directory holds `last.pt` (every epoch), `best.pt` (best validation top-1),
`snapshot-85.pt` / `snapshot-90.pt` (the first epoch whose training accuracy reaches 85 % / 90 %,
the starting points of relabel training), `metrics.csv` and `curves.png`. `resume=True` continues
from `last.pt` exactly as if the run had not stopped: batch order and augmentation are drawn from
generators seeded by (seed, epoch) and the global RNG states are restored.
"""

from __future__ import annotations

import csv
import io
import math
import random
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer_core.models import get_spec
from trainer import checkpoint
from trainer.augment import Augment, ten_crop
from trainer.data import Dataset, Split, read_dataset
from trainer.inference import View, as_batch_tensor, logits_for, torch_forward
from trainer.metrics import Metrics, compute
from trainer.recipes import Recipe
from trainer.relabel import Relabeler, RelabelRule

SNAPSHOTS = (85, 90)
STREAM_ABOVE_BYTES = 4 << 30  # path datasets larger than this are decoded per batch


@dataclass
class TrainConfig:
    model: str  # registry name, or a genotype / structure-string file
    dataset: str
    data: str
    out: str
    recipe: Recipe
    seed: int = 0
    device: str = "auto"
    skip_bad: bool = False
    command: str = ""
    init: str | None = None  # start from this checkpoint's weights (fine-tuning)
    relabel: RelabelRule | None = None  # relabel training (trainer.relabel)
    model_options: dict[str, Any] = field(default_factory=dict)  # builder options (layers=8)


@dataclass
class EpochRow:
    epoch: int
    lr: float
    train_loss: float
    train_top1: float
    val_loss: float
    val_top1: float
    val_macro_f1: float
    images_per_s: float
    seconds: float


@dataclass
class TrainResult:
    out: Path
    epochs: int
    best_epoch: int
    best_val_top1: float
    history: list[EpochRow] = field(default_factory=list)


# ------------------------------------------------------------------------------ architecture


def describe_architecture(model: str, num_classes: int) -> dict[str, Any]:
    """The checkpoint's `arch`: registry name plus overrides (the genotype or structure text
    when `model` is a file), enough to rebuild the network with `checkpoint.build_model`.
    A checkpoint (`.pt`) or a package with torch weights stands for its own architecture, with
    `num_classes` replaced."""
    from fer_core.models import list_models
    from fer_core.models.genotype import Genotype
    from fer_core.models.structure import Structure

    if model in list_models():
        return {"model": model, "overrides": {"num_classes": num_classes}}
    path = Path(model)
    if path.suffix in (".pt", ".pth") or path.is_dir() or path.name == "card.json":
        # fine-tuning: the same network, sized for the new label set
        arch = checkpoint.load_weights(path)["arch"]
        return {
            "model": arch["model"],
            "overrides": {**arch.get("overrides", {}), "num_classes": num_classes},
        }
    if not path.is_file():
        raise ValueError(
            f"--model {model!r} is neither a registered model ({', '.join(list_models())}) "
            "nor a genotype / structure-string file nor a checkpoint (.pt) or model package"
        )
    text = path.read_text()
    if "normal" in text or "Genotype" in text:
        genotype = Genotype.from_file(path)
        return {
            "model": "autofernet",
            "overrides": {"num_classes": num_classes, "genotype": genotype.to_text()},
        }
    structure = Structure.from_file(path)  # trained with the input channels it was searched for
    overrides = {"structure": structure.to_text(), "in_chans": structure.blocks[0].c_in}
    return {"model": "zennet-m-sa", "overrides": {"num_classes": num_classes, **overrides}}


def view_of(arch: dict[str, Any], recipe: Recipe) -> View:
    """The evaluation view: the recipe's size and crop, the model's normalisation; a network
    built with other input channels than its registry entry (a grey searched ZenNet) gets the
    channel mean of that normalisation."""
    spec = get_spec(arch["model"])
    channels = arch.get("overrides", {}).get("in_chans", spec.channels)
    mean, std = tuple(spec.mean), tuple(spec.std)
    if channels != spec.channels:
        mean, std = (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels
    return View(
        size=recipe.eval_size or spec.input_size[0],
        crop=recipe.eval_crop,
        channels=channels,
        scale=spec.scale,
        mean=mean,
        std=std,
        tta=recipe.eval_tta,
    )


def init_from(model: nn.Module, path: str | Path, labels: list[str]) -> list[str]:
    """Load a checkpoint's (or a package's torch) weights for fine-tuning. The output layer's
    rows are matched by label name, so a FER2013 model (with neutral) can start a CK+ one (with
    contempt): shared classes keep their weights, new ones keep their fresh init. Returns what
    was not loaded."""
    from trainer.data.labels import canonical

    state = checkpoint.load_weights(path)
    old_labels = [canonical(n) for n in state["labels"]]
    rows = [old_labels.index(canonical(n)) if canonical(n) in old_labels else None for n in labels]
    own = model.state_dict()
    fresh = []
    for key, value in own.items():
        old = state["model"].get(key)
        if (
            old is not None
            and old.shape == value.shape
            and (
                value.ndim == 0 or value.shape[0] != len(labels) or rows == list(range(len(labels)))
            )
        ):
            own[key] = old
        elif (
            old is not None and old.shape[1:] == value.shape[1:] and old.shape[0] == len(old_labels)
        ):
            for new_row, old_row in enumerate(rows):  # the output layer, row by label
                if old_row is not None:
                    own[key][new_row] = old[old_row]
            fresh.extend(f"{key}[{labels[i]}]" for i, r in enumerate(rows) if r is None)
        else:
            fresh.append(key)
    model.load_state_dict(own)
    return fresh


# ------------------------------------------------------------------------------ data on device


class Batches:
    """A split's pixels for training: one uint8 tensor on the device when it fits (or when
    `stream` is off, as for validation splits), else decoded per batch by DataLoader workers.
    Either way batches come out as uint8 N×C×S×S."""

    def __init__(
        self, split: Split, side: int, channels: int, device: torch.device, stream: bool = True
    ):
        self.targets = torch.from_numpy(split.targets)
        self.split, self.side, self.channels = split, side, channels
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


# ------------------------------------------------------------------------------ optimisation


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if recipe.decay_norm_and_bias or p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov
        )
    if recipe.optimizer in ("adam", "sam-adam"):
        return torch.optim.Adam(groups, lr=recipe.lr)
    raise ValueError(f"unknown optimizer {recipe.optimizer!r}; use sgd, adam or sam-adam")


@dataclass
class Plateau:
    """ReduceLROnPlateau on validation top-1 (mode max), as data so it lives in the checkpoint."""

    scale: float = 1.0
    best: float = -1.0
    bad_epochs: int = 0

    def update(self, value: float, factor: float, patience: int) -> None:
        if value > self.best:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > patience:
            self.scale *= factor
            self.bad_epochs = 0


def lr_at(recipe: Recipe, progress: float, plateau: Plateau) -> float:
    """Learning rate at `progress` epochs into the run (fractional: updated every step)."""
    if recipe.warmup_epochs and progress < recipe.warmup_epochs:
        return recipe.lr * progress / recipe.warmup_epochs
    if recipe.schedule == "cosine":
        span = max(recipe.epochs - recipe.warmup_epochs, 1e-9)
        t = min((progress - recipe.warmup_epochs) / span, 1.0)
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * t))
    if recipe.schedule == "exponential":
        return recipe.lr * recipe.gamma ** math.floor(progress)
    if recipe.schedule == "plateau":
        return recipe.lr * plateau.scale
    if recipe.schedule == "constant":
        return recipe.lr
    raise ValueError(f"unknown schedule {recipe.schedule!r}")


def soft_targets(y: torch.Tensor, classes: int, smoothing: float) -> torch.Tensor:
    t = F.one_hot(y, classes).float()
    return t * (1 - smoothing) + smoothing / classes


Targets = torch.Tensor | Callable[[torch.Tensor], torch.Tensor]


class Step:
    """One optimisation step on a batch: forward (with the auxiliary head where the network has
    one), loss against soft targets, backward, clipping, and the optimiser (SAM: twice).
    Targets may be a function of the forward pass's (detached) logits, as relabel training's
    are; whatever it returns serves both losses and both SAM passes."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        recipe: Recipe,
        device: torch.device,
    ):
        self.model, self.optimizer, self.recipe = model, optimizer, recipe
        self.autocast = recipe.amp and device.type == "cuda"
        self.device_type = device.type

    def loss(
        self, x: torch.Tensor, targets: Targets
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(loss, detached float logits, the targets used)."""
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.autocast):
            out = self.model(x)
            logits, aux = out if isinstance(out, tuple) else (out, None)
            if callable(targets):
                targets = targets(logits.detach().float())
            loss = F.cross_entropy(logits.float(), targets)
            if aux is not None and self.recipe.aux_weight:
                loss = loss + self.recipe.aux_weight * F.cross_entropy(aux.float(), targets)
        return loss, logits.detach().float(), targets

    def __call__(self, x: torch.Tensor, targets: Targets) -> tuple[float, torch.Tensor]:
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits, targets = self.loss(x, targets)
        loss.backward()
        if self.recipe.optimizer == "sam-adam":
            # ascend to the worst point within radius ρ, take the gradient there, come back
            grads = [p.grad for p in params if p.grad is not None]
            norm = torch.norm(torch.stack([g.norm(2) for g in grads]), 2) + 1e-12
            moved = []
            with torch.no_grad():
                for p in params:
                    if p.grad is not None:
                        e = p.grad * (self.recipe.sam_rho / norm)
                        p.add_(e)
                        moved.append((p, e))
            self.optimizer.zero_grad(set_to_none=True)
            self.loss(x, targets)[0].backward()
            with torch.no_grad():
                for p, e in moved:
                    p.sub_(e)
        if self.recipe.grad_clip:
            nn.utils.clip_grad_norm_(params, self.recipe.grad_clip)
        self.optimizer.step()
        return float(loss.detach()), logits


# ------------------------------------------------------------------------------ the run


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, for its checkpoint (exact resume)."""
    state = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda, but torch sees no CUDA device")
    return torch.device(device)


def _augment(recipe: Recipe, size: int) -> Augment:
    """The recipe's augmentation settings (fields of the same names) at the training size."""
    shared = {f.name for f in fields(Augment)} - {"size", "crop"}
    return Augment(size=size, crop=recipe.train_crop, **{k: getattr(recipe, k) for k in shared})


def stored_side(split: Split, view: View, train_size: int, recipe: Recipe) -> int:
    """The side at which a path dataset is decoded: enough for the training and the test view."""
    if split.in_memory:
        return split.images.shape[1]
    return max(round(train_size / recipe.train_crop), round(view.size / view.crop))


def evaluate_split(
    model: nn.Module, batches: Batches, view: View, labels, device, channels_last: bool = False
) -> Metrics:
    logits = logits_for(torch_forward(model, channels_last), batches.images, view, device=device)
    targets = batches.targets.numpy()
    loss = (
        float(F.cross_entropy(torch.from_numpy(logits), batches.targets)) if len(targets) else 0.0
    )
    return compute(logits, targets, labels, loss=loss)


def train(config: TrainConfig, resume: bool = False, dataset: Dataset | None = None) -> TrainResult:
    from tqdm import tqdm

    recipe = config.recipe
    out = Path(config.out)
    device = resolve_device(config.device)
    dataset = dataset or read_dataset(config.dataset, config.data, skip_bad=config.skip_bad)
    if not dataset.train or not dataset.val:
        raise ValueError(f"dataset {dataset.name} has no train/validation splits to train on")
    labels = list(dataset.labels)

    state: dict[str, Any] | None = None
    if resume:
        state = checkpoint.load(out / "last.pt")
        arch, view = state["arch"], View(**state["view"])
        recipe = Recipe.from_dict(state["recipe"])
        if state["labels"] != labels:
            raise ValueError(
                f"{out / 'last.pt'} was trained on labels {state['labels']}, "
                f"but the dataset has {labels}"
            )
        seed = state["seed"]
    else:
        if (out / "last.pt").exists():
            raise FileExistsError(f"{out} already holds a run; use --resume or another --out")
        arch = describe_architecture(config.model, len(labels))
        arch["overrides"].update(config.model_options)
        view = view_of(arch, recipe)
        seed = config.seed
    relabeler = None
    if state is not None and state.get("relabel"):
        relabeler = Relabeler.from_state(state["relabel"])
    elif config.relabel is not None:
        if recipe.mixup:
            raise ValueError("relabel training needs hard labels: the recipe's mixup must be 0")
        relabeler = Relabeler(config.relabel, labels)

    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    model = checkpoint.build_model(arch).to(device)
    if recipe.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, recipe)
    plateau = Plateau()
    history: list[EpochRow] = []
    start_epoch, best = 0, {"epoch": -1, "top1": -1.0}
    snapshots_taken: list[int] = []
    if state is None and config.init:
        fresh = init_from(model, config.init, labels)
        print(
            f"initialised from {config.init}; fresh: {', '.join(fresh) or 'nothing'}",
            file=sys.stderr,
        )
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        plateau = Plateau(**state["plateau"])
        history = [EpochRow(**row) for row in state["history"]]
        start_epoch, best = state["epoch"] + 1, state["best"]
        snapshots_taken = state["snapshots"]
        set_rng_state(state["rng"])

    train_size = recipe.train_size or view.size
    train_split, val_split = dataset[dataset.train], dataset[dataset.val]
    side = stored_side(train_split, view, train_size, recipe)
    train_data = Batches(train_split, side, view.channels, device)
    val_data = Batches(val_split, side, view.channels, device, stream=False)
    augment = _augment(recipe, train_size)
    classes = len(labels)
    steps_per_epoch = math.ceil(len(train_data) / recipe.batch_size)
    command = config.command or "trainer.train.train() called from Python"
    sample_weights = None
    if recipe.balanced:
        counts = torch.bincount(train_data.targets, minlength=classes).clamp(min=1).float()
        sample_weights = (1.0 / counts)[train_data.targets]

    for epoch in range(start_epoch, recipe.epochs):
        gen_cpu = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        gen_dev = torch.Generator(device).manual_seed(seed * 1_000_003 + epoch)
        mix_rng = np.random.default_rng([seed, epoch])
        if sample_weights is None:
            order = torch.randperm(len(train_data), generator=gen_cpu)
        else:
            order = torch.multinomial(sample_weights, len(train_data), True, generator=gen_cpu)
        if relabeler is not None:
            relabeler.flips.start_epoch()
        if hasattr(model, "drop_path_prob"):
            model.drop_path_prob = recipe.drop_path_at(epoch)
        model.train()
        step = Step(model, optimizer, recipe, device)
        seen = correct = 0
        loss_sum = 0.0
        t0 = time.perf_counter()
        bar = tqdm(
            train_data(order, recipe.batch_size),
            total=steps_per_epoch,
            desc=f"epoch {epoch + 1}/{recipe.epochs}",
            unit="batch",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        for i, (images, idx) in enumerate(bar):
            lr = lr_at(recipe, epoch + i / steps_per_epoch, plateau)
            for g in optimizer.param_groups:
                g["lr"] = lr
            y = train_data.targets[idx].to(device)
            x, y, targets = training_batch(
                images, y, recipe, view, augment, gen_dev, mix_rng, classes
            )
            if relabeler is not None and relabeler.active(epoch):
                targets = relabeler.targets(y, classes, recipe.label_smoothing)
            loss, logits = step(x, targets)
            if relabeler is not None and relabeler.active(epoch):
                y = targets.y  # the batch's accuracy counts against the labels it trained on
            seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
            loss_sum += loss * len(y)
            rate = seen / (time.perf_counter() - t0)
            bar.set_postfix(
                loss=f"{loss_sum / seen:.3f}",
                acc=f"{100 * correct / seen:.1f}%",
                lr=f"{lr:.2e}",
                img_s=f"{rate:.0f}",
            )
        bar.close()
        seconds = time.perf_counter() - t0
        val = evaluate_split(model, val_data, view, labels, device, recipe.channels_last)
        if recipe.schedule == "plateau":
            plateau.update(val.top1, recipe.plateau_factor, recipe.plateau_patience)
        row = EpochRow(
            epoch=epoch + 1,
            lr=lr,
            train_loss=loss_sum / max(seen, 1),
            train_top1=correct / max(seen, 1),
            val_loss=val.loss,
            val_top1=val.top1,
            val_macro_f1=val.macro_f1,
            images_per_s=seen / seconds,
            seconds=seconds,
        )
        history.append(row)
        print(
            f"epoch {epoch + 1}: train {100 * row.train_top1:.2f}%  val {val.summary()}  "
            f"{row.images_per_s:.0f} img/s",
            file=sys.stderr,
            flush=True,
        )

        improved = val.top1 > best["top1"]
        if improved:
            best = {"epoch": epoch + 1, "top1": val.top1}
        ckpt = {
            "arch": arch,
            "labels": labels,
            "view": view.to_dict(),
            "recipe": asdict(recipe),
            "dataset": {
                "name": dataset.name,
                "path": str(config.data),
                "train": dataset.train,
                "val": dataset.val,
            },
            "seed": seed,
            "command": command,
            "init": config.init,
            "epoch": epoch,
            "history": [asdict(r) for r in history],
            "best": best,
            "plateau": asdict(plateau),
            "snapshots": snapshots_taken,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "rng": rng_state(),
            "val_metrics": asdict(val),
            "relabel": None if relabeler is None else relabeler.state(),
        }
        new_snapshots = [
            s for s in SNAPSHOTS if s not in snapshots_taken and row.train_top1 * 100 >= s
        ]
        ckpt["snapshots"] = snapshots_taken = snapshots_taken + new_snapshots
        for s in new_snapshots:
            checkpoint.save(out / f"snapshot-{s}.pt", ckpt)
        if improved:
            checkpoint.save(out / "best.pt", ckpt)
        _write_metrics(out, history)
        if relabeler is not None:
            relabeler.flips.write(out)
            print(f"relabel: {relabeler.flips.summary()}", file=sys.stderr, flush=True)
        checkpoint.save(out / "last.pt", ckpt)  # last: it marks the epoch as done

    return TrainResult(
        out=out,
        epochs=recipe.epochs,
        best_epoch=best["epoch"],
        best_val_top1=best["top1"],
        history=history,
    )


def training_batch(
    images: torch.Tensor,
    y: torch.Tensor,
    recipe: Recipe,
    view: View,
    augment: Augment,
    gen: torch.Generator,
    mix_rng: np.random.Generator,
    classes: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A uint8 batch → (network input, labels, soft targets): augmentation (or the ten crops of
    the VGG recipe, labels repeated), normalisation, label smoothing and mixup."""
    if recipe.tencrop_train:
        x = _ten_crops(images, augment, gen, recipe)
        y = y.repeat(10)
    else:
        x = augment(images, gen)
    x, targets = mix(view.normalize(x), y, recipe, gen, mix_rng, classes)
    if recipe.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y, targets


def mix(
    x: torch.Tensor,
    y: torch.Tensor,
    recipe: Recipe,
    gen: torch.Generator,
    mix_rng: np.random.Generator,
    classes: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Soft targets with label smoothing, and mixup of inputs and targets when the recipe has it."""
    targets = soft_targets(y, classes, recipe.label_smoothing)
    if recipe.mixup:
        lam = float(mix_rng.beta(recipe.mixup, recipe.mixup))
        perm = torch.randperm(len(x), generator=gen, device=x.device)
        x = lam * x + (1 - lam) * x[perm]
        targets = lam * targets + (1 - lam) * targets[perm]
    return x, targets


def _ten_crops(images, augment: Augment, gen, recipe: Recipe) -> torch.Tensor:
    """VGG recipe: augment at the stored side, then feed all ten crops (erasing per crop)."""
    from trainer.augment import erase

    whole = replace(augment, size=images.shape[-1], crop=1.0, erase_p=0.0)
    crops = ten_crop(whole(images, gen), augment.size).flatten(0, 1)
    return erase(crops, recipe.erase_p, recipe.erase_area, gen) if recipe.erase_p else crops


def _write_metrics(out: Path, history: list[EpochRow]) -> None:
    from trainer.checkpoint import atomic_write
    from trainer.plots import training_curves

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(history[0])))
    writer.writeheader()
    writer.writerows(asdict(r) for r in history)
    atomic_write(out / "metrics.csv", lambda tmp: Path(tmp).write_text(buf.getvalue()))
    training_curves(history, out / "curves.png")

"""`python -m trainer train`: fit a network to a dataset with a recipe, validating after every
epoch. A `Run` is set up (fresh, or resumed from `last.pt`), then each epoch is trained,
validated and saved; relabeling, distillation, snapshots and curves plug in as callbacks
(`trainer.engine.callbacks`).

The run folder holds `last.pt` (resumable: optimiser, schedule and RNG state, written last, so it
marks the epoch as done), `best.pt` (best validation top-1, weights only) and `metrics.csv`.
A run stopped at any point continues from `last.pt` exactly as if it had not stopped — batch
order and augmentation are drawn from generators seeded by (seed, epoch) and the global RNG
states are restored — on this machine or on a fresh clone that holds the run folder: the data
is found where `--data` says and checked against the run's fingerprint. Resuming with a larger
`epochs` extends the run (a cosine schedule is stretched to the new length from there on).

Under `torchrun` a run trains on several processes (`trainer.engine.distributed`): each takes its
share of every batch, DDP averages the gradients, rank 0 alone writes the run folder, and the
checkpoint holds the unwrapped network, so a run resumes on any number of processes.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer.data import Dataset, Split, read_dataset
from trainer.engine import checkpoint, distributed
from trainer.engine.batches import Batches, augment_for, make_batch, stored_side
from trainer.engine.callbacks import Callback
from trainer.engine.checkpoint import COMMIT_LIMIT, Checkpoint, DataRecord, EpochRow
from trainer.engine.metrics import Metrics, compute
from trainer.engine.networks import describe_architecture, init_from, view_of
from trainer.engine.recipes import Recipe
from trainer.engine.rundir import claim_run_dir
from trainer.engine.step import Plateau, Precision, Step, lr_at, make_optimizer
from trainer.engine.views import View, logits_for, torch_forward
from trainer.files import atomic_write, interrupts_deferred, progress_bar
from trainer.provenance import collect


@dataclass
class TrainConfig:
    model: str  # registry name, genotype / structure-string file, checkpoint or package
    dataset: str
    data: str
    out: str
    recipe: Recipe | None  # None when resuming: the run's own (with `epochs` if given)
    seed: int = 0
    device: str = "auto"
    precision: str = "auto"  # auto | bf16 | fp32 (`Precision.choose`)
    skip_bad: bool = False
    command: str = ""
    init: str | None = None  # start from these weights (fine-tuning)
    model_options: dict[str, Any] = field(default_factory=dict)  # builder options (layers=8)
    max_images: int = 0  # train on a seeded subset of this many images (0: all)
    epochs: int | None = None  # resuming: extend the run to this many epochs
    sync_bn: str = "auto"  # several processes: BatchNorm over the global batch (auto | on | off)


@dataclass
class TrainResult:
    out: Path
    epochs: int
    best_epoch: int
    best_val_top1: float
    history: list[EpochRow] = field(default_factory=list)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device here; use --device cpu")
    return torch.device(device)


def fingerprint(dataset: Dataset) -> dict[str, Any]:
    """What identifies the data a run trains on, wherever its files lie."""
    return {
        "labels": list(dataset.labels),
        "train": len(dataset[dataset.train]),
        "val": len(dataset[dataset.val]),
    }


def seeded_subset(dataset: Dataset, max_images: int, seed: int) -> Dataset:
    """The dataset with its training split cut to `max_images` images drawn with `seed`."""
    split = dataset[dataset.train]
    if not max_images or max_images >= len(split):
        return dataset
    pick = np.sort(np.random.default_rng(seed).choice(len(split), max_images, replace=False))
    splits = {**dataset.splits, dataset.train: split.subset(pick)}
    return Dataset(
        **{**{f.name: getattr(dataset, f.name) for f in fields(dataset)}, "splits": splits}
    )


class Run:
    """One training run. `Run(config, callbacks).fit()`."""

    def __init__(
        self,
        config: TrainConfig,
        callbacks: Sequence[Callback] = (),
        resume: bool = False,
        dataset: Dataset | None = None,
    ):
        self.config, self.callbacks = config, list(callbacks)
        self.out = Path(config.out)
        self.world = distributed.current()
        self.device = distributed.device_for(resolve_device(config.device), self.world)
        self.resume, self._dataset = resume, dataset

    @property
    def is_main(self) -> bool:
        """Whether this process writes the run folder (rank 0; the only one, on one process)."""
        return self.world.is_main

    # ------------------------------------------------------------------ setup

    def _setup(self) -> None:
        prior = checkpoint.load(self.out / "last.pt") if self.resume else None
        if prior is not None and not prior.resumable:
            raise ValueError(f"{self.out / 'last.pt'}: holds no optimiser state to resume from")
        self._read_data(prior)
        if prior is not None:
            self._check_resume(prior)
        self._build(prior)
        if prior is not None:
            self._restore(prior)
        self._batches()
        self._distribute(prior)

    def _read_data(self, prior: Checkpoint | None) -> None:
        config = self.config
        self.seed = prior.seed if prior else config.seed
        max_images = prior.data.max_images if prior else config.max_images
        dataset = self._dataset or read_dataset(config.dataset, config.data, config.skip_bad)
        if not dataset.train or not dataset.val:
            raise ValueError(f"dataset {dataset.name} has no train/validation splits to train on")
        self.data_record = DataRecord(
            dataset.name, str(config.data), dataset.train, dataset.val, fingerprint(dataset),
            max_images,
        )  # fmt: skip
        self.dataset = seeded_subset(dataset, max_images, self.seed)
        self.labels = list(dataset.labels)

    def _build(self, prior: Checkpoint | None) -> None:
        """The network, its view and recipe, the precision and the optimiser; fresh weights
        (or `init`'s) seeded by the run's seed."""
        config = self.config
        if prior is not None:
            self.arch, self.view = prior.arch, prior.view
            self.recipe = prior.recipe.override(epochs=config.epochs or prior.recipe.epochs)
        else:
            self.arch = describe_architecture(config.model, len(self.labels))
            self.arch["overrides"].update(config.model_options)
            self.recipe = config.recipe
            self.view = view_of(self.arch, self.recipe)
        torch.manual_seed(self.seed)
        np.random.seed(self.seed)
        random.seed(self.seed)
        model = checkpoint.build_model(self.arch).to(self.device)
        self.precision = Precision.choose(self.recipe, self.device, config.precision, model)
        self.model = self.precision.model(model)
        self.synced_bn, self.unused = False, []
        if self.world.distributed:
            self.batch = distributed.per_process_batch(self.recipe.batch_size, self.world)
            side = self.recipe.train_size or self.view.size
            example = torch.zeros(2, self.view.channels, side, side, device=self.device)
            aux_used = bool(self.recipe.aux_weight)
            self.unused = distributed.unused_parameters(self.model, example, aux_used)
            self.synced_bn = distributed.wants_sync(config.sync_bn, self.batch, self.world)
            if self.synced_bn:
                self.model = distributed.sync_batchnorm(self.model, self.device)
        else:
            self.batch = self.recipe.batch_size
        self.optimizer = make_optimizer(self.model, self.recipe)
        self.plateau = Plateau()
        self.history: list[EpochRow] = []
        self.start_epoch, self.best = 0, {"epoch": -1, "top1": -1.0}
        self.provenance = list(prior.provenance) if prior else []
        self.init = prior.init if prior else config.init
        python = "trainer.engine.loop.train() called from Python"
        self.command = prior.command if prior else config.command or python
        if prior is None and config.init:
            fresh = init_from(self.model, config.init, self.labels)
            if self.is_main:
                print(f"initialised from {config.init}; fresh: {', '.join(fresh) or 'nothing'}",
                      file=sys.stderr)  # fmt: skip

    def _restore(self, prior: Checkpoint) -> None:
        """Where the run stopped: weights, optimiser, schedule, history, callbacks, RNGs."""
        self.model.load_state_dict(prior.model)
        self.optimizer.load_state_dict(prior.optimizer)
        self.plateau = Plateau(**prior.schedule)
        self.history = list(prior.history)
        self.start_epoch, self.best = prior.epoch + 1, dict(prior.best)
        for cb in self.callbacks:
            if cb.key:
                cb.load_state_dict(prior.callbacks[cb.key])
        checkpoint.set_rng_state(prior.rng)

    def _batches(self) -> None:
        train_size = self.recipe.train_size or self.view.size
        train_split = self.dataset[self.dataset.train]
        side = stored_side(train_split, self.view, train_size, self.recipe)
        classes, channels = len(self.labels), self.view.channels
        self.train_data = Batches(train_split, side, channels, self.device, classes)
        self.val_data = Batches(
            self.dataset[self.dataset.val], side, channels, self.device, classes, stream=False
        )
        self.augment = augment_for(self.recipe, train_size)
        self.sample_weights = None
        if self.recipe.balanced:
            counts = torch.bincount(self.train_data.targets, minlength=classes).clamp(min=1)
            self.sample_weights = (1.0 / counts.float())[self.train_data.targets]
        self.sampler = distributed.Sampler(self.seed, self.world)

    def read_as_validation(self, split: Split) -> Batches:
        """Another split (a test split, a training sample) held and read as validation is."""
        v = self.val_data
        return Batches(split, v.side, v.channels, self.device, v.classes, stream=False)

    def _distribute(self, prior: Checkpoint | None) -> None:
        """Several processes: the network as DDP trains it (`self.net`; `self.model` stays the
        network itself, which is validated and saved), and a note where a resumed run changed
        its number of processes (its batches are drawn anew from the same orders, its global
        batch and schedule unchanged)."""
        self.net = self.model
        trained_on = (prior.sampler or {}).get("world_size", 1) if prior else self.world.size
        if trained_on != self.world.size and self.is_main:
            print(
                f"resuming a run trained on {trained_on} process(es) on {self.world.size}: "
                f"the global batch stays {self.recipe.batch_size}, each process takes "
                f"{self.batch} a step",
                file=sys.stderr,
            )
        if self.world.distributed:
            self.net = distributed.wrap(self.model, self.device, bool(self.unused))

    def _check_resume(self, prior: Checkpoint) -> None:
        """A resume continues the run it finds, on the same data, with the same methods; the
        only change it takes is a larger `epochs`. Anything else given is refused."""
        where = self.out / "last.pt"
        if prior.labels != self.labels:
            raise ValueError(
                f"{where} was trained on labels {prior.labels}, but the dataset has {self.labels}"
            )
        if prior.data is not None and prior.data.name != self.data_record.name:
            raise ValueError(
                f"{where}: trained on {prior.data.name}, resumed on {self.data_record.name}; "
                "give the run's --dataset and --add-data again"
            )
        if prior.data is not None and prior.data.fingerprint != self.data_record.fingerprint:
            raise ValueError(
                f"{where}: trained on {prior.data.name} {prior.data.fingerprint}, but --data "
                f"{self.config.data} holds {self.data_record.fingerprint}"
            )
        if self.config.recipe is not None:
            stored, given = asdict(prior.recipe), asdict(self.config.recipe)
            changed = sorted(k for k in given if k != "epochs" and given[k] != stored[k])
            if changed:
                raise ValueError(
                    f"resuming {where}: the recipe's {', '.join(changed)} differ from the run's; "
                    "a resume takes only a larger --epochs"
                )
        # fewer epochs than the run's own would end it early, with its schedule cut (the
        # cosine never reaching its end), and said "epochs 2–1 of 1"
        planned = max(prior.epoch + 1, prior.recipe.epochs if prior.recipe else 0)
        if self.config.epochs is not None and self.config.epochs < planned:
            raise ValueError(
                f"--epochs {self.config.epochs}: {where} is a run of {planned} epochs "
                f"({prior.epoch + 1} trained); resume without --epochs to finish it, or give "
                f"more than {planned} to extend it"
            )
        keys = sorted(cb.key for cb in self.callbacks if cb.key)
        if keys != sorted(prior.callbacks):
            raise ValueError(
                f"resuming {where}: the run was trained with [{', '.join(sorted(prior.callbacks))}]"
                f" but is resumed with [{', '.join(keys)}]"
            )

    # ------------------------------------------------------------------ the run

    def fit(self) -> TrainResult:
        self.world = distributed.start(self.device)
        # rank 0 alone holds the run folder (its lock) and writes in it
        claim = claim_run_dir(self.out, resume=self.resume) if self.is_main else None
        with claim or contextlib.nullcontext():
            self._setup()
            for cb in self.callbacks:
                cb.on_fit_start(self)  # may refuse the run: before it is announced
            session = {"from_epoch": self.start_epoch + 1, **collect()}
            if self.world.distributed:
                session["processes"] = self.world.size
            self.provenance.append(session)
            if self.is_main:
                print(
                    f"training {self.arch['model']} on {self.data_record.name}: "
                    f"{len(self.train_data)} images, {self.precision.describe()}, "
                    f"epochs {self.start_epoch + 1}–{self.recipe.epochs}{self._describe_world()}",
                    file=sys.stderr,
                )
            for epoch in range(self.start_epoch, self.recipe.epochs):
                row, val = self.epoch(epoch)
                self.save(epoch, row, val)
        return TrainResult(
            self.out, self.recipe.epochs, int(self.best["epoch"]), self.best["top1"], self.history
        )

    def _describe_world(self) -> str:
        if not self.world.distributed:
            return ""
        norm = "synced over the global batch" if self.synced_bn else "per process"
        return (
            f"; {self.world.describe()}, {self.batch} images each a step "
            f"(global batch {self.recipe.batch_size}), BatchNorm statistics {norm}"
        )

    def epoch(self, epoch: int) -> tuple[EpochRow, Metrics]:
        recipe, device, rank = self.recipe, self.device, self.world.rank
        seed = distributed.stream_seed(self.seed, epoch, rank)  # one process: (seed, epoch)'s
        gen_dev = torch.Generator(device).manual_seed(seed)
        mix_rng = np.random.default_rng([self.seed, epoch, *([rank] if rank else [])])
        if self.world.distributed:
            # dropout draws from the global generator: its own in each process, and (with the
            # orders) a function of (seed, epoch), so a resumed run draws as the run it continues
            torch.manual_seed(distributed.stream_seed(self.seed, epoch, rank + self.world.size))
        order = self.sampler.order(epoch, len(self.train_data), self.sample_weights)
        for cb in self.callbacks:
            cb.on_epoch_start(self, epoch)
        if hasattr(self.model, "drop_path_prob"):
            self.model.drop_path_prob = recipe.drop_path_at(epoch)
        self.net.train()
        step = Step(self.net, self.optimizer, recipe, device, self.precision, self.callbacks)
        steps = math.ceil(len(order) / self.batch)
        seen = correct = 0
        loss_sum, lr = 0.0, recipe.lr
        t0 = time.perf_counter()
        bar = progress_bar(
            self.train_data(order, self.batch),
            total=steps,
            unit="batch",
            desc=f"epoch {epoch + 1}/{recipe.epochs}",
            dynamic_ncols=True,
            file=sys.stderr,
            disable=not self.is_main,  # several processes: rank 0's bar shows its share
        )
        for i, (images, index) in enumerate(bar):
            lr = lr_at(recipe, epoch + i / steps, self.plateau)
            for g in self.optimizer.param_groups:
                g["lr"] = lr
            batch = make_batch(
                images,
                index,
                self.train_data,
                recipe,
                self.view,
                self.augment,
                gen_dev,
                mix_rng,
                epoch,
            )
            batch.x = self.precision.input(batch.x)
            for cb in self.callbacks:
                cb.on_batch(self, batch)
            loss, logits = step(batch)
            seen += len(batch.y)
            correct += int((logits.argmax(1) == batch.y).sum())
            loss_sum += loss * len(batch.y)
            bar.set_postfix(
                loss=f"{loss_sum / seen:.3f}",
                acc=f"{100 * correct / seen:.1f}%",
                lr=f"{lr:.2e}",
                img_s=f"{seen / (time.perf_counter() - t0):.0f}",
            )
        bar.close()
        seconds = distributed.all_max(time.perf_counter() - t0)
        seen, correct, loss_sum = distributed.all_sum(seen, correct, loss_sum)
        val = self.validate()
        if recipe.schedule == "plateau":
            self.plateau.update(val.top1, recipe.plateau_factor, recipe.plateau_patience)
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
        self.history.append(row)
        if self.is_main:
            print(
                f"epoch {epoch + 1}: train {100 * row.train_top1:.2f}%  val {val.summary()}  "
                f"{row.images_per_s:.0f} img/s",
                file=sys.stderr,
                flush=True,
            )
        return row, val

    def validate(self) -> Metrics:
        distributed.broadcast_buffers(self.model)  # every process validates rank 0's network
        return evaluate_split(
            self.model,
            self.val_data,
            self.view,
            self.labels,
            self.device,
            self.precision,
        )

    def save(self, epoch: int, row: EpochRow, val: Metrics) -> None:
        # several processes: when one fails, torchrun's agent stops the others (SIGTERM, then
        # SIGKILL 30 s later); rank 0 finishes the epoch it is saving first
        with interrupts_deferred() if self.world.distributed else contextlib.nullcontext():
            self._save(epoch, row, val)

    def _save(self, epoch: int, row: EpochRow, val: Metrics) -> None:
        improved = val.top1 > self.best["top1"]
        if improved:
            self.best = {"epoch": epoch + 1, "top1": val.top1}
        ckpt = Checkpoint(
            arch=self.arch,
            labels=self.labels,
            view=self.view,
            model=self.model.state_dict(),
            recipe=self.recipe,
            data=self.data_record,
            seed=self.seed,
            command=self.command,
            init=self.init,
            precision=self.precision.name,
            epoch=epoch,
            history=list(self.history),
            best=dict(self.best),
            val_metrics=asdict(val),
            schedule=asdict(self.plateau),
            callbacks={cb.key: cb.state_dict() for cb in self.callbacks if cb.key},
            provenance=self.provenance,
            optimizer=self.optimizer.state_dict(),
            rng=checkpoint.rng_state(),
            sampler={**self.sampler.state_dict(), "epoch": epoch + 1},
        )
        # every process keeps the callbacks' state; rank 0 alone writes
        if improved and self.is_main:
            checkpoint.save(self.out / "best.pt", ckpt.weights_only())
        if self.is_main:
            write_metrics(self.out / "metrics.csv", self.history)
        for cb in self.callbacks:
            cb.on_epoch_end(self, row, ckpt)
        if not self.is_main:
            return
        last = checkpoint.save(self.out / "last.pt", ckpt)  # last: it marks the epoch as done
        if last.stat().st_size > COMMIT_LIMIT:
            print(
                f"note: {last} is {last.stat().st_size / 2**20:.0f} MiB, over the 50 MiB a "
                "repository file may hold",
                file=sys.stderr,
            )


def train(
    config: TrainConfig,
    callbacks: Sequence[Callback] = (),
    resume: bool = False,
    dataset: Dataset | None = None,
) -> TrainResult:
    return Run(config, callbacks, resume, dataset).fit()


def evaluate_split(
    model: nn.Module,
    batches: Batches,
    view: View,
    labels,
    device,
    precision: Precision | None = None,
) -> Metrics:
    """Metrics of `model` on a split, in the run's `precision` (fp32 without one): a run that
    trains in bf16 validates in bf16, several times faster on a CPU than fp32, while what a
    package reports is measured by `evaluate` on its exported files. On several processes each
    scores its block of the split and the logits are gathered, so every process returns the
    same figures."""
    n = len(batches.targets)
    part = distributed.shard(n)
    if precision is None:
        forward = torch_forward(model)
    else:
        forward = torch_forward(model, precision.channels_last, precision.dtype)
    logits = logits_for(forward, batches.images[part], view, device=device)
    if distributed.current().distributed:
        logits = distributed.gather_rows(logits.reshape(-1, len(labels)), n)
    targets = batches.targets.numpy()
    loss = (
        float(F.cross_entropy(torch.from_numpy(logits), batches.targets)) if len(targets) else 0.0
    )
    return compute(logits, targets, labels, loss=loss)


def write_metrics(path: Path, history: list[EpochRow]) -> Path:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(asdict(history[0])))
    writer.writeheader()
    writer.writerows(asdict(r) for r in history)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))

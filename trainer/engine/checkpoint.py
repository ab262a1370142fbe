"""The trainer's checkpoint: a typed, versioned record of a run at the end of an epoch.

It holds everything needed to rebuild the network without code changes (registry name plus
genotype or structure text), its labels and input view, the weights, and — in `last.pt` — the
optimiser, schedule and RNG state and every callback's state, so a run continues exactly where
it stopped, on this machine or on a fresh clone of the repository. Files hold tensors and plain
Python values only and are read with `torch.load(weights_only=True)`: a checkpoint cannot run
code. Written atomically (temp file in the same folder, then rename).

`best.pt` and the snapshots hold the same record without the optimiser and RNG state (`resumable`
False): they start fine-tunes and exports, not resumes, and stay half the size.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fer_core.view import InputView
from trainer.engine.recipes import Recipe
from trainer.files import save_torch

FORMAT = "fer-trainer-checkpoint/2"
OLD_FORMATS = {"fer-trainer-checkpoint/1"}  # pickled objects: unsafe to load
COMMIT_LIMIT = 50 * 2**20  # a file a run folder can commit to the repository


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
class DataRecord:
    """Which data a run trains on. `fingerprint` (labels and split sizes) is checked on resume,
    so a run continues on the same data wherever the files now lie."""

    name: str
    path: str
    train: str
    val: str
    fingerprint: dict[str, Any] = field(default_factory=dict)
    max_images: int = 0  # a seeded subset of the training split (0: all of it)


@dataclass
class Checkpoint:
    arch: dict[str, Any]  # {"model": registry name, "overrides": builder options}
    labels: list[str]
    view: InputView
    model: dict[str, torch.Tensor]
    recipe: Recipe | None = None  # None for weights from a package (see `train_views`)
    train_views: dict[str, Any] | None = None  # the recipe's view fields, all a package keeps
    data: DataRecord | None = None
    seed: int = 0
    command: str = ""
    init: str | None = None
    precision: str = "fp32"  # what the run trained in: fp32 | bf16
    epoch: int = -1  # the last finished epoch, 0-based
    history: list[EpochRow] = field(default_factory=list)
    best: dict[str, float] = field(default_factory=lambda: {"epoch": -1, "top1": -1.0})
    val_metrics: dict[str, Any] = field(default_factory=dict)
    schedule: dict[str, Any] = field(default_factory=dict)  # the plateau schedule's state
    callbacks: dict[str, dict[str, Any]] = field(default_factory=dict)  # by callback key
    # one entry per session of the run: `from_epoch` (1-based) and `trainer.provenance.collect()`
    provenance: list[dict[str, Any]] = field(default_factory=list)
    # the sampler's state: seed, the number of processes the run trained on (`world_size`) and
    # the next epoch; a resume draws that epoch's order from (seed, epoch) on any number
    sampler: dict[str, Any] = field(default_factory=dict)
    optimizer: dict[str, Any] | None = None  # with `rng`: only in resumable checkpoints
    rng: dict[str, Any] | None = None
    format: str = FORMAT

    @property
    def resumable(self) -> bool:
        return self.optimizer is not None and self.rng is not None

    @property
    def views(self) -> dict[str, Any] | None:
        """The training and evaluation view fields of the recipe (what fine-tunes keep)."""
        from trainer.engine.recipes import VIEW_FIELDS

        if self.recipe is not None:
            return {f: getattr(self.recipe, f) for f in (*VIEW_FIELDS, "tencrop_train")}
        return self.train_views

    def weights_only(self) -> Checkpoint:
        """The same record without what only a resume needs."""
        return replace(self, optimizer=None, rng=None)

    # ------------------------------------------------------------------ plain form

    def to_plain(self) -> dict[str, Any]:
        """Tensors and plain Python values only (what `weights_only=True` reads back)."""
        plain = {f.name: getattr(self, f.name) for f in fields(self)}
        plain["view"] = self.view.to_dict()
        plain["recipe"] = None if self.recipe is None else _plain(asdict(self.recipe))
        plain["data"] = None if self.data is None else asdict(self.data)
        plain["history"] = [asdict(r) for r in self.history]
        return plain

    @classmethod
    def from_plain(cls, data: dict[str, Any], where: str) -> Checkpoint:
        fmt = data.get("format") if isinstance(data, dict) else None
        if fmt in OLD_FORMATS:
            raise ValueError(
                f"{where}: a {fmt} checkpoint (pickled objects, unsafe to load); export it with "
                "the trainer that wrote it, or retrain"
            )
        if fmt != FORMAT:
            raise ValueError(f"{where}: not a trainer checkpoint (expected format {FORMAT})")
        known = {f.name for f in fields(cls)}
        missing = {"arch", "labels", "view", "model"} - set(data)
        if missing:
            raise ValueError(f"{where}: field(s) {', '.join(sorted(missing))} missing")
        values = {k: v for k, v in data.items() if k in known}
        values["view"] = InputView.from_dict(data["view"])
        values["recipe"] = None if data.get("recipe") is None else Recipe.from_dict(data["recipe"])
        values["data"] = None if data.get("data") is None else DataRecord(**data["data"])
        values["history"] = [EpochRow(**r) for r in data.get("history", [])]
        return cls(**values)


def _plain(value: Any) -> Any:
    """Tuples as lists: torch's safe loader reads both, JSON-like data round-trips as lists."""
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save(path: str | Path, ckpt: Checkpoint) -> Path:
    return save_torch(ckpt.to_plain(), path)


def load(path: str | Path) -> Checkpoint:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # unpickling refuses anything but tensors and plain values
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable trainer checkpoint ({first})") from None
    return Checkpoint.from_plain(data, str(path))


# ---------------------------------------------------------------------- RNG state


def rng_state() -> dict[str, Any]:
    """Every RNG a run draws from, as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": [version, list(internal), gauss_next],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        # a run resumed on a machine with fewer GPUs than the one that saved it (every process
        # of a multi-GPU run saves the state of each device it sees)
        for i, cuda in enumerate(state["cuda"][: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(cuda, i)


# ---------------------------------------------------------------------- networks


def build_model(arch: dict[str, Any]) -> nn.Module:
    """The network a checkpoint's `arch` describes, with fresh weights."""
    from fer_core.models import create_model

    overrides = arch.get("overrides", {})
    try:
        return create_model(arch["model"], **overrides)
    except TypeError as err:  # an option the builder does not take
        raise ValueError(f"model {arch['model']!r} with options {overrides}: {err}") from None


def load_weights(source: str | Path) -> Checkpoint:
    """A trained network from a trainer checkpoint (.pt), or from a model package exported with
    `--torch-weights` (what survives of a run once its folder is gone): architecture, labels,
    view, the training views, and the weights."""
    path = Path(source)
    if path.suffix in (".pt", ".pth"):
        return load(path)
    from fer_core.classify import package_network
    from fer_core.zoo import load_package

    package = load_package(path)
    card = package.card
    return Checkpoint(
        arch=card.architecture,
        labels=list(card.labels),
        view=InputView.from_card(card),
        model=package_network(package).state_dict(),
        train_views=card.train.get("views"),  # absent from packages exported before it was kept
    )


def load_model(source: str | Path, needed_for: str = "") -> tuple[nn.Module, Checkpoint]:
    """(network in eval mode with the trained weights, `load_weights(source)`). `needed_for`
    says, in a refusal, what wants the torch weights."""
    try:
        ckpt = load_weights(source)
    except ValueError as e:
        if not needed_for:
            raise
        raise ValueError(f"{e} ({needed_for})") from None
    model = build_model(ckpt.arch)
    model.load_state_dict(ckpt.model)
    return model.eval(), ckpt

"""SGAS (sequential greedy architecture search), the cell search Auto-FERNet used.

A DARTS supernet (`trainer.search.supernet`) of 14-edge normal and reduction cells over the 11
Auto-FERNet primitives is trained on one half of the data (weights: SGD, cosine lr, clip 5)
while the other half trains the architecture weights α (Adam, first order); the two updates
alternate every step. After `warmup_epochs`, and then every `decision_freq` epochs, each cell
greedily decides one edge: the undecided edge with the best score

    score = N(EI) · N(SC) [· N(SS)]     (N: min-max over the cell's undecided edges)

with p = softmax(α_e), p̃ = p renormalised over the non-`none` ops, edge importance
EI = Σ_{o≠none} p[o], selection certainty SC = 1 − H(p̃)/log(|O|−1) and (criterion 2) selection
stability SS = the histogram intersection Σ_o min(p̃_t, p̃_{t−k}) averaged over the last
`history` epochs. The edge is fixed to its argmax non-`none` op (only that op runs from then on)
and its α is frozen; once a node has two fixed input edges its other inputs are pruned. The
search ends when every edge of both cells is decided (8 decisions, one per cell per decision
epoch) and emits the genotype: each node's two fixed edges.

Fixed here relative to the Auto-FERNet search code (its search scripts):
- the search data is the FER2013 *Training* split only, split with the seed into a weight half
  and an α half; Auto-FERNet pooled Training + PublicTest + PrivateTest, searching on the test
  sets;
- `batch_increase` is real: the batch grows by it after every decision epoch (Auto-FERNet
  commented the SGAS code out, so its batch stayed at 24);
- the complexity term 0.5·Σ_o α[o]²·PARAMS[o]/ΣPARAMS is optional (`complexity_weight`, off by
  default) and covers every edge of both cells (Auto-FERNet applied it to normal edge 0 only).

Default schedule: the planned length is warmup + decision_freq·8 + 1 epochs (50, SGAS's own
CIFAR figure; Auto-FERNet planned 80 = 9 + 5·14 + 1 with a bound of 14 decisions although 8
always suffice), which is the length of the cosine; decisions come at the ends of epochs
warmup+1, warmup+1+freq, … and the search stops after the 8th (epoch 45 by default).

Outputs in `out`: genotype.txt, cells.png, search.csv, alphas.json and state.pt (everything a
resumed search needs, written atomically every epoch).
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fer_core.models.genotype import PRIMITIVES, Genotype
from trainer.data import read_dataset
from trainer.engine.augment import Augment
from trainer.engine.checkpoint import rng_state, set_rng_state
from trainer.engine.loop import resolve_device
from trainer.engine.step import Precision
from trainer.engine.views import as_batch_tensor
from trainer.files import atomic_write, progress_bar, save_torch
from trainer.flags import non_negative_int, positive_int
from trainer.search.supernet import (
    EDGES,
    NUM_EDGES,
    PRUNED,
    STEPS,
    UNDECIDED,
    Supernet,
    node_edges,
)

CELLS = ("normal", "reduce")
DECISIONS_PER_CELL = 2 * STEPS  # every node ends with exactly two fixed inputs
STATE_FORMAT = "sgas-search-state/1"

# parameter counts of each op at C=12 (Auto-FERNet's complexity term)
PARAMS = {
    "sep_conv_3x3": 504,
    "sep_conv_5x5": 888,
    "dil_conv_3x3": 252,
    "dil_conv_5x5": 444,
    "ghost": 126,
    "conv_1x1": 144,
    "conv_3x3": 1296,
}


@dataclass
class SGASConfig:
    dataset: str
    data: str
    out: str
    criterion: int = 1
    warmup_epochs: int = 9
    decision_freq: int = 5
    history: int = 4
    layers: int = 8
    channels: int = 16
    batch_size: int = 24
    batch_increase: int = 8
    lr: float = 0.025
    lr_min: float = 0.001
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    arch_lr: float = 3e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    complexity_weight: float = 0.0
    crop: int = 44
    train_fraction: float = 0.5
    max_images: int = 0
    seed: int = 0
    device: str = "auto"
    epochs: int = 0
    # bf16 autocast where it is native (CUDA; CPUs with AVX512-BF16/AMX); off by default: the
    # supernet is launch-bound (≈0.9 s per forward + backward on an H100 at any batch from 24 to
    # 96), and the casts made it ~20% slower
    amp: bool = False

    def __post_init__(self) -> None:
        self.arch_betas = tuple(self.arch_betas)  # type: ignore[assignment]
        if self.criterion not in (1, 2):
            raise ValueError(f"criterion must be 1 or 2, got {self.criterion}")
        if self.decision_freq < 1:
            raise ValueError(f"decision_freq must be at least 1, got {self.decision_freq}")
        if self.warmup_epochs < 0 or self.epochs < 0 or self.max_images < 0:
            raise ValueError("warmup_epochs, epochs and max_images must not be negative")
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction must lie in (0, 1), got {self.train_fraction}")
        if self.history < 1:
            raise ValueError(f"history must be at least 1, got {self.history}")

    def planned_epochs(self) -> int:
        """The length of the cosine schedule (and the most epochs the search runs)."""
        if self.epochs:
            return self.epochs
        return self.warmup_epochs + self.decision_freq * DECISIONS_PER_CELL + 1

    def is_decision_epoch(self, epoch: int) -> bool:
        """Whether the cells decide at the end of `epoch` (1-based)."""
        after = epoch - self.warmup_epochs - 1
        return after >= 0 and after % self.decision_freq == 0


@dataclass(frozen=True)
class Decision:
    epoch: int
    cell: str
    edge: int
    node: int
    input: int
    op: str
    score: float

    def describe(self) -> str:
        return (
            f"{self.cell} edge {self.edge} (node {self.node} ← {_state_name(self.input)}) "
            f"= {self.op}  score {self.score:.3f}"
        )


@dataclass
class SGASResult:
    genotype: Genotype
    out: Path
    epochs_run: int
    decisions: list[Decision]
    arch_top1: float  # top-1 on the α half's (augmented) batches in the last epoch
    train_top1: float
    train_images: int  # the weight half
    arch_images: int  # the α half
    source_split: str  # the only split the search read
    completed: bool  # every edge decided (False: cut short, genotype completed by p)
    files: list[Path] = field(default_factory=list)


# ------------------------------------------------------------------ scoring and decisions


def edge_probs(alpha: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(p, p̃) for α of shape E×|O|: p = softmax(α), p̃ = p renormalised over the non-none ops
    (E×(|O|−1), columns in PRIMITIVES[1:] order)."""
    p = F.softmax(torch.as_tensor(alpha).detach().double(), dim=-1)
    rest = p[:, 1:]
    return p, rest / rest.sum(-1, keepdim=True)


def _minmax(x: torch.Tensor) -> torch.Tensor:
    lo, hi = x.min(), x.max()
    if float(hi - lo) <= 1e-12:
        return torch.ones_like(x)
    return (x - lo) / (hi - lo)


def edge_scores(
    alpha: torch.Tensor,
    candidates: Sequence[int],
    criterion: int = 1,
    history: Sequence[torch.Tensor] = (),
    window: int = 4,
) -> dict[int, float]:
    """SGAS scores of the `candidates` edges of one cell. `history` holds p̃ (E×(|O|−1)) of the
    previous epochs, oldest first; criterion 2 averages Σ_o min(p̃_now, p̃_{now−k}) over the
    last `window` of them (criterion 2 with no history yet falls back to criterion 1)."""
    candidates = list(candidates)
    if not candidates:
        return {}
    p, pt = edge_probs(alpha)
    idx = torch.tensor(candidates)
    ei = p[idx, 1:].sum(-1)
    k = pt.shape[1]
    entropy = -(pt[idx] * torch.log(pt[idx].clamp_min(1e-30))).sum(-1)
    sc = 1.0 - entropy / math.log(k)
    score = _minmax(ei) * _minmax(sc)
    if criterion == 2 and len(history):
        past = [torch.as_tensor(h).double()[idx] for h in list(history)[-window:]]
        ss = torch.stack([torch.minimum(pt[idx], h).sum(-1) for h in past]).mean(0)
        score = score * _minmax(ss)
    elif criterion not in (1, 2):
        raise ValueError(f"criterion must be 1 or 2, got {criterion}")
    return {e: float(s) for e, s in zip(candidates, score, strict=True)}


def candidates_of(status: Sequence[int]) -> list[int]:
    return [e for e, s in enumerate(status) if s == UNDECIDED]


def decide(
    alpha: torch.Tensor,
    status: Sequence[int],
    criterion: int = 1,
    history: Sequence[torch.Tensor] = (),
    window: int = 4,
) -> tuple[tuple[int, ...], tuple[int, str, float] | None]:
    """One greedy SGAS decision on one cell. `status[e]` is UNDECIDED (−1), PRUNED (0) or the
    fixed op index. Returns (new status, (edge, op name, score)), or (status, None) when every
    edge is decided. The best-scoring undecided edge is fixed to its argmax non-none op; if its
    node then has two fixed inputs, the node's other undecided inputs are pruned."""
    status = tuple(int(s) for s in status)
    candidates = candidates_of(status)
    if not candidates:
        return status, None
    scores = edge_scores(alpha, candidates, criterion, history, window)
    edge = max(candidates, key=lambda e: (scores[e], -e))  # ties: the lowest edge index
    _, pt = edge_probs(alpha)
    op = int(pt[edge].argmax()) + 1
    new = list(status)
    new[edge] = op
    node = EDGES[edge][0]
    inputs = node_edges(node)
    if sum(new[e] > PRUNED for e in inputs) >= 2:
        for e in inputs:
            if new[e] == UNDECIDED:
                new[e] = PRUNED
    return tuple(new), (edge, PRIMITIVES[op], scores[edge])


def genotype_edges(alpha: torch.Tensor, status: Sequence[int]) -> tuple[list[tuple], list[str]]:
    """Each node's two fixed input edges as (op, input) in node order; a node with fewer (a run
    cut short) is completed with its best remaining undecided edges by max non-none p. Returns
    (edges, notes on completed nodes)."""
    p, _ = edge_probs(alpha)
    edges, notes = [], []
    for node in range(STEPS):
        inputs = node_edges(node)
        chosen = [(e, int(status[e])) for e in inputs if status[e] > PRUNED]
        if len(chosen) < 2:
            rest = [e for e in inputs if status[e] == UNDECIDED]
            rest.sort(key=lambda e: (-float(p[e, 1:].max()), e))
            added = [(e, int(p[e, 1:].argmax()) + 1) for e in rest[: 2 - len(chosen)]]
            chosen += added
            notes.append(
                f"node {node}: completed with "
                + ", ".join(f"{PRIMITIVES[o]}({_state_name(EDGES[e][1])})" for e, o in added)
            )
        chosen.sort(key=lambda eo: EDGES[eo[0]][1])
        edges += [(PRIMITIVES[o], EDGES[e][1]) for e, o in chosen[:2]]
    return edges, notes


def make_genotype(
    alphas: dict[str, torch.Tensor], status: dict[str, Sequence[int]]
) -> tuple[Genotype, list[str]]:
    cells, notes = {}, []
    for cell in CELLS:
        cells[cell], cell_notes = genotype_edges(alphas[cell], status[cell])
        notes += [f"{cell} {n}" for n in cell_notes]
    concat = tuple(range(2, 2 + STEPS))
    genotype = Genotype(
        normal=tuple(cells["normal"]),
        normal_concat=concat,
        reduce=tuple(cells["reduce"]),
        reduce_concat=concat,
    )
    return genotype, notes


def complexity_loss(alphas: Sequence[torch.Tensor]) -> torch.Tensor:
    """0.5·Σ_edges Σ_o α[o]²·PARAMS[o]/ΣPARAMS over every edge of the given cells."""
    w = torch.tensor([PARAMS.get(name, 0) for name in PRIMITIVES], dtype=torch.float32)
    w = w / w.sum()
    return sum(0.5 * (a.float() ** 2 * w.to(a.device)).sum() for a in alphas)


def _state_name(j: int) -> str:
    return ("c_{k-2}", "c_{k-1}")[j] if j < 2 else f"node {j - 2}"


# ------------------------------------------------------------------ the search


def _cosine(config: SGASConfig, epoch: int, total: int) -> float:
    return config.lr_min + 0.5 * (config.lr - config.lr_min) * (
        1 + math.cos(math.pi * epoch / total)
    )


def _search_data(config: SGASConfig, dataset) -> tuple[str, Any, np.ndarray, np.ndarray]:
    """(split key, split, weight-half indices, α-half indices) from the Training split only."""
    if not dataset.train:
        raise ValueError(f"dataset {dataset.name} has no training split to search on")
    key = dataset.key("train")
    split = dataset[key]
    if not split.in_memory or split.images.ndim != 3:
        split = split.materialize(48, 1)
    n = len(split)
    rng = np.random.default_rng(config.seed)
    index = np.arange(n)
    if config.max_images and config.max_images < n:
        index = np.sort(rng.choice(n, config.max_images, replace=False))
    index = rng.permutation(index)
    n_w = round(len(index) * config.train_fraction)
    if n_w < 1 or n_w >= len(index):
        raise ValueError(
            f"{len(index)} images cannot be split {config.train_fraction:.2f}/"
            f"{1 - config.train_fraction:.2f} into a weight half and an α half"
        )
    return key, split, index[:n_w], index[n_w:]


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))


def _write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=1) + "\n"))


def _alphas_json(model: Supernet, status: dict[str, tuple[int, ...]], epoch: int) -> dict:
    data: dict[str, Any] = {"primitives": list(PRIMITIVES), "epoch": epoch, "edges": []}
    data["edges"] = [{"edge": e, "node": n, "input": j} for e, (n, j) in enumerate(EDGES)]
    for cell in CELLS:
        a = model.alpha(cell).detach().cpu()
        p, _ = edge_probs(a)
        data[cell] = {
            "alpha": [[round(float(v), 6) for v in row] for row in a],
            "softmax": [[round(float(v), 6) for v in row] for row in p],
            "status": ["undecided" if s == UNDECIDED else PRIMITIVES[s] for s in status[cell]],
        }
    return data


def _write_alphas(out: Path, model: Supernet, status, epoch: int) -> Path:
    path = out / "alphas.json"
    _write_json(path, _alphas_json(model, status, epoch))
    return path


def _load_state(path: Path) -> Any:
    """A search state read safely: tensors and plain values only, so a `.pt` cannot run code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # the safe unpickler refuses anything else (or the file is damaged)
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable SGAS search state ({first})") from None


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _open_state(config: SGASConfig, resume: bool) -> tuple[SGASConfig, dict[str, Any] | None]:
    """The config to run and, with `resume`, the saved state; a new search never overwrites one."""
    out = Path(config.out)
    path = out / "state.pt"
    saved = None
    if resume:
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no search to resume")
        saved = _load_state(path)
        if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
            raise ValueError(f"{path}: not an SGAS search state")
        # where the data and the outputs live and which device runs it may change on resume
        config = replace(
            SGASConfig(**dict(saved["config"])),
            out=config.out,
            data=config.data,
            device=config.device,
        )
    elif path.exists():
        raise FileExistsError(
            f"{path} already holds a search; pass --resume to continue it or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    return config, saved


def _precision(config: SGASConfig, device: torch.device) -> Precision:
    """bf16 autocast only with `amp` and on a GPU that computes bf16 natively (the
    supernet is launch-bound, so `amp` is off by default). Channels-last on CPU, where it makes
    oneDNN's depthwise/dilated convolutions several times faster — but torch 2.14's CPU backward
    of a channels-last 1×1 stride-2 conv with < 8 input channels corrupts the heap, so narrow
    test-sized supernets stay contiguous; and its CPU bf16 backward of the dilated depthwise
    convolutions gives NaN (`trainer.engine.step`), so a CPU search stays fp32."""
    channels_last = device.type == "cpu" and config.channels >= 8
    if not config.amp:
        return Precision(None, channels_last, "amp off")
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return Precision(torch.bfloat16, channels_last, "CUDA autocast")
    if device.type == "cpu":
        return Precision(None, channels_last, "amp: CPU bf16 breaks dil_conv's backward")
    return Precision(None, channels_last, f"amp: no native bf16 on {device.type}")


@dataclass
class SearchState:
    """What the search carries from one epoch to the next besides the supernet and its
    optimisers; saved in state.pt as tensors and plain values so a resumed search continues
    exactly."""

    status: dict[str, tuple[int, ...]]  # per cell: UNDECIDED, PRUNED or the fixed op per edge
    history: dict[str, list[torch.Tensor]]  # per cell: p̃ of the last `history` + 1 epochs
    frozen: dict[str, torch.Tensor]  # per cell: α as of its last decision (decided rows stay)
    batch_size: int
    rows: list[dict[str, Any]] = field(default_factory=list)  # search.csv
    decisions: list[Decision] = field(default_factory=list)
    epoch: int = 0  # epochs finished

    @classmethod
    def start(cls, model: Supernet, batch_size: int) -> SearchState:
        return cls(
            status={c: (UNDECIDED,) * NUM_EDGES for c in CELLS},
            history={c: [] for c in CELLS},
            frozen={c: model.alpha(c).detach().clone() for c in CELLS},
            batch_size=batch_size,
        )

    def all_decided(self) -> bool:
        return all(UNDECIDED not in self.status[c] for c in CELLS)

    def to_plain(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "status": {c: list(self.status[c]) for c in CELLS},
            "history": {c: [h.cpu() for h in self.history[c]] for c in CELLS},
            "frozen": {c: self.frozen[c].cpu() for c in CELLS},
            "batch_size": self.batch_size,
            "rows": list(self.rows),
            "decisions": [asdict(d) for d in self.decisions],
        }

    @classmethod
    def from_plain(cls, plain: dict[str, Any], device: torch.device) -> SearchState:
        return cls(
            status={c: tuple(plain["status"][c]) for c in CELLS},
            history={c: [h.clone() for h in plain["history"][c]] for c in CELLS},
            frozen={c: plain["frozen"][c].to(device) for c in CELLS},
            batch_size=plain["batch_size"],
            rows=list(plain["rows"]),
            decisions=[Decision(**d) for d in plain["decisions"]],
            epoch=plain["epoch"],
        )


@dataclass
class _SearchData:
    """The Training split on the device, its weight and α halves, and their augmentation."""

    dataset: str
    source: str  # the split's key
    classes: int
    images: torch.Tensor  # uint8 N×C×S×S
    targets: torch.Tensor
    weight: torch.Tensor  # indices of the weight half
    arch: torch.Tensor  # indices of the α half
    augment: Augment

    @classmethod
    def load(cls, config: SGASConfig, dataset, device: torch.device) -> _SearchData:
        source, split, w_index, a_index = _search_data(config, dataset)
        images = as_batch_tensor(split.images).to(device)
        side = images.shape[-1]
        augment = Augment(
            size=config.crop,
            crop=config.crop / side,
            shift=max(side - config.crop, 0) / (2 * side),
            flip=True,
            brightness=0.25,
            contrast=0.5,
        )
        return cls(
            dataset=dataset.name,
            source=source,
            classes=len(dataset.labels),
            images=images,
            targets=torch.from_numpy(split.targets).to(device),
            weight=torch.from_numpy(w_index).to(device),
            arch=torch.from_numpy(a_index).to(device),
            augment=augment,
        )

    def batch(self, index: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return self.augment(self.images[index], gen), self.targets[index]

    def summary(self) -> dict[str, Any]:
        return {
            "split": self.source,
            "weight_images": len(self.weight),
            "arch_images": len(self.arch),
        }


@dataclass
class _Sums:
    """Running loss and top-1 of one half over an epoch."""

    images: int = 0
    correct: int = 0
    loss: float = 0.0  # summed over the images

    def add(self, loss: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> None:
        self.images += len(y)
        self.correct += int((logits.detach().argmax(1) == y).sum())
        self.loss += float(loss.detach()) * len(y)

    def mean_loss(self) -> float:
        return self.loss / max(self.images, 1)

    def top1(self) -> float:
        return self.correct / max(self.images, 1)


@dataclass
class _Epoch:
    """One epoch's learning rate, sums and time: the progress bar and the row of search.csv."""

    lr: float
    weight: _Sums = field(default_factory=_Sums)
    arch: _Sums = field(default_factory=_Sums)
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0

    def postfix(self, batch_size: int) -> dict[str, Any]:
        rate = (self.weight.images + self.arch.images) / (time.perf_counter() - self.started)
        return {
            "loss": f"{self.weight.mean_loss():.3f}",
            "acc": f"{100 * self.weight.top1():.1f}%",
            "arch_acc": f"{100 * self.arch.top1():.1f}%",
            "bs": batch_size,
            "img_s": f"{rate:.0f}",
        }

    def row(self, epoch: int, batch_size: int, made: list[Decision]) -> dict[str, Any]:
        return {
            "epoch": epoch,
            "lr": round(self.lr, 8),
            "batch_size": batch_size,
            "train_loss": round(self.weight.mean_loss(), 5),
            "train_top1": round(self.weight.top1(), 5),
            "arch_loss": round(self.arch.mean_loss(), 5),
            "arch_top1": round(self.arch.top1(), 5),
            "images_per_s": round((self.weight.images + self.arch.images) / self.seconds, 1),
            "seconds": round(self.seconds, 2),
            "decisions": "; ".join(f"{d.cell} e{d.edge}={d.op}" for d in made),
        }


@dataclass
class _Search:
    """A search in progress: the supernet, its two optimisers, the data and the state."""

    config: SGASConfig
    device: torch.device
    precision: Precision
    data: _SearchData
    model: Supernet
    w_opt: torch.optim.Optimizer
    a_opt: torch.optim.Optimizer
    state: SearchState

    @classmethod
    def setup(cls, config: SGASConfig, saved: dict[str, Any] | None, dataset) -> _Search:
        """Everything the epochs need, built after seeding the global RNGs (the supernet's
        initial weights come from them); then, on resume, the saved state and RNGs."""
        device = resolve_device(config.device)
        torch.manual_seed(config.seed)
        np.random.seed(config.seed)
        random.seed(config.seed)
        data = _SearchData.load(
            config, dataset or read_dataset(config.dataset, config.data), device
        )
        precision = _precision(config, device)
        model = precision.model(Supernet(config.channels, config.layers, data.classes).to(device))
        w_opt = torch.optim.SGD(
            model.weight_parameters(),
            lr=config.lr,
            momentum=config.momentum,
            weight_decay=config.weight_decay,
        )
        a_opt = torch.optim.Adam(
            model.arch_parameters(),
            lr=config.arch_lr,
            betas=config.arch_betas,
            weight_decay=config.arch_weight_decay,
        )
        state = SearchState.start(model, config.batch_size)
        search = cls(config, device, precision, data, model, w_opt, a_opt, state)
        if saved is not None:
            search.restore(saved)
        for c in CELLS:
            model.set_status(c, search.state.status[c])
        _log(
            f"SGAS criterion {config.criterion}: {len(data.weight)} weight / {len(data.arch)} α "
            f"images from {data.dataset} {data.source} only; {config.layers} cells, "
            f"C={config.channels}, up to {search.total} epochs on {device}, "
            f"{precision.describe()}"
        )
        return search

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def total(self) -> int:
        return self.config.planned_epochs()

    @cached_property
    def weights(self) -> list[nn.Parameter]:
        return self.model.weight_parameters()

    def restore(self, saved: dict[str, Any]) -> None:
        self.model.load_state_dict(saved["model"])
        self.w_opt.load_state_dict(saved["w_opt"])
        self.a_opt.load_state_dict(saved["a_opt"])
        self.state = SearchState.from_plain(saved, self.device)
        set_rng_state(saved["rng"])
        _log(f"resuming the search in {self.out} after epoch {self.state.epoch}")

    def train_epoch(self) -> _Epoch:
        """One pass over the weight half, each weight step after an α step on an α-half batch
        (the α half recycled when it is the smaller); shuffles and augmentation are drawn from
        generators seeded by the epoch, so a resumed search repeats them."""
        config, state, device = self.config, self.state, self.device
        epoch = _Epoch(_cosine(config, state.epoch, self.total))
        for g in self.w_opt.param_groups:
            g["lr"] = epoch.lr
        seed = config.seed * 1_000_003 + state.epoch
        gen_cpu = torch.Generator().manual_seed(seed)
        gen_dev = torch.Generator(device).manual_seed(seed)
        weight, arch = self.data.weight, self.data.arch
        order_w = weight[torch.randperm(len(weight), generator=gen_cpu).to(device)]
        order_a = arch[torch.randperm(len(arch), generator=gen_cpu).to(device)]
        decided = {
            c: torch.tensor([s != UNDECIDED for s in state.status[c]], device=device) for c in CELLS
        }
        size = state.batch_size
        self.model.train()
        bar = progress_bar(
            range(math.ceil(len(order_w) / size)),
            desc=f"search {state.epoch + 1}/{self.total}",
            unit="batch",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        for i in bar:
            w_batch = order_w[i * size : (i + 1) * size]
            pos = torch.arange(i * size, i * size + len(w_batch), device=device)
            epoch.arch.add(*self.arch_step(order_a[pos % len(order_a)], gen_dev, decided))
            epoch.weight.add(*self.weight_step(w_batch, gen_dev))
            bar.set_postfix(**epoch.postfix(size))
        bar.close()
        epoch.seconds = time.perf_counter() - epoch.started
        state.epoch += 1
        return epoch

    def arch_step(
        self, index: torch.Tensor, gen: torch.Generator, decided: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """First-order α step; decided edges keep their frozen α. Returns (loss, logits, y)."""
        x, y = self.data.batch(index, gen)
        with self.precision.autocast(self.device):
            logits = self.model(self.precision.input(x))
        loss = F.cross_entropy(logits.float(), y)
        arch = self.model.arch_parameters()
        objective = loss
        if self.config.complexity_weight:
            objective = objective + self.config.complexity_weight * complexity_loss(arch)
        grads = torch.autograd.grad(objective, arch)
        for c, p, g in zip(CELLS, arch, grads, strict=True):
            p.grad = g.masked_fill(decided[c][:, None], 0.0)
        self.a_opt.step()
        self.a_opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            for c in CELLS:
                a = self.model.alpha(c)
                a.copy_(torch.where(decided[c][:, None], self.state.frozen[c], a))
        return loss, logits, y

    def weight_step(
        self, index: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """SGD step of the weights with α held fixed. Returns (loss, logits, y)."""
        x, y = self.data.batch(index, gen)
        self.w_opt.zero_grad(set_to_none=True)
        with self.precision.autocast(self.device):
            logits = self.model(self.precision.input(x), detach_alpha=True)
        loss = F.cross_entropy(logits.float(), y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.weights, self.config.grad_clip)
        self.w_opt.step()
        return loss, logits, y

    def make_decisions(self) -> list[Decision]:
        """On a decision epoch each cell fixes one edge (its α frozen from then on); every epoch
        adds p̃ to the history criterion 2 compares against."""
        config, state = self.config, self.state
        made: list[Decision] = []
        for c in CELLS:
            alpha = self.model.alpha(c).detach().cpu()
            if config.is_decision_epoch(state.epoch):
                state.status[c], choice = decide(
                    alpha, state.status[c], config.criterion, state.history[c], config.history
                )
                if choice is not None:
                    edge, op, score = choice
                    node, j = EDGES[edge]
                    made.append(Decision(state.epoch, c, edge, node, j, op, score))
                    self.model.set_status(c, state.status[c])
                    state.frozen[c] = self.model.alpha(c).detach().clone()
            past = state.history[c] + [edge_probs(alpha)[1].float()]
            state.history[c] = past[-(config.history + 1) :]
        for d in made:
            _log(f"decision at epoch {state.epoch}: {d.describe()}")
        state.decisions += made
        return made

    def record(self, epoch: _Epoch, made: list[Decision]) -> None:
        """The epoch's row and log line; the batch grows after a decision."""
        state = self.state
        row = epoch.row(state.epoch, state.batch_size, made)
        state.rows.append(row)
        if made:
            state.batch_size += self.config.batch_increase
        fixed = {c: sum(s > PRUNED for s in state.status[c]) for c in CELLS}
        left = {c: state.status[c].count(UNDECIDED) for c in CELLS}
        _log(
            f"epoch {state.epoch}/{self.total}: loss {row['train_loss']:.3f} train "
            f"{100 * row['train_top1']:.2f}%  α-half {100 * row['arch_top1']:.2f}%  "
            f"lr {epoch.lr:.2e}  batch {row['batch_size']}  {row['images_per_s']:.0f} img/s  "
            f"fixed normal {fixed['normal']}/8 reduce {fixed['reduce']}/8, "
            f"undecided {left['normal']}+{left['reduce']}"
        )

    def save(self) -> None:
        """search.csv, alphas.json, then state.pt (each atomically): a search killed before the
        state is written resumes from the previous epoch."""
        ckpt = {
            "format": STATE_FORMAT,
            "config": asdict(self.config),
            "model": self.model.state_dict(),
            "w_opt": self.w_opt.state_dict(),
            "a_opt": self.a_opt.state_dict(),
            **self.state.to_plain(),
            "rng": rng_state(),
            "data": self.data.summary(),
        }
        _write_csv(self.out / "search.csv", self.state.rows)
        _write_alphas(self.out, self.model, self.state.status, self.state.epoch)
        save_torch(ckpt, self.out / "state.pt")

    def finish(self) -> SGASResult:
        """The genotype (completed by p where the search was cut short), its files, the result."""
        state, out = self.state, self.out
        alphas = {c: self.model.alpha(c).detach().cpu() for c in CELLS}
        genotype, notes = make_genotype(alphas, state.status)
        completed = state.all_decided()
        if not completed:
            _log(
                f"the search stopped after {state.epoch} epochs with undecided edges; "
                "genotype completed:"
            )
            for note in notes:
                _log(f"  {note}")
        files = [
            atomic_write(
                out / "genotype.txt", lambda tmp: Path(tmp).write_text(genotype.to_text())
            ),
            draw_cells(genotype, out / "cells.png"),
            out / "search.csv",
            _write_alphas(out, self.model, state.status, state.epoch),
            out / "state.pt",
        ]
        last = state.rows[-1] if state.rows else {"arch_top1": 0.0, "train_top1": 0.0}
        return SGASResult(
            genotype=genotype,
            out=out,
            epochs_run=state.epoch,
            decisions=state.decisions,
            arch_top1=float(last["arch_top1"]),
            train_top1=float(last["train_top1"]),
            train_images=len(self.data.weight),
            arch_images=len(self.data.arch),
            source_split=self.data.source,
            completed=completed,
            files=files,
        )


def search(config: SGASConfig, resume: bool = False, dataset=None) -> SGASResult:
    """Run (or, with `resume`, continue from out/state.pt) an SGAS search; see the module doc."""
    config, saved = _open_state(config, resume)
    job = _Search.setup(config, saved, dataset)
    while job.state.epoch < job.total and not job.state.all_decided():
        epoch = job.train_epoch()
        job.record(epoch, job.make_decisions())
        job.save()
    return job.finish()


# ------------------------------------------------------------------ picture


def draw_cells(genotype: Genotype, path: str | Path) -> Path:
    """The normal and the reduction cell as DAGs (inputs, nodes 0–3, output), edges labelled."""
    from trainer.evaluation.plots import _figure, _save

    plt, fig, axes = _figure(1, 2, figsize=(14, 5.5))
    pos = {0: (0.0, 2.2), 1: (0.0, -2.2)}
    for node in range(STEPS):
        pos[2 + node] = (2.2 + 2.0 * node, 1.2 if node % 2 == 0 else -1.2)
    out_xy = (2.2 + 2.0 * STEPS + 0.6, 0.0)
    names = {0: "c_{k-2}", 1: "c_{k-1}", **{2 + n: str(n) for n in range(STEPS)}}
    colours = {0: "#9ecae1", 1: "#9ecae1", **{2 + n: "#fdd49e" for n in range(STEPS)}}
    for ax, cell, edges, concat in (
        (axes[0], "normal cell", genotype.normal, genotype.normal_concat),
        (axes[1], "reduction cell", genotype.reduce, genotype.reduce_concat),
    ):
        ax.set_title(cell)
        ax.set_axis_off()
        ax.set_xlim(-1.0, out_xy[0] + 1.0)
        ax.set_ylim(-3.2, 3.2)
        for k, (op, j) in enumerate(edges):
            _draw_edge(ax, pos[j], pos[2 + k // 2], op, 0.25 if (j + k) % 2 else -0.25)
        for i in concat:
            ax.annotate(
                "",
                xy=out_xy,
                xytext=pos[i],
                arrowprops={"arrowstyle": "-|>", "color": "#aaaaaa", "shrinkA": 16, "shrinkB": 18},
            )
        for i, (x, y) in pos.items():
            ax.text(
                x,
                y,
                names[i],
                ha="center",
                va="center",
                fontsize=9,
                bbox={"boxstyle": "circle" if i >= 2 else "round", "fc": colours[i], "ec": "k"},
            )
        ax.text(
            *out_xy,
            "c_{k}",
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round", "fc": "#c7e9c0", "ec": "k"},
        )
    return _save(plt, fig, path)


def _draw_edge(ax, start: tuple, end: tuple, op: str, rad: float) -> None:
    """An arrow bent by `rad`, labelled with its op at the middle of the curve."""
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops={
            "arrowstyle": "-|>",
            "color": "#555555",
            "shrinkA": 16,
            "shrinkB": 16,
            "connectionstyle": f"arc3,rad={rad}",
        },
    )
    # arc3 bends in display space, its control point rad·(dy, −dx) off the chord's middle: the
    # curve passes halfway between the two
    (x1, y1), (x2, y2) = ax.transData.transform([start, end])
    mid = ((x1 + x2) / 2 + rad * (y2 - y1) / 2, (y1 + y2) / 2 - rad * (x2 - x1) / 2)
    mx, my = ax.transData.inverted().transform(mid)
    ax.text(
        mx,
        my,
        op,
        fontsize=7,
        ha="center",
        va="center",
        bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "#bbbbbb", "lw": 0.5},
    )


# ------------------------------------------------------------------ command line

_FLAGS = (
    ("--criterion", "criterion", int, "edge score: 1 = importance × certainty, 2 = × stability"),
    ("--epochs", "epochs", non_negative_int, "planned epochs (0: warmup + decision_freq·8 + 1)"),
    ("--warmup-epochs", "warmup_epochs", non_negative_int, "epochs before the first decision"),
    ("--decision-freq", "decision_freq", positive_int, "epochs between decisions"),
    (
        "--history",
        "history",
        non_negative_int,
        "criterion 2: epochs of p̃ history for the stability term",
    ),
    ("--layers", "layers", positive_int, "cells in the supernet"),
    ("--channels", "channels", positive_int, "initial channels C of the supernet"),
    ("--batch-size", "batch_size", positive_int, "initial batch size"),
    ("--batch-increase", "batch_increase", non_negative_int, "batch growth after each decision"),
    ("--lr", "lr", float, "initial weight learning rate (cosine to lr_min)"),
    ("--arch-lr", "arch_lr", float, "Adam learning rate of α"),
    ("--complexity-weight", "complexity_weight", float, "weight of the α complexity term"),
    ("--crop", "crop", positive_int, "training crop side in pixels (of 48)"),
    ("--max-images", "max_images", non_negative_int, "use this many Training images (0: all)"),
    ("--train-fraction", "train_fraction", float, "share of the images that trains weights"),
)


def add_arguments(group) -> None:
    """Add the SGAS flags to an argparse parser or argument group (defaults: None → SGASConfig's
    defaults)."""
    defaults = {f.name: f.default for f in fields(SGASConfig)}
    for flag, dest, kind, text in _FLAGS:
        kw: dict[str, Any] = {"dest": dest, "type": kind, "default": None}
        if dest == "criterion":
            kw["choices"] = (1, 2)
        group.add_argument(flag, help=f"{text} (default {defaults[dest]})", **kw)


def config_from_args(args) -> SGASConfig:
    values: dict[str, Any] = {}
    for name in ("dataset", "data", "out", "seed", "device"):
        value = getattr(args, name, None)
        if value is not None:
            values[name] = value
    for _, dest, _, _ in _FLAGS:
        value = getattr(args, dest, None)
        if value is not None:
            values[dest] = value
    values.setdefault("dataset", "fer2013")
    for name in ("data", "out"):
        if name not in values:
            raise ValueError(f"--{name} is required for an SGAS search")
    return SGASConfig(**values)


def run(args, dataset=None) -> int:
    threads = getattr(args, "threads", None)
    if threads:
        torch.set_num_threads(int(threads))
    config = config_from_args(args)
    result = search(config, resume=bool(getattr(args, "resume", False)), dataset=dataset)
    print(result.genotype.to_text())
    status = "complete" if result.completed else "cut short (completed by p)"
    print(
        f"search {status} after {result.epochs_run} epochs; "
        f"α-half top-1 {100 * result.arch_top1:.2f}%"
    )
    for path in result.files:
        print(f"wrote {path}")
    return 0

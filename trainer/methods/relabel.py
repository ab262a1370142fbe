"""`python -m trainer relabel`: Auto-FERNet's relabel training, for any family.

Fine-tune from a snapshot that has not converged (the `snapshot-85.pt` / `snapshot-90.pt` a
training run leaves), and from the second epoch on, for every sample of every batch:

    p = softmax(main logits), k = argmax p, y = the label
    with FES:    y ← k  if 0 < p[k] − p[y] < τ_r  and  FES[y][k] > τ_f     (τ_r 0.2, τ_f 0.03)
    softmax only: y ← k  if p[k] − p[y] < τ_r

The new label serves the main loss, the auxiliary loss and the accuracy count of that batch
only; the dataset's labels are never rewritten. The rule runs on the logits of the very forward
pass whose loss it changes. Every flip is counted per epoch and per (from, to) pair: `flips.csv`
and `flips.png` in the run folder, and in the checkpoints (so a resumed run keeps its counts).

The fine-tune is an ordinary `train` run started from the snapshot's weights with the snapshot's
recipe, except: `epochs` (100); a cosine schedule without warm-up from `lr`, by default the
snapshot recipe's learning rate at the snapshot's epoch (the Auto-FERNet code's 0.02272721 is its
600-epoch cosine schedule at epoch 117; its README says 0.001); no mixup (the rule needs hard
labels); and drop-path continuing the snapshot run's ramp (the code hard-codes
0.2·(epoch+115)/600).

Its control (`control=True`, `relabel --no-relabel`) is the same fine-tune with the rule off: the
same recipe, seed, batches and augmentation, so the two runs differ by the relabeling alone
(their first epochs, before the rule starts, are identical).
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.data import Dataset
from trainer.engine import checkpoint, distributed
from trainer.engine.callbacks import Callback
from trainer.engine.checkpoint import Checkpoint
from trainer.engine.loop import evaluate_split
from trainer.engine.recipes import Recipe
from trainer.engine.step import Batch, Plateau, lr_at, soft_targets
from trainer.evaluation.watch import write_rows

START_EPOCH = 1  # the first epoch (0-based) that relabels; epoch 0 trains on the plain labels


@dataclass(frozen=True)
class RelabelRule:
    relabel_threshold: float = 0.2  # τ_r, on p[k] − p[y]
    fes_threshold: float = 0.03  # τ_f
    fes: tuple[tuple[float, ...], ...] | None = None  # in the model's label order; None: softmax
    fes_source: str = ""

    def apply(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The batch's labels after the rule (a new tensor; `y` is not changed)."""
        p = torch.softmax(logits.float(), dim=1)
        top, k = p.max(dim=1)
        gap = top - p.gather(1, y[:, None])[:, 0]
        flip = gap < self.relabel_threshold
        if self.fes is not None:
            fes = torch.tensor(self.fes, device=logits.device)
            flip &= (gap > 0) & (fes[y, k] > self.fes_threshold)
        return torch.where(flip, k, y)

    def describe(self) -> str:
        if self.fes is None:
            return f"softmax only: y ← argmax where p[k] − p[y] < {self.relabel_threshold}"
        return (
            f"FES: y ← argmax where 0 < p[k] − p[y] < {self.relabel_threshold} and "
            f"FES[y][k] > {self.fes_threshold} ({self.fes_source})"
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RelabelRule:
        fes = data.get("fes")
        return cls(
            data["relabel_threshold"],
            data["fes_threshold"],
            None if fes is None else tuple(tuple(r) for r in fes),
            data.get("fes_source", ""),
        )


@dataclass
class Flips:
    """Label flips counted per epoch: `counts[e][a][b]` samples of class a trained as class b."""

    labels: list[str]
    counts: list[list[list[int]]] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)

    def start_epoch(self) -> None:
        n = len(self.labels)
        self.counts.append([[0] * n for _ in range(n)])
        self.seen.append(0)

    def add(self, old: torch.Tensor, new: torch.Tensor) -> None:
        n = len(self.labels)
        pairs = torch.bincount((old * n + new).cpu(), minlength=n * n).view(n, n).tolist()
        epoch = self.counts[-1]
        for a in range(n):
            for b in range(n):
                if a != b:
                    epoch[a][b] += pairs[a][b]
        self.seen[-1] += len(old)

    def per_epoch(self) -> list[int]:
        return [sum(map(sum, m)) for m in self.counts]

    def total(self) -> np.ndarray:
        n = len(self.labels)
        return np.asarray(self.counts, dtype=np.int64).reshape(-1, n, n).sum(0)

    def summary(self, top: int = 5) -> str:
        total = self.total()
        pairs = sorted(
            ((int(total[a, b]), self.labels[a], self.labels[b]) for a, b in np.argwhere(total)),
            reverse=True,
        )
        shown = ", ".join(f"{a}→{b} {c}" for c, a, b in pairs[:top]) or "none"
        return f"{int(total.sum())} flips over {len(self.counts)} epochs; most: {shown}"

    def write(self, out: Path) -> dict[str, Path]:
        """`flips.csv` (epoch, from, to, count, plus a row per epoch with the total) and
        `flips.png` (flips per epoch, and the (from, to) matrix of all epochs)."""
        from trainer.evaluation.plots import flips_figure
        from trainer.files import atomic_write

        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["epoch", "from", "to", "count", "samples"])
        for e, matrix in enumerate(self.counts):
            writer.writerow([e + 1, "all", "all", sum(map(sum, matrix)), self.seen[e]])
            for a, row in enumerate(matrix):
                for b, c in enumerate(row):
                    if c:
                        writer.writerow([e + 1, self.labels[a], self.labels[b], c, self.seen[e]])
        text = buf.getvalue()
        return {
            "csv": atomic_write(out / "flips.csv", lambda tmp: Path(tmp).write_text(text)),
            "png": flips_figure(self.per_epoch(), self.total(), self.labels, out / "flips.png"),
        }


class Relabel(Callback):
    """The rule applied to every batch from `START_EPOCH` on, with its flip counts."""

    key = "relabel"

    def __init__(self, rule: RelabelRule, labels: list[str], flips: Flips | None = None):
        self.rule, self.flips = rule, flips or Flips(list(labels))
        self.smoothing = 0.0

    def on_fit_start(self, run) -> None:
        if run.recipe.mixup:
            raise ValueError("relabel training needs hard labels: the recipe's mixup must be 0")
        self.smoothing = run.recipe.label_smoothing

    def on_epoch_start(self, run, epoch: int) -> None:
        self.flips.start_epoch()

    def on_logits(self, batch: Batch, logits: torch.Tensor) -> None:
        if batch.epoch < START_EPOCH:
            return
        new = self.rule.apply(logits, batch.y)
        self.flips.add(batch.y, new)
        # the batch's loss and accuracy count against the labels it trained on
        batch.y = new
        batch.targets = soft_targets(new, batch.targets.shape[1], self.smoothing)

    def on_epoch_end(self, run, row, ckpt) -> None:
        # several processes: each counted the flips of its share; the epoch's are their sum
        n = len(self.flips.labels)
        flat = [c for row in self.flips.counts[-1] for c in row]
        counts = torch.tensor([*flat, self.flips.seen[-1]])
        total = distributed.all_sum_tensor(counts).tolist()
        self.flips.counts[-1] = [total[a * n : (a + 1) * n] for a in range(n)]
        self.flips.seen[-1] = total[-1]
        ckpt.callbacks[self.key] = self.state_dict()
        if run.is_main:
            self.flips.write(run.out)
            print(f"relabel: {self.flips.summary()}", file=sys.stderr, flush=True)

    def state_dict(self) -> dict[str, Any]:
        return {"rule": asdict(self.rule), "flips": asdict(self.flips)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        stored = RelabelRule.from_dict(state["rule"])
        if stored != self.rule:
            raise ValueError(
                f"resuming: the run relabels with {stored.describe()}, not {self.rule.describe()}"
            )
        self.flips = Flips(**state["flips"])

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Relabel:
        return cls(RelabelRule.from_dict(state["rule"]), [], Flips(**state["flips"]))

    def describe(self) -> str:
        return f"relabel ({self.rule.describe()})"


class Snapshots(Callback):
    """`snapshot-85.pt` / `snapshot-90.pt`: the first epoch whose clean training accuracy reaches
    85 % / 90 %, the starting points of relabel training (weights only).

    Auto-FERNet keys its snapshots on the accuracy of the training batches, which under its
    crop-and-flip augmentation is about the clean figure. Under a strong recipe the batches'
    figure stays points below the clean one and may never reach 85 %, so the snapshot keys on
    the training faces read as validation reads them, without augmentation: a fixed sample of
    `SAMPLE` of them (drawn with seed 0, the same in every session), after every epoch. Each
    figure goes to `train-clean.csv`.
    """

    key = "snapshots"
    LEVELS = (85, 90)
    SAMPLE = 4096
    FIELDS = ("epoch", "train_clean_top1")

    def __init__(self, taken: list[int] | None = None, rows: list[dict[str, float]] | None = None):
        self.taken = list(taken or [])
        self.rows = list(rows or [])

    def on_fit_start(self, run) -> None:
        split = run.train_data.split
        pick = np.random.default_rng(0).choice(len(split), min(self.SAMPLE, len(split)), False)
        self.sample = run.read_as_validation(split.subset(np.sort(pick)))

    def on_epoch_end(self, run, row, ckpt) -> None:
        clean = evaluate_split(
            run.model, self.sample, run.view, run.labels, run.device, run.precision
        ).top1
        self.rows.append({"epoch": row.epoch, "train_clean_top1": clean})
        for level in self.LEVELS:
            if level not in self.taken and clean * 100 >= level:
                self.taken.append(level)
                if run.is_main:
                    checkpoint.save(run.out / f"snapshot-{level}.pt", ckpt.weights_only())
        ckpt.callbacks[self.key] = self.state_dict()
        if run.is_main:
            write_rows(run.out / "train-clean.csv", self.rows, self.FIELDS)
            print(
                f"  clean training top-1 ({len(self.sample)} faces): {100 * clean:.2f}%",
                file=sys.stderr,
            )

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        return {"train (clean sample)": [(r["epoch"], r["train_clean_top1"]) for r in self.rows]}

    def state_dict(self) -> dict[str, Any]:
        return {"taken": list(self.taken), "rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.taken = list(state["taken"])
        self.rows = [dict(r) for r in state.get("rows", [])]  # none before they were measured

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Snapshots:
        return cls(state["taken"], state.get("rows", []))


# ------------------------------------------------------------------------------ the command


def relabel_recipe(
    snapshot: Checkpoint, epochs: int = 100, lr: float | None = None, control: bool = False
) -> Recipe:
    """The snapshot run's recipe, continued as relabel training (see the module docstring), or
    as its control."""
    base = snapshot.recipe
    done = snapshot.epoch + 1
    if lr is None:
        lr = lr_at(base, done, Plateau(**snapshot.schedule))
        if lr <= 0.01 * base.lr:
            raise ValueError(
                f"the snapshot's schedule has run down (lr {lr:.2e} at epoch {done} of "
                f"{base.epochs}): start from a snapshot taken mid-run (snapshot-85.pt), or set "
                "--lr"
            )
    what = (
        "the relabel fine-tune with the rule off (its control)" if control else "relabel training"
    )
    return base.override(
        name="relabel-control" if control else "relabel",
        description=f"{what} from a {base.name} snapshot at epoch {done} "
        "(Auto-FERNet): the snapshot's recipe, cosine without warm-up, no mixup, "
        "drop-path continuing the snapshot run's ramp",
        epochs=epochs,
        lr=lr,
        schedule="cosine",
        warmup_epochs=0.0,
        mixup=0.0,
        drop_path_from=base.drop_path_from + done,
        drop_path_over=base.drop_path_over or base.epochs,
    )


def rule_for(
    labels: list[str],
    fes_path: str | Path | None,
    relabel_threshold: float = 0.2,
    fes_threshold: float = 0.03,
) -> RelabelRule:
    """The rule for a model with `labels`: FES from `fes_path` rearranged to that order by name,
    or softmax-only when `fes_path` is None."""
    if fes_path is None:
        return RelabelRule(relabel_threshold, fes_threshold)
    from trainer.methods.fes import FES

    fes = FES.load(fes_path)
    matrix = fes.in_order(labels)
    return RelabelRule(
        relabel_threshold, fes_threshold, tuple(map(tuple, matrix.tolist())), str(fes_path)
    )


def relabel(
    snapshot: str | Path,
    dataset_name: str,
    data: str,
    out: str | Path,
    fes_path: str | Path | None,
    *,
    relabel_threshold: float = 0.2,
    fes_threshold: float = 0.03,
    epochs: int = 100,
    lr: float | None = None,
    overrides: dict[str, Any] | None = None,
    seed: int = 0,
    device: str = "auto",
    resume: bool = False,
    skip_bad: bool = False,
    command: str = "",
    precision: str = "auto",
    callbacks: Sequence[Callback] = (),
    dataset: Dataset | None = None,
    control: bool = False,
    sync_bn: str = "auto",
):
    """Fine-tune `snapshot` with the relabel rule, or with the rule off (`control`); returns the
    TrainResult (flip statistics in the run folder). `callbacks` run beside the rule (curves,
    distillation)."""
    from trainer.engine.loop import TrainConfig, train

    state = checkpoint.load(snapshot)
    recipe = relabel_recipe(state, epochs, lr, control).override(**(overrides or {}))
    if recipe.mixup:
        raise ValueError("relabel training needs hard labels: mixup must be 0")
    rule = rule_for(list(state.labels), fes_path, relabel_threshold, fes_threshold)
    config = TrainConfig(
        model=str(snapshot),
        dataset=dataset_name,
        data=data,
        out=str(out),
        recipe=recipe,
        seed=seed,
        device=device,
        skip_bad=skip_bad,
        command=command,
        init=str(snapshot),
        precision=precision,
        sync_bn=sync_bn,
    )
    relabeling = [] if control else [Relabel(rule, list(state.labels))]
    return train(config, [*relabeling, *callbacks], resume=resume, dataset=dataset)

"""`python -m trainer relabel`: Auto-FERNet's relabel training (REFERENCE §1.8), for any family.

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
"""

from __future__ import annotations

import csv
import io
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer import checkpoint
from trainer.recipes import Recipe

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
        from trainer.checkpoint import atomic_write
        from trainer.plots import flips_figure

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


class Relabeler:
    """The rule and its flip counts, as the training loop uses them batch by batch."""

    def __init__(self, rule: RelabelRule, labels: list[str], flips: Flips | None = None):
        self.rule, self.flips = rule, flips or Flips(list(labels))

    def active(self, epoch: int) -> bool:
        return epoch >= START_EPOCH

    def targets(self, y: torch.Tensor, classes: int, smoothing: float) -> Retarget:
        """The batch's targets as a function of its logits (for `Step`); after the step,
        `.y` holds the labels the batch was trained on."""
        return Retarget(self, y, classes, smoothing)

    def state(self) -> dict[str, Any]:
        return {"rule": asdict(self.rule), "flips": asdict(self.flips)}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Relabeler:
        return cls(RelabelRule.from_dict(state["rule"]), [], Flips(**state["flips"]))


class Retarget:
    def __init__(self, relabeler: Relabeler, y: torch.Tensor, classes: int, smoothing: float):
        self.relabeler, self.y, self.classes, self.smoothing = relabeler, y, classes, smoothing

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        from trainer.train import soft_targets

        new = self.relabeler.rule.apply(logits, self.y)
        self.relabeler.flips.add(self.y, new)
        self.y = new
        return soft_targets(new, self.classes, self.smoothing)


# ------------------------------------------------------------------------------ the command


def relabel_recipe(snapshot: dict[str, Any], epochs: int = 100, lr: float | None = None) -> Recipe:
    """The snapshot run's recipe, continued as relabel training (see the module docstring)."""
    from trainer.train import Plateau, lr_at

    base = Recipe.from_dict(snapshot["recipe"])
    done = snapshot["epoch"] + 1
    if lr is None:
        lr = lr_at(base, done, Plateau(**snapshot["plateau"]))
        if lr <= 0.01 * base.lr:
            raise ValueError(
                f"the snapshot's schedule has run down (lr {lr:.2e} at epoch {done} of "
                f"{base.epochs}): start from a snapshot taken mid-run (snapshot-85.pt), or set "
                "--lr"
            )
    return base.override(
        name="relabel",
        description=f"relabel training from a {base.name} snapshot at epoch {done} "
        "(REFERENCE §1.8): the snapshot's recipe, cosine without warm-up, no mixup, "
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
    from trainer.fes import FES

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
):
    """Fine-tune `snapshot` with the relabel rule; returns the TrainResult (flip statistics
    in the run folder)."""
    from trainer.train import TrainConfig, train

    state = checkpoint.load(snapshot)
    recipe = relabel_recipe(state, epochs, lr).override(**(overrides or {}))
    if recipe.mixup:
        raise ValueError("relabel training needs hard labels: mixup must be 0")
    rule = rule_for(list(state["labels"]), fes_path, relabel_threshold, fes_threshold)
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
        relabel=rule,
    )
    return train(config, resume=resume)

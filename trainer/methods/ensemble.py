"""`python -m trainer ensemble`: average several models (Auto-FERNet's ensemble).

Members are trainer checkpoints or model packages, of any family, depth or input view; their
outputs are mapped to one label order by name. Each member is run on the validation and test
splits once, in its own view (size, channels, crop, normalisation, test-time augmentation; `tta`
gives every member the same test-time views instead, e.g. ten crops where the ensemble has the
time), and the ensemble is the mean of the members' logits (`combine="logits"`, as
Auto-FERNet) or of their softmax probabilities (`combine="probs"`). Members are chosen on the
validation split only (greedy forward selection, or all of them); the test split is only
reported. The Auto-FERNet ensemble chose its checkpoints on PrivateTest and its validation loop
kept only the last model: neither happens here.

The chosen ensemble exports as one ordinary model package: a single ONNX graph that takes the
stored face (the largest square any member needs, in [0, 1]) and holds every member together
with its own crop, resize, channel conversion, normalisation and test-time views, so the app
and `evaluate` run it like any other package. Exporting needs each chosen member's torch
weights: a trainer checkpoint, or a package exported with `--torch-weights`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fer_core.zoo import INT8_TOLERANCE
from trainer.data.labels import canonical, index_map
from trainer.engine.metrics import compute
from trainer.engine.views import View, inputs
from trainer.evaluation.evaluate import Evaluation, Predictions, load_predictor, predict

COMBINE = ("logits", "probs")
SELECT = ("greedy", "all")


@dataclass
class Candidate:
    source: str
    backend: str
    labels: list[str]
    view: View
    val_top1: float
    test_top1: float


@dataclass
class EnsembleResult:
    labels: list[str]
    combine: str
    select: str
    candidates: list[Candidate]
    chosen: list[int]  # indices into candidates, in the order selection added them
    selection: list[tuple[int, float]]  # (candidate added, validation top-1 after adding it)
    val: Evaluation
    test: Evaluation
    package: Path | None = None
    card: dict = field(default_factory=dict)

    def report(self) -> str:
        lines = [f"candidates ({len(self.candidates)}), each in its own view:"]
        for i, c in enumerate(self.candidates):
            mark = "*" if i in self.chosen else " "
            lines.append(
                f" {mark} [{i}] {c.source} ({c.backend}): val top-1 {100 * c.val_top1:.2f}%"
                f", test top-1 {100 * c.test_top1:.2f}%"
            )
        steps = ", ".join(f"+[{i}] → {100 * top1:.2f}%" for i, top1 in self.selection)
        lines.append(f"selection on {self.val.split} ({self.select}): {steps}")
        lines.append(f"ensemble of {len(self.chosen)} (mean of {self.combine}):")
        lines.append("  " + self.val.report().replace("\n", "\n  "))
        lines.append("  " + self.test.report().replace("\n", "\n  "))
        return "\n".join(lines)


# ------------------------------------------------------------------------------ arithmetic


def reorder(logits: np.ndarray, member_labels: list[str], labels: list[str]) -> np.ndarray:
    """A member's logits (columns in `member_labels` order) in the ensemble's label order."""
    columns = index_map(tuple(labels), tuple(member_labels))
    if any(c is None for c in columns) or len(member_labels) != len(labels):
        raise ValueError(
            f"labels {list(member_labels)} cannot be mapped one to one onto {list(labels)}"
        )
    return np.asarray(logits)[:, columns]


def combine(member_logits: list[np.ndarray], mode: str) -> np.ndarray:
    """The ensemble's logits: the mean of the members' logits, or the log of the mean of their
    probabilities (so that a softmax of the result gives the mean probabilities)."""
    if mode not in COMBINE:
        raise ValueError(f"combine {mode!r}: use one of {', '.join(COMBINE)}")
    stacked = np.stack([np.asarray(m, dtype=np.float64) for m in member_logits])
    if mode == "logits":
        return stacked.mean(0).astype(np.float32)
    shifted = stacked - stacked.max(axis=2, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=2, keepdims=True)
    return np.log(np.maximum(probs.mean(0), 1e-12)).astype(np.float32)


def top1(logits: np.ndarray, targets: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(1) == targets).mean()) if len(targets) else 0.0


def select_members(
    member_logits: list[np.ndarray],
    targets: np.ndarray,
    mode: str,
    select: str = "greedy",
    max_members: int = 0,
) -> list[tuple[int, float]]:
    """Members chosen on validation logits: greedy forward selection (start from the best
    single member, add the member that raises validation top-1 most, stop when none does or at
    `max_members`), or all members. Returns (member, top-1 after adding it) in order."""
    if select not in SELECT:
        raise ValueError(f"select {select!r}: use one of {', '.join(SELECT)}")
    if select == "all":
        return [
            (i, top1(combine(member_logits[: i + 1], mode), targets))
            for i in range(len(member_logits))
        ]
    limit = max_members or len(member_logits)
    chosen: list[tuple[int, float]] = []
    best = -1.0
    while len(chosen) < limit:
        taken = [i for i, _ in chosen]
        trials = [
            (top1(combine([member_logits[j] for j in [*taken, i]], mode), targets), -i)
            for i in range(len(member_logits))
            if i not in taken
        ]
        if not trials:
            break
        score, neg_i = max(trials)  # ties go to the earlier member
        if score <= best:
            break
        chosen.append((-neg_i, score))
        best = score
    return chosen


# ------------------------------------------------------------------------------ the command


def ensemble(
    members: list[str | Path],
    dataset,
    *,
    mode: str = "logits",
    select: str = "greedy",
    max_members: int = 0,
    tta: str | None = None,
    threads: int = 0,
    device: str = "cpu",
) -> EnsembleResult:
    """Score every member on the validation and test splits (in its own test-time views, or
    in `tta`'s), choose on validation, and evaluate the chosen ensemble on both (metrics as
    `evaluate` gives them)."""
    if len(members) < 2:
        raise ValueError("an ensemble needs at least two members")
    if not dataset.val or not dataset.test:
        raise ValueError(f"dataset {dataset.name} needs validation and test splits")
    predictors = [load_predictor(m, device=device, threads=threads) for m in members]
    labels = list(predictors[0].labels)
    for p in predictors[1:]:
        if sorted(map(canonical, p.labels)) != sorted(map(canonical, labels)):
            raise ValueError(
                f"{p.source}: labels {p.labels} differ from {predictors[0].source}'s {labels}; "
                "ensemble members need the same classes"
            )
    runs = {
        split: [predict(p, dataset, split, tta) for p in predictors]
        for split in (dataset.val, dataset.test)
    }
    aligned = {
        split: [reorder(r.logits, p.labels, labels) for r, p in zip(rs, predictors, strict=True)]
        for split, rs in runs.items()
    }
    targets = {split: _targets(rs[0], predictors[0].labels, labels) for split, rs in runs.items()}
    candidates = [
        Candidate(
            source=p.source,
            backend=p.backend,
            labels=list(p.labels),
            view=replace(p.view, tta=tta) if tta else p.view,
            val_top1=top1(aligned[dataset.val][i], targets[dataset.val]),
            test_top1=top1(aligned[dataset.test][i], targets[dataset.test]),
        )
        for i, p in enumerate(predictors)
    ]
    selection = select_members(
        aligned[dataset.val], targets[dataset.val], mode, select, max_members
    )
    chosen = [i for i, _ in selection]

    def scored(split: str) -> Evaluation:
        first = runs[split][0]
        logits = combine([aligned[split][i] for i in chosen], mode)
        return Evaluation(
            source=f"ensemble of {len(chosen)}: " + ", ".join(str(members[i]) for i in chosen),
            backend="+".join(sorted({predictors[i].backend for i in chosen})),
            precision="fp32",
            dataset=dataset.name,
            split=first.split,
            tta=tta or "each member's own",
            left_out=first.left_out,
            seconds=sum(runs[split][i].seconds for i in chosen),
            metrics=compute(logits, targets[split], labels),
        )

    return EnsembleResult(
        labels=labels,
        combine=mode,
        select=select,
        candidates=candidates,
        chosen=chosen,
        selection=selection,
        val=scored(dataset.val),
        test=scored(dataset.test),
    )


def _targets(run: Predictions, member_labels: list[str], labels: list[str]) -> np.ndarray:
    """A run's targets (indices into the member's labels) as indices into `labels`."""
    return np.asarray(index_map(tuple(member_labels), tuple(labels)), dtype=np.int64)[run.targets]


# ------------------------------------------------------------------------------ export


class EnsembleNet(nn.Module):
    """The members in one network. Input: the stored face, N×C×S×S in [0, 1]; each member
    takes its own view of it (as `views.inputs` does for a uint8 batch), its logits are
    averaged over its test-time views and put in the ensemble's label order, and the members
    are combined as in `combine`."""

    def __init__(self, members: list[tuple[nn.Module, View, list[int]]], mode: str):
        super().__init__()
        if mode not in COMBINE:
            raise ValueError(f"combine {mode!r}: use one of {', '.join(COMBINE)}")
        self.members = nn.ModuleList(m for m, _, _ in members)
        self.views = [v for _, v, _ in members]
        for i, (_, _, order) in enumerate(members):
            self.register_buffer(f"order{i}", torch.tensor(order, dtype=torch.long))
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs = []
        for i, (model, view) in enumerate(zip(self.members, self.views, strict=True)):
            logits = torch.stack([model(v) for v in inputs(view, x)]).mean(0)
            logits = logits.index_select(1, getattr(self, f"order{i}"))
            outs.append(logits if self.mode == "logits" else torch.softmax(logits, dim=1))
        mean = torch.stack(outs).mean(0)
        return mean if self.mode == "logits" else torch.log(mean.clamp_min(1e-12))


def ensemble_view(views: list[View]) -> View:
    """The package's input: the largest stored square any member crops from, in [0, 1], with
    as many channels as the richest member."""
    side = max(round(v.size / v.crop) for v in views)
    channels = max(v.channels for v in views)
    return View(
        size=side, crop=1.0, channels=channels, scale=255.0, mean=(0.0,) * channels,
        std=(1.0,) * channels, tta="none",
    )  # fmt: skip


def torch_member(source: str | Path) -> tuple[nn.Module, View, list[str], dict, dict]:
    """(network in eval mode, its view, its labels, its architecture record, how it was
    trained) of a trainer checkpoint or of a package that holds `model.pt` (its card's view,
    test-time views included, and its card's training record)."""
    from fer_core.zoo import load_package
    from trainer.engine import checkpoint
    from trainer.export.package import train_record

    model, state = checkpoint.load_model(
        source,
        "exporting an ensemble needs each chosen member's torch weights: a trainer checkpoint, "
        "or a package exported with --torch-weights",
    )
    trained = train_record(state) if state.recipe else dict(load_package(source).card.train)
    return model, state.view, list(state.labels), state.arch, trained


def export_ensemble(
    result: EnsembleResult,
    members: list[str | Path],
    out: str | Path,
    dataset,
    *,
    name: str | None = None,
    int8: bool = False,
    int8_tolerance: float = INT8_TOLERANCE,
    threads: int = 0,
    command: str = "",
    weights: str = "fp16",
):
    """The chosen members as one model package (see the module docstring), the weights of its
    model.onnx stored as `weights` (`write_package`). Every chosen member must hold torch
    weights: a trainer checkpoint, or a package exported with `--torch-weights` (ONNX alone
    cannot be put back into one torch graph)."""
    from trainer.export.package import PackageIdentity, write_package

    parts, archs, trained = [], [], []
    for i in result.chosen:
        model, _, labels, arch, record = torch_member(members[i])
        trained.append(record)
        view = result.candidates[i].view  # the views it was scored in
        parts.append((model, view, index_map(tuple(result.labels), tuple(labels))))
        archs.append({"source": str(members[i]), "arch": arch, "view": view.to_dict()})
    net = EnsembleNet(parts, result.combine).eval()
    view = ensemble_view([v for _, v, _ in parts])
    chosen = [result.candidates[i] for i in result.chosen]
    identity = PackageIdentity(
        name=name or Path(out).name,
        family="ensemble",
        labels=list(result.labels),
        architecture={"ensemble": archs, "combine": result.combine},
        train={
            "dataset": dataset.name,
            "command": command,
            "members": [c.source for c in chosen],
            "selected_on": f"{result.val.split} top-1 ({result.select} selection)",
            "member_val_top1": [round(c.val_top1, 6) for c in chosen],
            "member_train": trained,  # each member's command, epochs, seed, wall time, teacher
            "seed": None,
        },
    )
    return write_package(
        net,
        view,
        identity,
        out,
        dataset,
        int8=int8,
        int8_tolerance=int8_tolerance,
        threads=threads,
        weights=weights,
    )

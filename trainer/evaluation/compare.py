"""`python -m trainer compare`: training runs side by side, from their `metrics.csv`: a table of
what each reached and their validation curves in one picture.

Runs whose folder names differ only in a trailing `-s<seed>` (`probe-s0`, `probe-s1`) form one
group: the table gives the mean and the range over seeds, the plot the mean curve with the
range as a band. A study of what makes a network learn (the ZenNet learnability study in
trainer/README.md) is read this way: one row per variant, seeds folded in.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from trainer.engine.checkpoint import EpochRow
from trainer.evaluation.table import render

_SEED = re.compile(r"-s\d+$")


def read_history(run: str | Path) -> list[EpochRow]:
    """A run folder's (or a metrics.csv file's) epochs; errors name the file and line."""
    path = Path(run)
    path = path / "metrics.csv" if path.is_dir() else path
    if not path.is_file():
        raise ValueError(f"{run}: no metrics.csv; expected a run folder written by `train`")
    names = [f.name for f in fields(EpochRow)]
    rows = []
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = set(names) - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: line 1: missing columns {', '.join(sorted(missing))}")
        for line, record in enumerate(reader, start=2):
            try:
                rows.append(
                    EpochRow(**{n: (int if n == "epoch" else float)(record[n]) for n in names})
                )
            except (TypeError, ValueError):
                raise ValueError(f"{path}: line {line}: expected numbers in every column") from None
    if not rows:
        raise ValueError(f"{path}: no epochs recorded yet")
    return rows


@dataclass(frozen=True)
class Group:
    """Runs of one variant (seeds); the figures are per run, in the order given."""

    name: str
    runs: tuple[str, ...]
    histories: tuple[tuple[EpochRow, ...], ...]

    @property
    def epochs(self) -> int:
        return min(len(h) for h in self.histories)

    def final(self, field: str) -> list[float]:
        """The field at the last epoch all runs reached."""
        return [getattr(h[self.epochs - 1], field) for h in self.histories]

    def best_val(self) -> list[float]:
        return [max(r.val_top1 for r in h[: self.epochs]) for h in self.histories]

    def curve(self, field: str) -> np.ndarray:
        """(runs, epochs) array of the field over the shared epochs."""
        return np.array([[getattr(r, field) for r in h[: self.epochs]] for h in self.histories])

    def minutes(self) -> list[float]:
        return [sum(r.seconds for r in h[: self.epochs]) / 60 for h in self.histories]


def group_runs(runs: list[str], by_seed: bool = True) -> list[Group]:
    """One group per variant, in the order of first appearance."""
    order: dict[str, list[str]] = {}
    for run in runs:
        name = Path(run).name if Path(run).is_dir() else Path(run).parent.name
        key = _SEED.sub("", name) if by_seed else name
        order.setdefault(key, []).append(run)
    return [
        Group(key, tuple(members), tuple(tuple(read_history(m)) for m in members))
        for key, members in order.items()
    ]


def _spread(values: list[float], scale: float = 100.0, digits: int = 1) -> str:
    mean = f"{scale * np.mean(values):.{digits}f}"
    if len(values) == 1:
        return mean
    return f"{mean} ({scale * min(values):.{digits}f}–{scale * max(values):.{digits}f})"


def format_table(groups: list[Group]) -> str:
    header = ("run", "seeds", "epochs", "val top-1 %", "best val %", "train top-1 %", "minutes")
    rows = [
        (
            g.name,
            str(len(g.runs)),
            str(g.epochs),
            _spread(g.final("val_top1")),
            _spread(g.best_val()),
            _spread(g.final("train_top1")),
            _spread(g.minutes(), scale=1.0, digits=0),
        )
        for g in groups
    ]
    return render(header, rows, "lrrrrrr")


def plot_curves(groups: list[Group], path: str | Path) -> Path:
    """Validation and training top-1 per epoch, one line per group (mean over seeds, the
    range shaded)."""
    from trainer.evaluation.plots import _figure, _save, _whole_epochs

    plt, fig, axes = _figure(1, 2, figsize=(11, 4.2), sharey=True)
    # matplotlib's default cycle repeats after 10 colours; tab20 keeps up to 20 groups apart
    colours = plt.get_cmap("tab10" if len(groups) <= 10 else "tab20").colors
    for ax, field, title in zip(
        axes, ("val_top1", "train_top1"), ("validation", "training (augmented)"), strict=True
    ):
        for i, g in enumerate(groups):
            curve = 100 * g.curve(field)
            epochs = np.arange(1, g.epochs + 1)
            colour = colours[i % len(colours)]
            label = f"{g.name} (×{len(g.runs)})"
            ax.plot(epochs, curve.mean(axis=0), marker="o", ms=3, color=colour, label=label)
            if len(g.runs) > 1:
                ax.fill_between(
                    epochs, curve.min(axis=0), curve.max(axis=0), color=colour, alpha=0.2
                )
        ax.set(xlabel="epoch", title=title)
        ax.grid(alpha=0.3)
        _whole_epochs(ax)
    axes[0].set_ylabel("top-1 %")
    axes[1].legend(fontsize=7, loc="lower right")
    return _save(plt, fig, path)

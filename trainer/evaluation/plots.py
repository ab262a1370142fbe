"""Pictures of results: training curves, confusion matrices, saliency maps (matplotlib, Agg),
each written atomically."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainer.engine.callbacks import Callback


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, *plt.subplots(*args, **kwargs)


def _save(plt, fig, path: str | Path) -> Path:
    from trainer.files import atomic_write

    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return out


def training_curves(
    history: Sequence, path: str | Path, more: dict[str, list[tuple[int, float]]] | None = None
) -> Path:
    """Loss and top-1 per epoch, training (augmented batches) against validation, and the top-1
    lines in `more` ({label: [(epoch, top-1)]}) beside them."""
    plt, fig, (ax_loss, ax_acc) = _figure(1, 2, figsize=(10, 4))
    epochs = [r.epoch for r in history]
    dots = {"marker": "o", "markersize": 4}  # a one-epoch run is a point: a line alone is blank
    ax_loss.plot(epochs, [r.train_loss for r in history], label="train", **dots)
    ax_loss.plot(epochs, [r.val_loss for r in history], label="validation", **dots)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.plot(epochs, [100 * r.train_top1 for r in history], label="train (augmented)", **dots)
    ax_acc.plot(epochs, [100 * r.val_top1 for r in history], label="validation", **dots)
    for label, points in (more or {}).items():
        ax_acc.plot([e for e, _ in points], [100 * t for _, t in points], label=label, **dots)
    ax_acc.set(xlabel="epoch", ylabel="top-1 %", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        _whole_epochs(ax)
    return _save(plt, fig, path)


def _whole_epochs(ax) -> None:
    """Epoch ticks at whole numbers (short runs otherwise get 1.25, 1.5, ..., one epoch 0.99)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def confusion(
    matrix: Sequence[Sequence[int]], labels: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Row-normalised confusion matrix (true class per row) with counts and percentages."""
    m = np.asarray(matrix, dtype=np.float64)
    rows = m / np.maximum(m.sum(1, keepdims=True), 1)
    cells = [
        [f"{100 * rows[i, j]:.0f}%\n{int(m[i, j])}" for j in range(len(m))] for i in range(len(m))
    ]
    return heatmap(rows, labels, labels, path, title, cells, ("predicted", "true"), vmax=1.0)


def heatmap(
    values: np.ndarray,
    rows: Sequence[str],
    columns: Sequence[str],
    path: str | Path,
    title: str,
    cells: Sequence[Sequence[str]],
    axes: tuple[str, str] = ("", ""),
    vmax: float | None = None,
    cmap: str = "Blues",
) -> Path:
    """A matrix as a coloured grid with the text of each cell written on it."""
    plt, fig, ax = _figure(figsize=(1.0 * len(columns) + 2.5, 0.9 * len(rows) + 2))
    _grid(fig, ax, values, rows, columns, cells, vmax, cmap)
    ax.set(xlabel=axes[0], ylabel=axes[1], title=title)
    return _save(plt, fig, path)


def _grid(fig, ax, values, rows, columns, cells, vmax: float | None, cmap: str) -> None:
    values = np.asarray(values, dtype=np.float64)
    top = vmax if vmax is not None else max(float(values.max()), 1e-12)
    image = ax.imshow(values, cmap=cmap, vmin=0, vmax=top)
    ax.set_xticks(range(len(columns)), columns, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(columns)):
            colour = "white" if values[i, j] > 0.5 * top else "black"
            ax.text(j, i, cells[i][j], ha="center", va="center", fontsize=7, color=colour)
    fig.colorbar(image, ax=ax, fraction=0.046)


def saliency_grid(
    images: Sequence[np.ndarray],
    maps: Sequence[np.ndarray],
    titles: Sequence[str],
    path: str | Path,
) -> Path:
    """Each face beside its saliency map and the two overlaid."""
    n = len(images)
    plt, fig, axes = _figure(n, 3, figsize=(6.5, 2.2 * n), squeeze=False)
    for row, (image, sal, title) in enumerate(zip(images, maps, titles, strict=True)):
        grey = image if image.ndim == 2 else image.mean(-1)
        axes[row, 0].imshow(grey, cmap="gray")
        axes[row, 0].set_title(title, fontsize=8)
        axes[row, 1].imshow(sal, cmap="hot", vmin=0, vmax=1)
        axes[row, 1].set_title("saliency", fontsize=8)
        axes[row, 2].imshow(grey, cmap="gray")
        axes[row, 2].imshow(sal, cmap="hot", alpha=0.5, vmin=0, vmax=1)
        for ax in axes[row]:
            ax.axis("off")
    return _save(plt, fig, path)


def flips_figure(
    per_epoch: Sequence[int], total: np.ndarray, labels: Sequence[str], path: str | Path
) -> Path:
    """Relabel training: label flips per epoch, and all flips by (from, to) class pair."""
    plt, fig, (ax_line, ax_grid) = _figure(1, 2, figsize=(12, 4.8))
    ax_line.plot(range(1, len(per_epoch) + 1), per_epoch, marker="o", markersize=3)
    ax_line.set(xlabel="epoch", ylabel="labels flipped", title="flips per epoch")
    _whole_epochs(ax_line)
    ax_line.grid(alpha=0.3)
    total = np.asarray(total)
    cells = [[str(int(c)) if c else "" for c in row] for row in total]
    _grid(fig, ax_grid, total, labels, labels, cells, max(int(total.max()), 1), "Purples")
    ax_grid.set(xlabel="trained as", ylabel="dataset label", title="flips, all epochs")
    return _save(plt, fig, path)


class Curves(Callback):
    """`curves.png` in the run folder, redrawn after every epoch with the figures the other
    callbacks measure (listed after them, it sees this epoch's)."""

    def on_epoch_end(self, run, row, ckpt) -> None:
        if run.is_main:  # several processes: rank 0 writes the run folder
            more = {k: v for cb in run.callbacks for k, v in cb.curves().items()}
            training_curves(run.history, run.out / "curves.png", more)

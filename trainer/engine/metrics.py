"""Classification metrics from logits: top-1, top-2, macro-F1, per-class recall and the
confusion matrix (rows = true class, columns = predicted), with label names attached."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Metrics:
    labels: list[str]
    n: int
    top1: float
    top2: float
    macro_f1: float
    recall: dict[str, float]
    confusion: list[list[int]]
    loss: float | None = None

    def summary(self) -> str:
        loss = "" if self.loss is None else f"  loss {self.loss:.4f}"
        return (
            f"top-1 {100 * self.top1:.2f}%  top-2 {100 * self.top2:.2f}%  "
            f"macro-F1 {100 * self.macro_f1:.2f}%  (n={self.n}){loss}"
        )


def confusion_matrix(targets: np.ndarray, predictions: np.ndarray, classes: int) -> np.ndarray:
    return np.bincount(targets * classes + predictions, minlength=classes * classes).reshape(
        classes, classes
    )


def from_confusion(confusion: np.ndarray, labels: list[str]) -> tuple[float, float, dict]:
    """(top-1, macro-F1, per-class recall) of a confusion matrix; a class with no samples and no
    predictions counts F1 = 0 only if it has samples (absent classes are left out of the mean)."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    support = confusion.sum(1)
    predicted = confusion.sum(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        recall = np.where(support > 0, tp / support, 0.0)
        precision = np.where(predicted > 0, tp / predicted, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = support > 0
    macro_f1 = float(f1[present].mean()) if present.any() else 0.0
    top1 = float(tp.sum() / confusion.sum()) if confusion.sum() else 0.0
    return top1, macro_f1, dict(zip(labels, recall.round(6).tolist(), strict=True))


def compute(
    logits: np.ndarray,
    targets: np.ndarray,
    labels: list[str] | tuple[str, ...],
    loss: float | None = None,
) -> Metrics:
    logits = np.asarray(logits)
    targets = np.asarray(targets, dtype=np.int64)
    labels = list(labels)
    if logits.ndim != 2 or logits.shape[1] != len(labels):
        raise ValueError(f"logits of shape {logits.shape} for {len(labels)} labels")
    order = np.argsort(-logits, axis=1)
    confusion = confusion_matrix(targets, order[:, 0], len(labels))
    top1, macro_f1, recall = from_confusion(confusion, labels)
    top2 = float((order[:, :2] == targets[:, None]).any(1).mean()) if len(targets) else 0.0
    return Metrics(
        labels=labels,
        n=len(targets),
        top1=top1,
        top2=top2,
        macro_f1=macro_f1,
        recall=recall,
        confusion=confusion.tolist(),
        loss=loss,
    )

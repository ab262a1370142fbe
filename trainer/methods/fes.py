"""`python -m trainer fes`: the Facial Expression Similarity matrix of Auto-FERNet
from the FER+ votes, in FER2013 class order by name.

For classes i ≠ j, over all N vote rows (N = 35,887 for `fer2013new.csv`):

    FES[i][j] = (1/N) · Σ_images 1[v_i > 0 ∧ v_j > 0] · min(v_i, v_j) / max(v_i, v_j)

and FES[i][i] = 1. Two expressions are similar when raters often split their votes between them
on the same face. The FER+ columns are read by name (FER+ lists neutral first, FER2013 angry
first); the Auto-FERNet repository's `FES.txt` prints the matrix under FER+ row labels, which is
the order trap this module avoids. Relabel training reads the JSON this writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trainer.data import labels as L
from trainer.data.core import DataError

VOTE_USAGE = "Usage"


@dataclass(frozen=True)
class FES:
    labels: tuple[str, ...]
    matrix: np.ndarray  # len(labels) × len(labels), symmetric, ones on the diagonal
    images: int  # vote rows the matrix averages over
    source: str = ""

    def value(self, a: str, b: str) -> float:
        where = {L.canonical(n): i for i, n in enumerate(self.labels)}
        return float(self.matrix[where[L.canonical(a)], where[L.canonical(b)]])

    def in_order(self, labels: tuple[str, ...] | list[str]) -> np.ndarray:
        """The matrix rearranged for `labels` (a model's output order), by name; a class the
        matrix lacks (e.g. contempt) is similar to nothing but itself."""
        index = L.index_map(tuple(labels), self.labels)
        out = np.eye(len(labels))
        for a, i in enumerate(index):
            for b, j in enumerate(index):
                if i is not None and j is not None:
                    out[a, b] = self.matrix[i, j]
        return out

    def pairs_above(self, threshold: float) -> list[tuple[str, str, float]]:
        """The class pairs (i < j) whose similarity exceeds `threshold`: the flips relabel
        training allows at that FES threshold."""
        n = len(self.labels)
        return [
            (self.labels[i], self.labels[j], float(self.matrix[i, j]))
            for i in range(n)
            for j in range(i + 1, n)
            if self.matrix[i, j] > threshold
        ]

    def to_dict(self) -> dict:
        return {
            "labels": list(self.labels),
            "matrix": np.round(self.matrix, 8).tolist(),
            "images": self.images,
            "source": self.source,
            "formula": "FES[i][j] = mean over vote rows of 1[v_i>0 and v_j>0]*min/max; "
            "FES[i][i] = 1",
        }

    @classmethod
    def load(cls, path: str | Path) -> FES:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: FES file not found (make one: python -m trainer fes)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: line {err.lineno}: not valid JSON ({err.msg})") from None
        for key in ("labels", "matrix"):
            if key not in data:
                raise ValueError(f"{path}: field {key!r} is missing; expected labels and matrix")
        matrix = np.asarray(data["matrix"], dtype=np.float64)
        n = len(data["labels"])
        if matrix.shape != (n, n):
            shape = "×".join(map(str, matrix.shape))
            raise ValueError(f"{path}: field 'matrix' is {shape}, expected {n}×{n} for {n} labels")
        labels = tuple(L.canonical(name) for name in data["labels"])
        return cls(labels, matrix, int(data.get("images", 0)), str(path))


def read_votes(path: str | Path) -> tuple[np.ndarray, tuple[str, ...]]:
    """The vote counts of a FER+ `fer2013new.csv` for the seven FER2013 expressions, one row per
    image in file order (N × 7, columns in FER2013 order), and those labels."""
    from trainer.data.fer2013 import FERPLUS_EMOTIONS, csv_rows

    path = Path(path)
    columns = FERPLUS_EMOTIONS[:7]  # contempt has no FER2013 class
    order = [columns[i] for i in L.index_map(L.FER2013, tuple(columns))]
    rows = []
    for line, row in csv_rows(path, (VOTE_USAGE, *FERPLUS_EMOTIONS)):
        try:
            votes = [float(row[c]) for c in order]
        except (TypeError, ValueError):
            bad = next(c for c in order if not _is_number(row[c]))
            raise DataError(
                f"{path}:{line}: column {bad!r} holds {row[bad]!r}, expected a vote count"
            ) from None
        if min(votes) < 0:
            raise DataError(f"{path}:{line}: vote counts must not be negative")
        rows.append(votes)
    if not rows:
        raise DataError(f"{path}: no vote rows")
    return np.asarray(rows, dtype=np.float64), L.FER2013


def _is_number(text: str | None) -> bool:
    try:
        float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
    return True


def compute_fes(votes: np.ndarray, labels: tuple[str, ...], source: str = "") -> FES:
    """FES from an N × K array of vote counts (column k for `labels[k]`)."""
    votes = np.asarray(votes, dtype=np.float64)
    n, k = votes.shape
    matrix = np.eye(k)
    for i in range(k):
        for j in range(i + 1, k):
            a, b = votes[:, i], votes[:, j]
            both = (a > 0) & (b > 0)
            ratio = np.minimum(a, b)[both] / np.maximum(a, b)[both]
            matrix[i, j] = matrix[j, i] = ratio.sum() / n
    return FES(tuple(labels), matrix, n, source)


def fes_from_votes(path: str | Path) -> FES:
    votes, labels = read_votes(path)
    return compute_fes(votes, labels, str(path))


def write_fes(fes: FES, out: str | Path, threshold: float = 0.03) -> dict[str, Path | None]:
    """`out` (JSON) and a heat-map PNG beside it (same name, `.png`), both written atomically;
    pairs above `threshold` are outlined in the picture's title. For a device or a FIFO `out`
    (`/dev/stdout`) the JSON is written through and no picture is made (`png`: None): the name
    beside it (`/dev/stdout.png`) is no place for a file."""
    from fer_core.outputs import is_special
    from trainer.evaluation.plots import heatmap
    from trainer.files import atomic_write

    out = Path(out)
    text = json.dumps(fes.to_dict(), indent=2) + "\n"
    files: dict[str, Path | None] = {
        "json": atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    }
    if is_special(out):
        files["png"] = None
        return files
    shown = fes.matrix - np.eye(len(fes.labels))  # the diagonal (1) would wash out the colours
    cells = [
        ["1" if i == j else f"{fes.matrix[i, j]:.4f}" for j in range(len(fes.labels))]
        for i in range(len(fes.labels))
    ]
    title = (
        f"FES from {fes.images} FER+ vote rows; "
        f"{len(fes.pairs_above(threshold))} pairs > {threshold}"
    )
    files["png"] = heatmap(
        shown, fes.labels, fes.labels, out.with_suffix(".png"), title, cells, cmap="Oranges"
    )
    return files

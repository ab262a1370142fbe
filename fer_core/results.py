"""What the recognizer says about a frame: `FrameResult` holding one `FaceResult` per face.

Also the one flat form every front end writes (the headless `analyze` CSV / JSON lines, the
app's recording): one row per face per frame with the columns `frame, time_s, face_id, x, y, w,
h, label, score, held, profile` and then `p_<label>` per class in the model's order, optionally
followed by MediaPipe's 52 blendshape scores as `bs_<name>` (empty where the landmarker found
no face in the box). Frames without faces give no row.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fer_core.blendshapes import BLENDSHAPES
from fer_core.outputs import OutputFile, write_failed

# held: 1 when the detector missed the face in this frame and it is kept at its last place;
# profile: the name of the personal profile the face was read with (`fer_core.profile`), or empty
BASE_COLUMNS = (
    "frame", "time_s", "face_id", "x", "y", "w", "h", "label", "score", "held", "profile",
)  # fmt: skip


@dataclass(frozen=True)
class FaceResult:
    track_id: int
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels
    probs: dict[str, float]  # smoothed probabilities by label name, the model's order
    raw_probs: dict[str, float]  # this frame's probabilities, before smoothing
    label: str  # the smoothed top label, or "uncertain" below the threshold
    score: float  # the smoothed top probability
    detection_score: float = 1.0
    landmarks: np.ndarray | None = None  # (points, 2) frame pixels, when the landmarker ran
    blendshapes: dict[str, float] | None = None  # MediaPipe's 52 scores, when available
    # the expression being taught to this face and how far (0-1), or None
    teaching: tuple[str, float] | None = None
    # the name of the profile this face is read with (`probs` corrected by it; `raw_probs`
    # stay the model's own), or None
    profile: str | None = None
    held: bool = False  # missed by the detector in this frame: kept at its last place


@dataclass(frozen=True)
class FrameResult:
    index: int  # frame number in its source, from 0
    time_s: float  # the frame's time in its source (video position, or since capture start)
    width: int
    height: int
    faces: tuple[FaceResult, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)  # stage → milliseconds


def columns(labels: Sequence[str], blendshapes: bool = False) -> list[str]:
    shapes = [f"bs_{name}" for name in BLENDSHAPES] if blendshapes else []
    return [*BASE_COLUMNS, *(f"p_{label.lower()}" for label in labels), *shapes]


def rows(
    frame: FrameResult, labels: Sequence[str], blendshapes: bool = False
) -> list[dict[str, Any]]:
    """The frame's faces as flat records, keyed by `columns(labels, blendshapes)`."""
    out = []
    for face in frame.faces:
        x, y, w, h = (int(v) for v in face.box)
        row: dict[str, Any] = {
            "frame": frame.index,
            "time_s": round(frame.time_s, 4),
            "face_id": face.track_id,
            "x": x,
            "y": y,
            "w": w,
            "h": h,
            "label": face.label,
            "score": round(float(face.score), 5),
            "held": int(face.held),
            "profile": face.profile or "",
        }
        for label in labels:
            row[f"p_{label.lower()}"] = round(float(face.probs[label]), 5)
        if blendshapes:
            scores = face.blendshapes or {}
            for name in BLENDSHAPES:
                score = scores.get(name)
                row[f"bs_{name}"] = None if score is None else round(score, 5)
        out.append(row)
    return out


class FaceLog:
    """Writes face rows as CSV (`.csv`) or JSON lines (any other suffix, e.g. `.jsonl`).

    Rows go to a partial file of this run's own (`<path>.<pid>-<token>.partial`) and the file
    takes its name only on `close()`, so an interrupted or failed run never leaves a truncated
    file under the final name; `discard()` (and leaving a `with` block by an error) removes the
    partial file. Devices and FIFOs are written through (`fer_core.outputs`)."""

    def __init__(
        self,
        path: str | Path,
        labels: Sequence[str],
        fmt: str | None = None,
        blendshapes: bool = False,
    ):
        self.path = Path(path)
        self.labels = list(labels)
        self.blendshapes = blendshapes
        self.format = fmt or ("csv" if self.path.suffix.lower() == ".csv" else "jsonl")
        if self.format not in ("csv", "jsonl"):
            raise ValueError(f"{self.path}: face log format {self.format!r}, expected csv or jsonl")
        self.out = OutputFile(self.path)
        self.partial = self.out.partial
        self._file: io.TextIOWrapper | None = io.TextIOWrapper(
            self.out.stream, encoding="utf-8", newline="", write_through=False
        )
        self._csv = None
        if self.format == "csv":
            self._csv = csv.DictWriter(self._file, fieldnames=columns(self.labels, blendshapes))
            self._csv.writeheader()
        self.count = 0

    def write(self, frame: FrameResult) -> None:
        if self._file is None:
            raise ValueError(f"{self.path}: the face log is closed")
        try:
            for row in rows(frame, self.labels, self.blendshapes):
                if self._csv is not None:
                    self._csv.writerow(row)
                else:
                    self._file.write(json.dumps(row) + "\n")
                self.count += 1
        except OSError as error:
            self.discard()
            raise write_failed(self.path, error) from None

    def close(self) -> None:
        """Flush to disk and give the file its final name (a full disk raises OSError)."""
        if self._file is None:
            return
        file, self._file = self._file, None
        try:
            file.flush()
        except OSError as error:
            self.out.discard()
            raise write_failed(self.path, error) from None
        file.detach()
        self.out.commit()

    def discard(self) -> None:
        """Drop the partial file (the run failed or was interrupted)."""
        if self._file is not None:
            self.out.discard()  # closes the file under the text layer: nothing more is flushed
            self._file = None

    def __enter__(self) -> FaceLog:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

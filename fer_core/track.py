"""Stable face ids across frames and temporal smoothing of their class probabilities.

Each frame, `Tracker.update(boxes, probs)` matches the detected faces to the live tracks by box
overlap (greedy, best IoU first; a face that moved further than its boxes overlap still matches
when its centre stays within half a face of the track's), smooths each track's probabilities
(EMA, a moving window, or none) and names the label only when the smoothed top probability
reaches the threshold; below it the label is `UNCERTAIN`. A track that misses `max_missing`
frames in a row ends; ids are never reused, so a face that leaves and comes back is a new id.
The faces new in a frame get their ids in reading order: left to right, row by row from the top.

Boxes are (x, y, w, h) in pixels; probabilities are rows in the model's label order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

UNCERTAIN = "uncertain"


@dataclass(frozen=True)
class TrackerOptions:
    smoothing: str = "ema"  # a key of SMOOTHERS
    alpha: float = 0.4  # EMA: weight of the newest frame
    window: int = 8  # window: frames averaged
    threshold: float = 0.4  # smoothed top probability needed to name a label
    max_missing: int = 10  # frames a track survives without a matching face
    # frames a face the detector misses is still reported at its last place: small faces are
    # missed now and then, and their boxes would flicker (the Recognizer does the holding)
    hold: int = 2
    min_iou: float = 0.3  # box overlap that counts as the same face

    def __post_init__(self) -> None:
        if self.smoothing not in SMOOTHERS:
            raise ValueError(
                f"smoothing {self.smoothing!r}: expected one of {', '.join(SMOOTHERS)}"
            )
        checks = {
            "alpha": 0 < self.alpha <= 1,
            "window": self.window >= 1,
            "threshold": 0 <= self.threshold <= 1,
            "max_missing": self.max_missing >= 0,
            "hold": 0 <= self.hold <= self.max_missing,
            "min_iou": 0 < self.min_iou <= 1,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(
                f"tracker option {bad[0]}={getattr(self, bad[0])!r} is out of range "
                "(alpha and min_iou in (0, 1], window ≥ 1, threshold in [0, 1], max_missing ≥ 0, "
                "0 ≤ hold ≤ max_missing)"
            )


class Ema:
    """s ← α·p + (1 − α)·s, starting at the first frame's p."""

    def __init__(self, options: TrackerOptions):
        self.alpha = options.alpha
        self.state: np.ndarray | None = None

    def update(self, probs: np.ndarray) -> np.ndarray:
        if self.state is None:
            self.state = probs.copy()
        else:
            self.state = self.alpha * probs + (1 - self.alpha) * self.state
        return self.state


class Window:
    """The mean of the last `window` frames (fewer while the track is young)."""

    def __init__(self, options: TrackerOptions):
        self.frames: deque[np.ndarray] = deque(maxlen=options.window)

    def update(self, probs: np.ndarray) -> np.ndarray:
        self.frames.append(probs.copy())
        return np.mean(self.frames, axis=0)


class Raw:
    """No smoothing: each frame's probabilities as they are."""

    def __init__(self, options: TrackerOptions):
        pass

    def update(self, probs: np.ndarray) -> np.ndarray:
        return probs.copy()


SMOOTHERS: dict[str, Callable[[TrackerOptions], Ema | Window | Raw]] = {
    "ema": Ema,
    "window": Window,
    "none": Raw,
}


@dataclass
class Track:
    id: int
    box: np.ndarray  # x, y, w, h of the last matched face
    smoother: Ema | Window | Raw
    missing: int = 0  # frames in a row without a match
    age: int = 0  # frames matched


@dataclass(frozen=True)
class TrackedFace:
    """One input face after tracking, in the order the faces were given."""

    track_id: int
    smoothed: np.ndarray  # smoothed probabilities, the model's label order
    label: str  # the smoothed top label, or UNCERTAIN below the threshold
    score: float  # the smoothed top probability


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of (N, 4) and (M, 4) x, y, w, h boxes → (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax2, ay2 = a[:, 0] + a[:, 2], a[:, 1] + a[:, 3]
    bx2, by2 = b[:, 0] + b[:, 2], b[:, 1] + b[:, 3]
    w = np.minimum(ax2[:, None], bx2[None]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(ay2[:, None], by2[None]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(w, 0, None) * np.clip(h, 0, None)
    union = (a[:, 2] * a[:, 3])[:, None] + (b[:, 2] * b[:, 3])[None] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _near(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(N, M): the centres lie within half the larger face side of each other."""
    ca = a[:, :2] + a[:, 2:] / 2
    cb = b[:, :2] + b[:, 2:] / 2
    distance = np.linalg.norm(ca[:, None] - cb[None], axis=2)
    side = np.maximum(a[:, None, 2:].max(axis=2), b[None, :, 2:].max(axis=2))
    return distance < side / 2


def _reading_order(boxes: np.ndarray, faces: list[int]) -> list[int]:
    """`faces` (indices into boxes) in reading order: rows top to bottom, each left to right.
    A row is the topmost face left and every face whose centre lies within half its height
    of that face's centre, so faces side by side at slightly different heights share a row."""
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    rest = sorted(faces, key=lambda i: centres[i, 1])
    order: list[int] = []
    while rest:
        top = rest[0]
        row = [i for i in rest if abs(centres[i, 1] - centres[top, 1]) < boxes[top, 3] / 2]
        order += sorted(row, key=lambda i: centres[i, 0])
        rest = [i for i in rest if i not in row]
    return order


class Tracker:
    def __init__(self, labels: Sequence[str], options: TrackerOptions | None = None):
        self.labels = list(labels)
        self.options = options or TrackerOptions()
        self.tracks: list[Track] = []
        self._next_id = 1

    @property
    def next_id(self) -> int:
        """The id the next new face will get."""
        return self._next_id

    def reset(self) -> None:
        """Forget every track (a new source); ids keep counting up."""
        self.tracks = []

    def update(
        self,
        boxes: np.ndarray,
        probs: np.ndarray,
        adjust: Callable[[list[int], np.ndarray], np.ndarray] | None = None,
    ) -> list[TrackedFace]:
        """Match this frame's faces to the tracks, smooth, and label them (input order).
        `adjust(track_ids, probs)`, when given, corrects the faces' probabilities (rows in
        input order) before they are smoothed (personal profiles, `fer_core.profile`)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        probs = np.asarray(probs, dtype=np.float64).reshape(len(boxes), -1 if len(boxes) else 0)
        if len(boxes) and probs.shape[1] != len(self.labels):
            raise ValueError(
                f"{probs.shape[1]} probabilities per face, expected {len(self.labels)} "
                f"({', '.join(self.labels)})"
            )
        matched = self._match(boxes)
        matched_ids = {t.id for t in matched.values()}
        for track in self.tracks:
            if track.id not in matched_ids:
                track.missing += 1
        self.tracks = [t for t in self.tracks if t.missing <= self.options.max_missing]
        # new faces get their ids in reading order, not in the detector's: the faces of a first
        # frame read #1, #2, … across the picture
        for i in _reading_order(boxes, [i for i in range(len(boxes)) if i not in matched]):
            smoother = SMOOTHERS[self.options.smoothing](self.options)
            matched[i] = Track(self._next_id, boxes[i], smoother)
            self._next_id += 1
            self.tracks.append(matched[i])
        if adjust is not None and len(boxes):
            probs = adjust([matched[i].id for i in range(len(boxes))], probs)
        results = []
        for i, box in enumerate(boxes):
            track = matched[i]
            track.box, track.missing = box, 0
            track.age += 1
            smoothed = track.smoother.update(probs[i])
            top = int(np.argmax(smoothed))
            score = float(smoothed[top])
            label = self.labels[top] if score >= self.options.threshold else UNCERTAIN
            results.append(TrackedFace(track.id, smoothed.copy(), label, score))
        return results

    def unmatched(self, boxes: np.ndarray) -> list[int]:
        """Ids of the live tracks that no face in `boxes` would match (nothing changes)."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        matched = {track.id for track in self._match(boxes).values()}
        return [t.id for t in self.tracks if t.id not in matched]

    def _match(self, boxes: np.ndarray) -> dict[int, Track]:
        """Greedy assignment, best overlap first: face index → track."""
        if not self.tracks or not len(boxes):
            return {}
        old = np.stack([t.box for t in self.tracks])
        overlap = iou(boxes, old)
        # a face whose box no longer overlaps enough still matches when its centre is close:
        # rank such pairs just below every real overlap match
        score = np.where(overlap >= self.options.min_iou, overlap + 1.0, 0.0)
        score = np.where((score == 0) & _near(boxes, old), 0.5, score)
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for flat in np.argsort(-score, axis=None):
            face, track = (int(v) for v in np.unravel_index(flat, score.shape))
            if score[face, track] <= 0:
                break
            if face in matched or track in used:
                continue
            matched[face] = self.tracks[track]
            used.add(track)
        return matched

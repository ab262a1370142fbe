"""Small faces, looked at again magnified.

The full-range detector sees every frame squeezed into 192 × 192 pixels: in a 640 × 480 frame a
face 40 px wide becomes 12 px there, and it is found in only about four frames out of five
(measured with `python -m app benchmark`). Two cheap passes make up for that, each one more
detector run on a picture built for it:

* **revisit** (every frame where it is needed): the small faces of the last frames that the
  full-frame pass missed now are cut out (a square `ROI` times the face) and laid side by side
  in a `GRID` × `GRID` mosaic of `CELL`-pixel cells, where each face is about 26 px of the
  detector's input: one run finds up to nine of them again;
* **sweep** (one frame in `SWEEP_EVERY`): one of four overlapping quarter-frame tiles, in turn,
  at about twice the full frame's scale, so a small face that was never found (someone far
  away walking in) is found within `4 × SWEEP_EVERY` frames; the first frame (of a video, a
  photo, a new frame size) is swept whole.

A face found by either is new when its centre lies in no face already found. A new face of a
sweep (never seen, or lost) must also pass `verify` before it counts: at twice the frame's scale
the full-range detector also finds face-like patterns (a collar, a pattern on a sleeve) that it
scores as low as real distant faces, so the sweep alone cannot tell them apart. Small faces are
remembered for `MEMORY` frames after they were last found; a change of frame size forgets them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fer_core.geometry import warp

SMALL = 0.1  # a face is small below this fraction of the frame's long side (64 px at 640)
ROI, CELL, GRID = 2.5, 64, 3  # revisit: face-to-cell ratio, cell pixels, cells a side
MEMORY = 3  # frames a small face is looked for after it was last found
SWEEP_EVERY = 8  # frames between two sweep tiles
TILE = 0.55  # a sweep tile's side as a fraction of the frame's (2 × 2 tiles, overlapping)
BACKGROUND = 110  # grey of the mosaic's empty cells


@dataclass(frozen=True)
class Detection:
    """A detection in some picture's pixels (floats, unclipped)."""

    box: np.ndarray  # x, y, w, h
    score: float
    eyes: np.ndarray  # (2, 2)

    @property
    def centre(self) -> np.ndarray:
        return self.box[:2] + self.box[2:] / 2

    def mapped(self, scale: float, at: np.ndarray, origin: np.ndarray) -> Detection:
        """The detection in frame pixels, for a picture whose point p shows frame point
        origin + (p − at) / scale."""
        box = np.concatenate([origin + (self.box[:2] - at) / scale, self.box[2:] / scale])
        return Detection(box, self.score, origin + (self.eyes - at) / scale)


Detect = Callable[[np.ndarray], list[Detection]]  # an RGB picture → its detections
Verify = Callable[[np.ndarray, Detection], bool]  # a frame and a face in it → is it one?


def _inside(point: np.ndarray, box: np.ndarray, grow: float = 1.0) -> bool:
    centre, half = box[:2] + box[2:] / 2, box[2:] * grow / 2
    return bool(np.all(np.abs(point - centre) <= half))


def _found_again(face: Detection, found: list[Detection]) -> bool:
    """Whether a remembered face is among `found` (it may have moved a little since)."""
    return any(_inside(d.centre, face.box, 1.5) for d in found)


def _new(found: list[Detection], extra: list[Detection]) -> list[Detection]:
    """`extra`'s detections whose centre lies in no detection already found."""
    kept = list(found)
    for d in sorted(extra, key=lambda d: -d.score):
        if not any(_inside(d.centre, k.box) for k in kept):
            kept.append(d)
    return kept[len(found) :]


class Zoom:
    """The revisit and sweep passes of one video's frames, in order (`extra` per frame)."""

    def __init__(self, detect: Detect, verify: Verify = lambda rgb, face: True):
        self.detect, self.verify = detect, verify
        self.reset()

    def reset(self) -> None:
        """Forget earlier frames: the next frame starts a new video."""
        self.frame = 0
        self.shape: tuple[int, ...] | None = None
        self.memory: list[tuple[Detection, int]] = []  # small faces and frames since found

    def extra(self, rgb: np.ndarray, found: list[Detection]) -> list[Detection]:
        """The faces of this frame that the full-frame pass (`found`) missed."""
        first = rgb.shape != self.shape  # of a video, or of a new frame size
        if first:
            self.reset()
            self.shape = rgb.shape
        missed = [face for face, _ in self.memory if not _found_again(face, found)]
        extra = _new(found, self._revisit(rgb, missed)) if missed else []
        quarters = [self.frame // SWEEP_EVERY % 4] if self.frame % SWEEP_EVERY == 0 else []
        for quarter in range(4) if first else quarters:
            new = _new(found + extra, self._sweep(rgb, quarter))
            extra += [d for d in new if self.verify(rgb, d)]
        self.frame += 1
        self._remember(rgb.shape, found + extra)
        return extra

    def _remember(self, shape: tuple[int, ...], faces: list[Detection]) -> None:
        small = max(shape[:2]) * SMALL
        now = [(d, 0) for d in faces if max(d.box[2:]) < small]
        for face, age in self.memory:
            if age + 1 < MEMORY and not _found_again(face, [d for d, _ in now]):
                now.append((face, age + 1))
        self.memory = now

    def _revisit(self, rgb: np.ndarray, faces: list[Detection]) -> list[Detection]:
        """Up to GRID² faces, each magnified into its cell of one mosaic, detected in one run."""
        side = CELL * GRID
        mosaic = np.full((side, side, 3), BACKGROUND, np.uint8)
        cells = []
        for k, face in enumerate(faces[: GRID * GRID]):
            span = ROI * max(face.box[2:])
            scale = CELL / span
            origin = face.centre - span / 2
            at = np.array([k % GRID, k // GRID], dtype=np.float64) * CELL
            # cell point q shows frame point origin + q / scale
            m = np.array([[scale, 0, -scale * origin[0]], [0, scale, -scale * origin[1]]])
            x, y = int(at[0]), int(at[1])
            mosaic[y : y + CELL, x : x + CELL] = warp(rgb, m, (CELL, CELL))
            cells.append((scale, at, origin))
        found = []
        for d in self.detect(mosaic):
            col, row = (d.centre // CELL).astype(int)
            k = row * GRID + col
            if 0 <= col < GRID and k < len(cells):
                found.append(d.mapped(*cells[k]))
        return found

    def _sweep(self, rgb: np.ndarray, quarter: int) -> list[Detection]:
        """One of four overlapping tiles (left/right × top/bottom), detected at its own scale."""
        h, w = rgb.shape[:2]
        tw, th = round(w * TILE), round(h * TILE)
        x = 0 if quarter % 2 == 0 else w - tw
        y = 0 if quarter < 2 else h - th
        tile = np.ascontiguousarray(rgb[y : y + th, x : x + tw])
        origin = np.array([x, y], dtype=np.float64)
        return [d.mapped(1.0, np.zeros(2), origin) for d in self.detect(tile)]

"""Drawing a `FrameResult` onto its frame (OpenCV): per face a box, the smoothed label with its
probability, a bar per class, and optionally the landmarks. The headless analysis writes these
frames to video; the app paints the same picture."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fer_core.results import FrameResult
from fer_core.track import UNCERTAIN

# BGR colour per expression; unknown labels fall back to grey
COLOURS = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (160, 60, 160),
    "happy": (0, 200, 255),
    "sad": (200, 120, 40),
    "surprise": (0, 160, 255),
    "neutral": (180, 180, 180),
    "contempt": (80, 80, 160),
    UNCERTAIN: (140, 140, 140),
}
FONT = cv2.FONT_HERSHEY_SIMPLEX


def colour(label: str) -> tuple[int, int, int]:
    return COLOURS.get(label.lower(), (160, 160, 160))


def draw(
    image: np.ndarray,
    result: FrameResult,
    labels: Sequence[str],
    bars: bool = True,
    landmarks: bool = False,
) -> np.ndarray:
    """A copy of `image` with the result drawn on it."""
    out = image.copy()
    for face in result.faces:
        x, y, w, h = face.box
        c = colour(face.label)
        cv2.rectangle(out, (x, y), (x + w, y + h), c, 2)
        text = f"#{face.track_id} {face.label} {face.score:.0%}"
        (tw, th), _ = cv2.getTextSize(text, FONT, 0.5, 1)
        top = max(0, y - th - 8)
        cv2.rectangle(out, (x, top), (x + tw + 6, top + th + 8), c, -1)
        cv2.putText(out, text, (x + 3, top + th + 3), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        if landmarks and face.landmarks is not None:
            for px, py in face.landmarks.astype(int)[::3]:
                cv2.circle(out, (int(px), int(py)), 1, (80, 255, 80), -1)
        if bars:
            _bars(out, face.probs, labels, x, y + h + 4, max(w, 90))
    return out


def _bars(
    image: np.ndarray, probs: dict[str, float], labels: Sequence[str], x: int, y: int, width: int
) -> None:
    """One bar per class under the box: a 3-letter name, then the bar."""
    row, name = 11, 30
    if y + row * len(labels) > image.shape[0]:  # no room below: draw above the box's label
        y = max(0, y - row * len(labels))
    for i, label in enumerate(labels):
        top = y + i * row
        p = float(probs.get(label, 0.0))
        left, right = x + name, x + width
        cv2.rectangle(image, (x, top), (right, top + row - 1), (30, 30, 30), -1)
        cv2.rectangle(image, (left, top + 2), (left + int((right - left) * p), top + row - 3),
                      colour(label), -1)  # fmt: skip
        cv2.putText(image, label[:3], (x + 2, top + row - 2), FONT, 0.33, (255, 255, 255), 1,
                    cv2.LINE_AA)  # fmt: skip

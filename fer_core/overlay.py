"""Drawing a `FrameResult` onto its frame (OpenCV): per face a box, the smoothed label with its
probability, a bar per class, and optionally the landmarks. The headless analysis writes these
frames to video; the app paints the same picture."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from fer_core.results import FaceResult, FrameResult
from fer_core.track import UNCERTAIN

# BGR colour per expression, far apart in hue so the timeline's lines stay distinguishable
# (happy amber, surprise cyan); unknown labels fall back to grey
COLOURS = {
    "angry": (40, 40, 220),
    "disgust": (40, 140, 40),
    "fear": (180, 70, 170),
    "happy": (0, 200, 255),
    "sad": (200, 110, 40),
    "surprise": (210, 210, 0),
    "neutral": (180, 180, 180),
    "contempt": (60, 90, 150),
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
        text = tag_text(face)
        x0, top, x1, bottom = tag_rect(face, out.shape[1])
        cv2.rectangle(out, (x0, top), (x1, bottom), c, -1)
        cv2.putText(out, text, (x0 + 3, bottom - 5), FONT, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        if landmarks and face.landmarks is not None:
            for px, py in face.landmarks.astype(int)[::3]:
                cv2.circle(out, (int(px), int(py)), 1, (80, 255, 80), -1)
        if bars:
            _bars(out, face.probs, labels, x, y + h + 4, max(w, 90))
    return out


def tag_text(face: FaceResult) -> str:
    return f"#{face.track_id} {face.label} {face.score:.0%}"


def tag_rect(face: FaceResult, width: int) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the filled label tag drawn above the face's box, kept inside a
    frame `width` pixels wide."""
    x, y = face.box[:2]
    (tw, th), _ = cv2.getTextSize(tag_text(face), FONT, 0.5, 1)
    top = max(0, y - th - 8)
    x = max(0, min(x, width - tw - 6))
    return x, top, x + tw + 6, top + th + 8


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

"""Drawing a `FrameResult` onto its frame (OpenCV): per face a box, the smoothed label with its
probability, a panel with a bar per class, and optionally the landmarks. The headless analysis
and the app's recordings write frames drawn at the frame's own size; the app's view draws the
same overlay on the frame scaled to the view (`draw_scaled`), so that labels read the same
whatever the source's size.

How big everything is drawn is `OverlayStyle`'s one rule: every size follows from the tag
text's height in the pixels of the picture drawn on."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

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
# text height (as cv2.getTextSize gives it) per unit of font scale
_PX_PER_SCALE = cv2.getTextSize("H", FONT, 1.0, 1)[0][1]

# in a view, the tag text is this many screen pixels high whatever the source's size
VIEW_TEXT_PX = 17.0
# with no view (an annotated MP4, a snapshot) it is a share of the frame's height, so that a
# 1080p video played whole on a screen reads like a 480p one (which keeps the 14 px it always
# had), and never below what Hershey text can still be read at
FRAME_TEXT_SHARE = 1 / 34
MIN_TEXT_PX = 10.0


@dataclass(frozen=True)
class OverlayStyle:
    """The overlay's sizes in pixels of the picture it is drawn on, all in proportion to the
    tag text's height (the default is a 640×480 frame's)."""

    text_px: float = 14.0

    @classmethod
    def for_frame(cls, height: int) -> OverlayStyle:
        """For a frame seen at its own size, scaled whole to a screen (an MP4, a PNG)."""
        return cls(max(MIN_TEXT_PX, height * FRAME_TEXT_SHARE))

    @classmethod
    def for_view(cls, device_pixel_ratio: float = 1.0) -> OverlayStyle:
        """For a picture drawn at a view's resolution, in device pixels."""
        return cls(VIEW_TEXT_PX * device_pixel_ratio)

    @property
    def font_scale(self) -> float:
        return self.text_px / _PX_PER_SCALE

    @property
    def thickness(self) -> int:  # of the tag's text strokes: thin letters blur when large
        return max(1, round(self.text_px / 18))

    @property
    def line(self) -> int:  # of the face's box
        return max(2, round(self.text_px / 8))

    @property
    def pad(self) -> int:  # around the tag's text, and between a box and its panel
        return max(2, round(self.text_px / 4))

    @property
    def row(self) -> int:  # one bar of the panel
        return max(8, round(self.text_px * 0.8))

    @property
    def bar_font_scale(self) -> float:  # the bars' 3-letter class names
        return 0.65 * self.font_scale

    @property
    def name_width(self) -> int:  # the names' column, before the bars
        return round(self.text_px * 2.2)

    @property
    def panel_width(self) -> int:  # at least, for a small face
        return round(self.text_px * 6.5)


def colour(label: str) -> tuple[int, int, int]:
    return COLOURS.get(label.lower(), (160, 160, 160))


Rect = tuple[int, int, int, int]  # x0, y0, x1, y1


def draw(
    image: np.ndarray,
    result: FrameResult,
    labels: Sequence[str],
    bars: bool = True,
    landmarks: bool = False,
    style: OverlayStyle | None = None,
) -> np.ndarray:
    """A copy of `image` with the result drawn on it, sized by `style` (by default for the
    frame seen whole: `OverlayStyle.for_frame`)."""
    out = image.copy()
    height, width = out.shape[:2]
    style = style or OverlayStyle.for_frame(height)
    faces = result.faces
    tags = [tag_rect(face, width, style) for face in faces]
    if bars:  # first: the boxes and tags stay on top where a panel has no room of its own
        boxes = [(x, y, x + w, y + h) for x, y, w, h in (face.box for face in faces)]
        panels: list[Rect] = []
        for face, tag in zip(faces, tags, strict=True):
            panel = panel_rect(face, tag, len(labels), (width, height), style, boxes,
                               [*tags, *panels])  # fmt: skip
            panels.append(panel)
            _bars(out, face.probs, labels, panel, style)
    for face, (x0, top, x1, bottom) in zip(faces, tags, strict=True):
        x, y, w, h = face.box
        c = colour(face.label)
        cv2.rectangle(out, (x, y), (x + w, y + h), c, style.line)
        cv2.rectangle(out, (x0, top), (x1, bottom), c, -1)
        baseline = cv2.getTextSize(tag_text(face), FONT, style.font_scale, style.thickness)[1]
        cv2.putText(out, tag_text(face), (x0 + style.pad, bottom - style.pad - baseline), FONT,
                    style.font_scale, (0, 0, 0), style.thickness, cv2.LINE_AA)  # fmt: skip
        if landmarks and face.landmarks is not None:
            radius = max(1, round(style.text_px / 14))
            for px, py in face.landmarks.astype(int)[::3]:
                cv2.circle(out, (int(px), int(py)), radius, (80, 255, 80), -1)
    return out


def draw_scaled(
    image: np.ndarray,
    result: FrameResult,
    labels: Sequence[str],
    size: tuple[int, int],
    style: OverlayStyle,
    bars: bool = True,
    landmarks: bool = False,
) -> np.ndarray:
    """The frame scaled to `size` (w, h; its aspect ratio is the caller's to keep) with the
    overlay drawn at that resolution: text stays sharp and `style` sized in the pixels seen."""
    k = size[0] / image.shape[1]
    faces = tuple(scaled(face, k) for face in result.faces)
    return draw(_resized(image, size), replace(result, faces=faces), labels, bars, landmarks, style)


def _resized(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`image` at `size`: shrunk by an integer factor in block means to within 2× of it, then
    bilinear, so every frame pixel is still read; this runs in the GUI thread every frame, and
    a direct `INTER_AREA` of 1080p into a window takes three times as long."""
    n = image.shape[1] // size[0]
    if n >= 2:
        small = (image.shape[1] // n, image.shape[0] // n)
        image = cv2.resize(image, small, interpolation=cv2.INTER_AREA)
    return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)


def scaled(face: FaceResult, k: float) -> FaceResult:
    """`face` in the pixels of its frame scaled by `k`."""
    x, y, w, h = face.box
    x0, y0, x1, y1 = round(x * k), round(y * k), round((x + w) * k), round((y + h) * k)
    points = None if face.landmarks is None else face.landmarks * k
    return replace(face, box=(x0, y0, x1 - x0, y1 - y0), landmarks=points)


def tag_text(face: FaceResult) -> str:
    return f"#{face.track_id} {face.label} {face.score:.0%}"


def tag_rect(face: FaceResult, width: int, style: OverlayStyle = OverlayStyle()) -> Rect:
    """x0, y0, x1, y1 of the filled label tag drawn above the face's box, kept inside a
    picture `width` pixels wide."""
    x, y = face.box[:2]
    (tw, th), baseline = cv2.getTextSize(tag_text(face), FONT, style.font_scale, style.thickness)
    tw, th = tw + 2 * style.pad, th + baseline + 2 * style.pad
    top = max(0, y - th)
    x = max(0, min(x, width - tw))
    return x, top, x + tw, top + th


def panel_rect(
    face: FaceResult,
    tag: Rect,
    rows: int,
    size: tuple[int, int],
    style: OverlayStyle,
    boxes: Sequence[Rect],
    taken: Sequence[Rect] = (),
) -> Rect:
    """Where a face's bar panel goes in a picture of `size` (w, h): below its box, else above
    its tag, else beside the box (right, then left), always inside the picture. The first of
    these that covers no face's box (`boxes`) wins, and among those the one covering least of
    `taken` (the tags, the panels placed before); a face at the bottom gets its panel above."""
    x, y, w, h = face.box
    pw, ph, gap = max(w, style.panel_width), rows * style.row, style.pad
    places = [(x, y + h + gap), (x, tag[1] - gap - ph), (x + w + gap, y), (x - gap - pw, y)]

    def rank(order: int, place: tuple[int, int]) -> tuple[int, int, int, Rect]:
        px = max(0, min(place[0], size[0] - pw))
        py = max(0, min(place[1], size[1] - ph))
        rect = (px, py, px + pw, py + ph)
        return sum(_overlap(rect, b) for b in boxes), sum(_overlap(rect, t) for t in taken), \
            order, rect  # fmt: skip

    return min(rank(order, place) for order, place in enumerate(places))[3]


def _overlap(a: Rect, b: Rect) -> int:
    return max(0, min(a[2], b[2]) - max(a[0], b[0])) * max(0, min(a[3], b[3]) - max(a[1], b[1]))


def _bars(
    image: np.ndarray, probs: dict[str, float], labels: Sequence[str], rect: Rect,
    style: OverlayStyle,
) -> None:  # fmt: skip
    """One row per class in `rect`: a 3-letter name, then the bar."""
    x, y, right = rect[0], rect[1], rect[2]
    row, left, inset = style.row, rect[0] + style.name_width, max(1, style.row // 5)
    for i, label in enumerate(labels):
        top = y + i * row
        p = float(probs.get(label, 0.0))
        cv2.rectangle(image, (x, top), (right - 1, top + row - 1), (30, 30, 30), -1)
        cv2.rectangle(image, (left, top + inset), (left + int((right - 1 - left) * p),
                      top + row - 1 - inset), colour(label), -1)  # fmt: skip
        cv2.putText(image, label[:3], (x + style.pad // 2, top + row - 1 - inset), FONT,
                    style.bar_font_scale, (255, 255, 255), 1, cv2.LINE_AA)  # fmt: skip

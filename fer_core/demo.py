"""A demo source that needs no camera and no download: the shipped photo of astronaut Eileen
Collins (NASA, public domain; `assets/demo/`) drifting across a grey 640×480 frame, one or
several copies. Its frames say DEMO SOURCE in the corner so nobody mistakes it for a camera.
Tests and the benchmark use the same frames, written to a video with `write_demo_video`."""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path

import cv2
import numpy as np

from fer_core.assets import asset_dir
from fer_core.capture import Frame, Source, SourceError

DEMO_FACE = asset_dir("demo") / "astronaut.jpg"
LABEL = "DEMO SOURCE (no camera)"


@functools.cache
def _demo_face() -> np.ndarray:
    face = cv2.imread(str(DEMO_FACE), cv2.IMREAD_COLOR)
    if face is None:
        raise SourceError(f"{DEMO_FACE}: the demo picture is missing or unreadable")
    return face


FACE_WIDTH = 112 / 210  # the face's box (MediaPipe) as a fraction of the photo's width


@functools.cache
def _layout(
    faces: int, size: tuple[int, int], face_width: int | None = None
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """The face scaled to its grid cell (or to `face_width` pixels, in one row side by side,
    like a group in front of a camera), and each copy's top-left corner before the drift."""
    face = _demo_face()
    w, h = size
    if face_width:
        tw = round(face_width / FACE_WIDTH)
        th = round(tw * face.shape[0] / face.shape[1])
        cell = w // faces
        corners = [(max(0, k * cell + (cell - tw) // 2), (h - th) // 2) for k in range(faces)]
        return cv2.resize(face, (tw, th), interpolation=cv2.INTER_AREA), corners
    cols = math.ceil(math.sqrt(faces))
    rows = math.ceil(faces / cols)
    cell_w, cell_h = w // cols, h // rows
    tw = min(face.shape[1], cell_w - 70, round((cell_h - 20) * face.shape[1] / face.shape[0]))
    tile = cv2.resize(face, (tw, round(tw * face.shape[0] / face.shape[1])))
    return tile, [((k % cols) * cell_w + 10, (k // cols) * cell_h + 10) for k in range(faces)]


def demo_frame(
    i: int,
    faces: int = 1,
    size: tuple[int, int] = (640, 480),
    label: bool = True,
    face_width: int | None = None,
):
    """Frame `i`: `faces` copies of the face on a grid (or in a row of `face_width`-pixel
    faces), drifting right for 20 frames and back, as far as the frame leaves room."""
    w, h = size
    tile, corners = _layout(faces, size, face_width)
    canvas = np.full((h, w, 3), 110, np.uint8)
    room = max(0, w - max(x for x, _ in corners) - tile.shape[1])
    drift = min(room, 3 * min(i % 40, 40 - i % 40))
    for x, y in corners:
        part = tile[: h - y, : w - x - drift]
        canvas[y : y + part.shape[0], x + drift : x + drift + part.shape[1]] = part
    if label:
        cv2.putText(canvas, LABEL, (8, h - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1)
    return canvas


class DemoSource(Source):
    """Demo frames at `fps` (a live-like source: frames are paced, never ending)."""

    live = True

    def __init__(self, faces: int = 1, fps: float = 25.0):
        super().__init__(LABEL)
        self.faces, self.fps = faces, fps
        demo_frame(0, faces)  # fails now, with the path, if the picture is missing
        self.started = time.monotonic()

    def read(self) -> Frame | None:
        if self.stopping:
            return None
        due = self.started + self.index / self.fps
        time.sleep(max(0.0, due - time.monotonic()))
        frame = Frame(demo_frame(self.index, self.faces), self.index, self.index / self.fps)
        self.index += 1
        return frame

    def close(self) -> None:
        self.stopping = True


def write_demo_video(
    path: str | Path,
    frames: int,
    faces: int = 1,
    fps: float = 25.0,
    face_width: int | None = None,
) -> Path:
    """The demo frames as an MJPG AVI (what the tests and the benchmark analyse)."""
    path = Path(path)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (640, 480))
    if not writer.isOpened():
        raise OSError(f"{path}: cannot write a video here")
    for i in range(frames):
        writer.write(demo_frame(i, faces, label=False, face_width=face_width))
    writer.release()
    return path

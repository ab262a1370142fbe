"""Writing what the engine saw: the annotated video (`AnnotatedVideo`) and, for the app's
record button, the video and the face rows together (`Recording`). Both write under a
`.partial` name of their own (`fer_core.outputs.PartialFile`) and take the final name only
when closed without an error, so an interrupted recording never leaves a truncated file under
the name people open; a failed one leaves nothing."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from fer_core.capture import opencv_name, opencv_quiet
from fer_core.outputs import OutputError, PartialFile, write_bytes
from fer_core.results import FaceLog, FrameResult


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """`image` (BGR) as a PNG, written whole under a temporary name and then renamed."""
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: the picture could not be encoded as PNG")
    return write_bytes(path, data.tobytes())


class AnnotatedVideo:
    """An MP4 (MPEG-4 part 2) written to `<name>.<pid>-<token>.partial.mp4` and renamed when
    complete; the size comes from the first frame.

    OpenCV's writer reports no write errors (a full disk gives a short, unplayable file), so
    the finished file is opened again and must hold every frame written."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self.target = self.path.resolve()  # a symlink's file is written, the link stays
        opencv_name(self.target, OutputError)  # OpenCV's writer opens it: before any frame
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.own: PartialFile | None = None  # created with the first frame
        self.fps = fps or 25.0
        self.writer: cv2.VideoWriter | None = None
        self.size = (0, 0)  # w, h of the first frame: every frame is written at it
        self.frames = 0

    def write(self, picture: np.ndarray) -> None:
        if self.writer is not None and picture.shape[:2] != self.size[::-1]:
            # a folder's photos differ in size; the writer drops a frame of another size
            picture = _fitted(picture, self.size)
        if self.writer is None:
            h, w = picture.shape[:2]
            self.size = (w, h)
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            # the name is created here, exclusively; OpenCV then opens the file this run owns
            self.own = PartialFile(self.target.with_suffix(self.target.suffix or ".mp4"))
            os.close(self.own.fd)
            self.writer = cv2.VideoWriter(str(self.own.path), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                self.discard()
                raise OSError(f"{self.path}: cannot write a video here (expected a writable .mp4)")
        with opencv_quiet():  # a failed write logs a line per frame; close() says it once
            self.writer.write(picture)
        self.frames += 1

    def close(self, complete: bool = True) -> None:
        """Finish the file; `complete=False` (an error, an interruption) removes it."""
        if self.writer is None:
            return
        with opencv_quiet():
            self.writer.release()
        self.writer = None
        if not complete:
            self.discard()
            return
        written = _frame_count(self.own.path)
        if written != self.frames:
            self.discard()
            raise OSError(
                f"{self.path}: the video could not be written whole ({written} of {self.frames} "
                "frames readable back; is the disk full?); nothing was kept"
            )
        self.own.rename(self.target)

    def discard(self) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
        if self.own is not None:
            self.own.remove()

    def __enter__(self) -> AnnotatedVideo:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(complete=exc_type is None)


def _fitted(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """`picture` scaled to fit `size` (w, h), whole and centred on black."""
    w, h = size
    scale = min(w / picture.shape[1], h / picture.shape[0])
    pw, ph = max(1, round(picture.shape[1] * scale)), max(1, round(picture.shape[0] * scale))
    canvas = np.zeros((h, w, 3), np.uint8)
    x, y = (w - pw) // 2, (h - ph) // 2
    canvas[y : y + ph, x : x + pw] = cv2.resize(picture, (pw, ph), interpolation=cv2.INTER_AREA)
    return canvas


def _frame_count(path: Path) -> int:
    """Frames a finished video file declares (0 when it cannot be opened)."""
    if not path.is_file() or path.stat().st_size == 0:
        return 0
    capture = cv2.VideoCapture(opencv_name(path))
    try:
        return int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if capture.isOpened() else 0
    finally:
        capture.release()


class Recording:
    """`<stem>.mp4` (the annotated frames) and `<stem>.csv` (every face of every recorded
    frame, the `analyze` columns) in `folder`."""

    def __init__(
        self,
        folder: str | Path,
        stem: str,
        labels: list[str],
        fps: float,
        blendshapes: bool = False,
    ):
        folder = Path(folder)
        self.video = AnnotatedVideo(folder / f"{stem}.mp4", fps)
        self.log = FaceLog(folder / f"{stem}.csv", labels, blendshapes=blendshapes)
        self.paths = (self.video.path, self.log.path)

    def write(self, picture: np.ndarray, result: FrameResult) -> None:
        self.video.write(picture)
        self.log.write(result)

    def close(self) -> None:
        """Both files complete, or neither kept (the error is raised)."""
        try:
            self.video.close()
        except OSError:
            self.log.discard()
            raise
        self.log.close()

    def discard(self) -> None:
        self.video.discard()
        self.log.discard()

"""Writing what the engine saw: the annotated video (`AnnotatedVideo`) and, for the app's
record button, the video and the face rows together (`Recording`). Both write under a
`.partial` name and take the final name only when closed without an error, so an interrupted
recording never leaves a truncated file under the name people open."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from fer_core.results import FaceLog, FrameResult


def write_png(path: str | Path, image: np.ndarray) -> Path:
    """`image` (BGR) as a PNG, written whole under a temporary name and then renamed."""
    path = Path(path)
    ok, data = cv2.imencode(".png", image)
    if not ok:
        raise OSError(f"{path}: the picture could not be encoded as PNG")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data.tobytes())
    os.replace(partial, path)
    return path


class AnnotatedVideo:
    """An MP4 (MPEG-4 part 2) written to `<name>.partial.mp4` and renamed when complete; the
    size comes from the first frame."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.partial = self.path.with_name(f"{self.path.stem}.partial{self.path.suffix or '.mp4'}")
        self.fps = fps or 25.0
        self.writer: cv2.VideoWriter | None = None

    def write(self, picture: np.ndarray) -> None:
        if self.writer is None:
            h, w = picture.shape[:2]
            fourcc = cv2.VideoWriter_fourcc(*"mp4v")
            self.writer = cv2.VideoWriter(str(self.partial), fourcc, self.fps, (w, h))
            if not self.writer.isOpened():
                raise OSError(f"{self.path}: cannot write a video here (expected a writable .mp4)")
        self.writer.write(picture)

    def close(self, complete: bool = True) -> None:
        if self.writer is not None:
            self.writer.release()
            self.writer = None
            if complete:
                os.replace(self.partial, self.path)

    def __enter__(self) -> AnnotatedVideo:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(complete=exc_type is None)


class Recording:
    """`<stem>.mp4` (the annotated frames) and `<stem>.csv` (every face of every recorded
    frame, the `analyze` columns) in `folder`."""

    def __init__(self, folder: str | Path, stem: str, labels: list[str], fps: float):
        folder = Path(folder)
        self.video = AnnotatedVideo(folder / f"{stem}.mp4", fps)
        self.log = FaceLog(folder / f"{stem}.csv", labels)
        self.paths = (self.video.path, self.log.path)

    def write(self, picture: np.ndarray, result: FrameResult) -> None:
        self.video.write(picture)
        self.log.write(result)

    def close(self) -> None:
        self.video.close()
        self.log.close()

"""Frame sources: a camera by index, a video file, a folder of images.

Every source yields `Frame`s from `read()` and returns None when it has ended; what goes wrong
on the way is not raised but reported as a `SourceEvent` in `source.events` (a corrupt or
truncated video ends early with an event saying at which frame; an unreadable image in a
folder is skipped with an event; a camera that stops delivering is reopened with growing
pauses, with an event each time). Only a source that cannot be opened at all raises
`SourceError`, naming what was asked for and what was expected.

`LatestFrame` reads a source in its own thread and keeps only the newest frame, so a slow
consumer sees the present instead of a growing queue (live use); the headless analysis reads
`frames(source)` directly and so sees every frame.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# a video read that fails is retried this many times (skipping the frame) before the video ends
VIDEO_SKIP_TRIES = 3


@contextmanager
def opencv_quiet() -> Iterator[None]:
    """OpenCV's and FFmpeg's own log lines while a capture opens ("moov atom not found",
    a warning per backend tried for an absent camera): the SourceError that follows says it
    once, in words. OPENCV_FFMPEG_LOGLEVEL is read when FFmpeg is first used."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(level)


class SourceError(RuntimeError):
    """A source that cannot be opened; the message names it and what was expected."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # H × W × 3 uint8, BGR (OpenCV's order)
    index: int  # frames delivered by this source so far, from 0
    time_s: float  # position in the video, or seconds since a camera / folder started
    # a picture on its own (a photo of a folder), not the next frame of a sequence: no face
    # is held or smoothed into it from the frame before
    still: bool = False


@dataclass(frozen=True)
class SourceEvent:
    kind: str  # "error" (something failed, the source goes on or ends), "retry", "recovered"
    message: str
    time: float  # time.monotonic() when it happened


class Source:
    """What the sources share: a name for people, an event log, `read()` and `close()`."""

    live = False  # a camera: frames arrive in real time and may be dropped

    def __init__(self, name: str):
        self.name = name
        self.events: deque[SourceEvent] = deque(maxlen=100)
        self.index = 0
        self.stopping = False  # set from another thread: read() returns None soon
        self.fps = 0.0  # frames per second; 0 when unknown

    def report(self, kind: str, message: str) -> None:
        self.events.append(SourceEvent(kind, f"{self.name}: {message}", time.monotonic()))

    def read(self) -> Frame | None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self) -> Source:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class VideoSource(Source):
    def __init__(self, path: str | Path):
        path = Path(path)
        super().__init__(str(path))
        if not path.is_file():
            raise SourceError(f"{path}: no such video file")
        with opencv_quiet():
            self.capture = cv2.VideoCapture(opencv_name(path))
        if not self.capture.isOpened():
            self.capture.release()
            raise SourceError(
                f"{path}: cannot be read as a video (expected a file OpenCV's FFmpeg can "
                "decode, e.g. MP4/H.264, AVI/MJPG, MKV, WebM)"
            )
        self.fps = float(self.capture.get(cv2.CAP_PROP_FPS)) or 0.0
        self.frame_count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) or 0
        self.ended = False

    def read(self) -> Frame | None:
        if self.ended:
            return None
        for _ in range(VIDEO_SKIP_TRIES):
            ok, image = self.capture.read()
            if ok and image is not None:
                return self._frame(image)
            if self.frame_count and self._position() >= self.frame_count:
                break  # the real end
        if self.frame_count and self._position() < self.frame_count:
            self.report(
                "error",
                f"unreadable from frame {self.index} of {self.frame_count} "
                "(truncated or corrupt); the video ends here",
            )
        self.ended = True
        return None

    def _position(self) -> int:
        return int(self.capture.get(cv2.CAP_PROP_POS_FRAMES))

    def _frame(self, image: np.ndarray) -> Frame:
        t = self.index / self.fps if self.fps else self.capture.get(cv2.CAP_PROP_POS_MSEC) / 1e3
        frame = Frame(_bgr(image), self.index, t)
        self.index += 1
        return frame

    def close(self) -> None:
        self.capture.release()


class ImageFolderSource(Source):
    """The folder's images in name order, each once, each a still (`Frame.still`: unrelated
    photos, no face carried from one to the next); `fps` spaces their times. A name with an
    image suffix that is not a regular file (a FIFO would block the read forever, a folder)
    is skipped with an event, as is a file that does not decode whole (a truncated JPEG)."""

    def __init__(self, path: str | Path, fps: float = 5.0):
        path = Path(path)
        super().__init__(str(path))
        if not path.is_dir():
            raise SourceError(f"{path}: no such folder")
        named = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        self.files = [p for p in named if p.is_file()]
        for other in (p for p in named if not p.is_file()):
            self.report("error", f"{_shown(other.name)} is not a regular file; skipped")
        if not self.files:
            raise SourceError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
        self.fps = fps
        self._next = 0

    def read(self) -> Frame | None:
        while self._next < len(self.files):
            path = self.files[self._next]
            self._next += 1
            image = read_image(path)
            if image is None:
                self.report("error", f"{_shown(path.name)} is not a readable image; skipped")
                continue
            frame = Frame(image, self.index, self.index / self.fps, still=True)
            self.index += 1
            return frame
        return None


def read_image(path: Path) -> np.ndarray | None:
    """A picture file as BGR, or None when it cannot be read or does not decode whole. Read as
    bytes and decoded from memory: OpenCV given a name that is not UTF-8 crashes the process,
    and its file reader passes a truncated JPEG as a picture grey at the bottom."""
    try:
        data = np.frombuffer(path.read_bytes(), np.uint8)
    except OSError:
        return None
    if not data.size:
        return None
    with opencv_quiet():
        return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _shown(name: str) -> str:
    """A file name as it can be printed (bytes that are not UTF-8 as \\xNN)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def opencv_name(path: str | Path, error: type[Exception] | None = None) -> str:
    """`path` as OpenCV's video reader and writer take a name (they open the file themselves),
    or `error` (SourceError) saying so: a name with bytes that are not UTF-8 reaches OpenCV
    as a broken string and crashes the process."""
    name = str(path)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise (error or SourceError)(
            f"{_shown(name)}: the name is not valid UTF-8, which OpenCV cannot open; "
            "rename the file"
        ) from None
    return name


class CameraSource(Source):
    """A camera by index (or any device path / URL OpenCV opens). A camera that stops
    delivering frames is reopened after `first_pause` seconds, then twice as long each time
    up to `max_pause`; `read()` returns None only once the source is stopped or closed."""

    live = True

    def __init__(
        self,
        device: int | str = 0,
        width: int = 640,
        height: int = 480,
        first_pause: float = 0.5,
        max_pause: float = 8.0,
    ):
        super().__init__(f"camera {device}")
        self.device, self.size = device, (width, height)
        self.first_pause, self.max_pause = first_pause, max_pause
        self.capture = self._open()
        if self.capture is None:
            raise SourceError(
                f"camera {device}: cannot be opened (no such camera, or it is busy); "
                "`python -m app cameras` lists the cameras that open"
            )
        self.started = time.monotonic()
        self.failures = 0

    def _open(self) -> cv2.VideoCapture | None:
        with opencv_quiet():
            capture = cv2.VideoCapture(self.device)
        if not capture.isOpened():
            capture.release()
            return None
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.size[0])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.size[1])
        capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not a queue of old ones
        self.fps = float(capture.get(cv2.CAP_PROP_FPS)) or 0.0
        return capture

    def read(self) -> Frame | None:
        while not self.stopping:
            if self.capture is not None:
                ok, image = self.capture.read()
                if ok and image is not None:
                    if self.failures:
                        self.report("recovered", f"frames again after {self.failures} failures")
                        self.failures = 0
                    frame = Frame(_bgr(image), self.index, time.monotonic() - self.started)
                    self.index += 1
                    return frame
                self.capture.release()
                self.capture = None
            self.failures += 1
            pause = min(self.max_pause, self.first_pause * 2 ** (self.failures - 1))
            self.report("retry", f"no frame; reopening in {pause:g} s (try {self.failures})")
            deadline = time.monotonic() + pause
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(min(0.05, pause))
            if not self.stopping:
                self.capture = self._open()
        return None

    def close(self) -> None:
        self.stopping = True
        if self.capture is not None:
            self.capture.release()
            self.capture = None


def frame_image(image: object) -> np.ndarray:
    """`image` as the engine takes a frame, uint8 H×W×3 BGR (grey H×W or H×W×1 and BGRA
    H×W×4 converted), or one TypeError / ValueError saying what is expected."""
    expected = "expected a uint8 numpy array, H×W×3 BGR (or grey H×W, or BGRA H×W×4)"
    if not isinstance(image, np.ndarray):
        raise TypeError(f"frame: got {type(image).__name__}; {expected}")
    if image.dtype != np.uint8:
        raise TypeError(f"frame: got dtype {image.dtype}; {expected} (scale to 0-255 first)")
    grey = image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 1)
    if not (grey or (image.ndim == 3 and image.shape[2] in (3, 4))) or not image.size:
        raise ValueError(f"frame: got shape {image.shape}; {expected}")
    return _bgr(image[..., 0] if image.ndim == 3 and grey else image)


def _bgr(image: np.ndarray) -> np.ndarray:
    """Grey or BGRA frames (some cameras, some videos) as 3-channel BGR."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def list_cameras(max_index: int = 8) -> list[int]:
    """The camera indices that open and deliver a frame (probed with OpenCV's log silenced:
    every absent index would print several warnings)."""
    found = []
    with opencv_quiet():
        for index in range(max_index):
            capture = cv2.VideoCapture(index)
            try:
                if capture.isOpened() and capture.read()[0]:
                    found.append(index)
            finally:
                capture.release()
    return found


def open_source(spec: str | int | Path) -> Source:
    """A camera index (`0`, `"camera:1"`), a folder of images, or a video file."""
    if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
        return CameraSource(int(spec))
    if isinstance(spec, str) and spec.startswith("camera:"):
        device = spec.removeprefix("camera:")
        return CameraSource(int(device) if device.isdigit() else device)
    path = Path(spec)
    if path.is_dir():
        return ImageFolderSource(path)
    if path.exists():
        return VideoSource(path)
    raise SourceError(
        f"{spec}: no such file or folder (expected a video file, a folder of images, "
        "or a camera index such as 0)"
    )


class Paced(Source):
    """A file source played like a player: each frame is released at its own time (the
    video's frame rate), and `paused` stops the clock. Live sources need no pacing."""

    def __init__(self, source: Source):
        super().__init__(source.name)
        self.source, self.fps = source, source.fps
        self.events = source.events  # one event log: the wrapped source reports into it
        self.paused = False
        self._clock: float | None = None  # monotonic time of the source's t = 0

    def read(self) -> Frame | None:
        while self.paused and not self.stopping:
            time.sleep(0.02)
            self._clock = None  # restart the clock on resume
        frame = None if self.stopping else self.source.read()
        if frame is None:
            return None
        now = time.monotonic()
        if self._clock is None:
            self._clock = now - frame.time_s
        wait = self._clock + frame.time_s - now
        while wait > 0 and not self.stopping:  # short sleeps: a stop is never kept waiting
            time.sleep(min(wait, 0.05))
            wait = self._clock + frame.time_s - time.monotonic()
        self.index = frame.index + 1
        return frame

    def close(self) -> None:
        self.stopping = True
        self.source.close()


def frames(source: Source) -> Iterator[Frame]:
    """Every frame of a source, in order, until it ends."""
    while (frame := source.read()) is not None:
        yield frame


class LatestFrame:
    """Reads `source` in a daemon thread and keeps only the newest frame.

    `get(timeout)` returns a frame newer than the last one it returned, waiting up to
    `timeout` seconds, or None (nothing new yet, or the source ended: see `ended`).
    `dropped` counts the frames that were replaced before anyone took them."""

    def __init__(self, source: Source):
        self.source = source
        self._frame: Frame | None = None
        self._taken = -1
        self._cond = threading.Condition()
        self.ended = False
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=f"capture {source.name}")
        self._thread.daemon = True
        self._thread.start()

    def _run(self) -> None:
        try:
            while not self.source.stopping and (frame := self.source.read()) is not None:
                with self._cond:
                    if self._fresh():
                        self.dropped += 1
                    self._frame = frame
                    self._cond.notify_all()
        except Exception as error:  # a backend failure ends the source, reported, not raised
            self.source.report("error", f"capture failed: {error}")
        finally:
            self.source.close()  # in this thread: never release a capture another one reads
            with self._cond:
                self.ended = True
                self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        with self._cond:
            self._cond.wait_for(lambda: self.ended or self._fresh(), timeout)
            if not self._fresh():
                return None
            assert self._frame is not None
            self._taken = self._frame.index
            return self._frame

    def _fresh(self) -> bool:
        return self._frame is not None and self._frame.index > self._taken

    def close(self, timeout: float = 2.0) -> None:
        """Stop reading; the capture thread releases the source."""
        self.source.stopping = True
        self._thread.join(timeout)

"""The app's engine thread: capture (its own thread, newest frame only) → recognizer → overlay
→ recording, off the GUI thread. The window talks to it only through requests (thread-safe
setters, applied between frames) and Qt signals (queued into the GUI thread), so the GUI never
waits on a camera, a model load or a frame.

Painting is the GUI's: the pipeline hands over a finished `Shown` picture, at most one at a
time (a new one replaces a picture the GUI has not taken yet, so a busy GUI sees the present).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PySide6.QtCore import QThread, Signal

from fer_core.capture import LatestFrame, Paced, Source, SourceError
from fer_core.overlay import draw
from fer_core.recognizer import Recognizer, RecognizerOptions
from fer_core.recording import Recording
from fer_core.results import FrameResult


@dataclass(frozen=True)
class ViewOptions:
    """How frames are shown (changing these needs no new recognizer)."""

    landmarks: bool = False  # draw the 478 points (the recognizer runs the landmarker)
    mirror: bool = False  # flip left-right before anything else, like a mirror
    bars: bool = True  # probability bars under each face


@dataclass(frozen=True)
class Shown:
    """One finished frame for the GUI."""

    picture: np.ndarray  # BGR, with the overlays
    result: FrameResult
    labels: tuple[str, ...]
    source: str
    engine_fps: float  # frames the pipeline finished per second, over the last second or two
    dropped: int  # frames the capture thread replaced before the engine took them


class Rate:
    """Events per second over a sliding window of recent timestamps."""

    def __init__(self, window: float = 2.0):
        self.window = window
        self.times: deque[float] = deque()

    def tick(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        self.times.append(now)
        while self.times and self.times[0] < now - self.window:
            self.times.popleft()
        return self.rate()

    def rate(self) -> float:
        if len(self.times) < 2:
            return 0.0
        span = self.times[-1] - self.times[0]
        return (len(self.times) - 1) / span if span > 0 else 0.0


class Pipeline(QThread):
    shown = Signal()  # a new `Shown` waits in `take()`
    event = Signal(str, str)  # kind ("error", "retry", "recovered", "info"), message
    source_opened = Signal(str)  # the source's name
    source_failed = Signal(str)  # why the requested source did not open (the old one goes on)
    source_ended = Signal(str)  # the source's name: a video or folder reached its end
    model_changed = Signal(str)  # the package name now running
    recording_changed = Signal(object)  # (video path, csv path) when it starts, None at stop

    def __init__(self, options: RecognizerOptions, view: ViewOptions | None = None):
        super().__init__()
        self.setObjectName("inference")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._quit = False
        self._options = options
        self._view = view or ViewOptions()
        self._paused = False
        self._pending_source: Callable[[], Source] | None = None
        self._pending_options: RecognizerOptions | None = options
        self._pending_record: Path | bool | None = False  # False: no change; None: stop
        self._pending_calibration: list[int | None] = []  # track ids to calibrate; None: clear
        self._shown: Shown | None = None
        self.recognizer: Recognizer | None = None  # owned by the pipeline thread
        self.labels: tuple[str, ...] = ()

    # ---- requests from the GUI thread -------------------------------------------------------
    def open_source(self, make: Callable[[], Source]) -> None:
        """Switch to the source `make()` opens (called in the pipeline thread: a camera can
        take seconds to open)."""
        with self._lock:
            self._pending_source = make
        self._wake.set()

    def set_options(self, options: RecognizerOptions) -> None:
        with self._lock:
            self._pending_options = options
        self._wake.set()

    @property
    def options(self) -> RecognizerOptions:
        with self._lock:
            return self._pending_options or self._options

    def set_view(self, **changes) -> None:
        with self._lock:
            self._view = replace(self._view, **changes)

    @property
    def view(self) -> ViewOptions:
        return self._view

    def set_paused(self, paused: bool) -> None:
        with self._lock:
            self._paused = paused
        self._wake.set()

    @property
    def paused(self) -> bool:
        return self._paused

    def start_recording(self, folder: Path) -> None:
        with self._lock:
            self._pending_record = Path(folder)
        self._wake.set()

    def calibrate(self, track_id: int) -> None:
        """Take this face's next frames as its neutral face."""
        with self._lock:
            self._pending_calibration.append(track_id)
        self._wake.set()

    def clear_calibration(self) -> None:
        with self._lock:
            self._pending_calibration.append(None)
        self._wake.set()

    def stop_recording(self) -> None:
        with self._lock:
            self._pending_record = None
        self._wake.set()

    def take(self) -> Shown | None:
        """The newest finished frame, once (None if there is nothing new)."""
        with self._lock:
            shown, self._shown = self._shown, None
        return shown

    def stop(self, timeout_ms: int = 5000) -> None:
        self._quit = True
        self._wake.set()
        self.wait(timeout_ms)

    # ---- the pipeline thread -----------------------------------------------------------------
    def run(self) -> None:
        latest: LatestFrame | None = None
        recording: Recording | None = None
        rate = Rate()
        try:
            while not self._quit:
                with self._lock:
                    make, self._pending_source = self._pending_source, None
                    options, self._pending_options = self._pending_options, None
                    record, self._pending_record = self._pending_record, False
                    calibrations, self._pending_calibration = self._pending_calibration, []
                    paused, view = self._paused, self._view
                labels, before = self.labels, latest
                if options is not None:
                    self._load(options)
                if calibrations and self.recognizer is not None:
                    self._calibrate(calibrations)
                if make is not None:
                    latest = self._open(make, latest)
                if recording is not None and (latest is not before or self.labels != labels):
                    record = None  # a new frame size or new CSV columns: this file ends here
                if record is not False:
                    recording = self._record(record, recording, latest)
                if latest is not None and isinstance(latest.source, Paced):
                    latest.source.paused = paused
                if paused or latest is None or self.recognizer is None:
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                frame = latest.get(timeout=0.05)
                self._report(latest.source)
                if frame is None:
                    if latest.ended:
                        self.source_ended.emit(latest.source.name)
                        latest.close()
                        latest = None
                        if recording is not None:  # the recording ends with its source
                            recording = self._record(None, recording, None)
                    continue
                recording = self._process(frame, latest, view, recording, rate)
        finally:
            if recording is not None:
                self._finish(recording)
            if latest is not None:
                latest.close()
            if self.recognizer is not None:
                self.recognizer.close()

    def _process(self, frame, latest, view, recording, rate) -> Recording | None:
        image = np.ascontiguousarray(frame.image[:, ::-1]) if view.mirror else frame.image
        result = self.recognizer.process(image, frame.index, frame.time_s, frame.still)
        t0 = time.perf_counter()
        picture = draw(image, result, self.labels, bars=view.bars, landmarks=view.landmarks)
        result.timings_ms["draw"] = (time.perf_counter() - t0) * 1e3
        if recording is not None:
            try:
                recording.write(picture, result)
            except OSError as error:
                self.event.emit("error", f"recording stopped, nothing kept: {error}")
                recording.discard()
                recording = None
                self.recording_changed.emit(None)
        shown = Shown(picture, result, self.labels, latest.source.name, rate.tick(),
                      latest.dropped)  # fmt: skip
        with self._lock:
            self._shown = shown
        self.shown.emit()
        return recording

    def _load(self, options: RecognizerOptions) -> None:
        """A new recognizer for changed options; on failure the running one stays."""
        tracker_only = replace(options, tracker=self._options.tracker) == self._options
        if self.recognizer is not None and tracker_only:
            # smoothing and threshold need no reload: new tracks take them, ids keep counting
            self.recognizer.tracker.options = options.tracker
            self.recognizer.tracker.reset()
            self._options = options
            return
        try:
            recognizer = Recognizer(options)
        except (OSError, ValueError, RuntimeError) as error:
            if self.recognizer is not None:
                self.event.emit("error", f"model not changed: {error}")
                return
            fallback = replace(options, model=None, backend="onnxruntime", device="cpu")
            if options == fallback:
                self.event.emit("error", f"no model can run: {error}")
                return
            # nothing runs yet (a remembered package that is gone): start on the default one
            self.event.emit("error", f"{error}; using the default model on onnxruntime")
            self._load(fallback)
            return
        if self.recognizer is not None:
            self.recognizer.close()
        self.recognizer, self._options = recognizer, options
        self.labels = tuple(recognizer.labels)
        self.model_changed.emit(recognizer.classifier.package.name)

    def _open(self, make: Callable[[], Source], latest: LatestFrame | None) -> LatestFrame | None:
        try:
            source = make()
        except (SourceError, OSError) as error:
            self.source_failed.emit(str(error))
            return latest  # keep showing what was there
        if latest is not None:
            latest.close()
        if self.recognizer is not None:
            self.recognizer.tracker.reset()
        if not source.live:
            source = Paced(source)
        self.source_opened.emit(source.name)
        return LatestFrame(source)

    def _calibrate(self, requests: list[int | None]) -> None:
        calibration = self.recognizer.calibration
        for track_id in requests:
            try:
                calibration.clear() if track_id is None else self.recognizer.calibrate(track_id)
            except ValueError as error:
                self.event.emit("error", str(error))
                continue
            frames = calibration.options.frames
            self.event.emit("info", "calibration cleared" if track_id is None else
                            f"face #{track_id}: hold a neutral face ({frames} frames)")  # fmt: skip

    def _finish(self, recording: Recording) -> None:
        try:
            recording.close()
        except OSError as error:
            self.event.emit("error", f"recording not kept: {error}")

    def _record(self, folder, recording, latest) -> Recording | None:
        if recording is not None:
            self._finish(recording)
            self.recording_changed.emit(None)
        if folder is None:
            return None
        fps = latest.source.fps if latest is not None else 0.0  # 0: the writer's default
        stem = _free_stem(Path(folder), time.strftime("fer-%Y%m%d-%H%M%S"), ".mp4")
        try:
            blendshapes = self._options.faces.blendshapes
            recording = Recording(folder, stem, list(self.labels), fps, blendshapes)
        except OSError as error:
            self.event.emit("error", f"cannot record into {folder}: {error}")
            return None
        self.recording_changed.emit(recording.paths)
        return recording

    def _report(self, source: Source) -> None:
        while source.events:
            event = source.events.popleft()
            self.event.emit(event.kind, event.message)


def _free_stem(folder: Path, stem: str, suffix: str) -> str:
    """`stem`, or `stem-2`, `stem-3`, … if a file of that name is already in `folder`."""
    candidate, n = stem, 1
    while (folder / f"{candidate}{suffix}").exists():
        n += 1
        candidate = f"{stem}-{n}"
    return candidate

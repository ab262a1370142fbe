"""A live session: one source at a time (a camera, or a video paced at its frame rate) through
a `Recognizer`, frame after frame, with an optional (annotated) recording, and no Qt.

Modelled on MediaPipe Tasks' live-stream mode: options in, results out through callbacks.
`run()` works in the calling thread until `stop()`; the requests (`open_source`,
`set_options`, `set_view`, `set_paused`, `start_recording`, `stop_recording`, `teach`,
`use_profile`, `clear_profiles`) may come from any thread: each queues a small frozen request,
and the session applies them between frames, in the order they came. The callbacks run in the
session's thread, so a front end keeps them short (the app turns each into a Qt signal,
`app.pipeline`).
While a frame finishes (classification, tracking, callbacks) a second thread of the session
already finds the faces of the next one (`LiveSession(overlap=False)`: one after the other).

A camera or a model can take seconds to open: both happen here, never in the caller's thread.
Options that need no new model (the tracker's) reconfigure the running recognizer; others
build a new one, and if that fails the running one goes on.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import ClassVar

import numpy as np

from fer_core.capture import Frame, LatestFrame, Paced, Source, SourceError
from fer_core.overlay import draw
from fer_core.profile import NEUTRAL, Profile
from fer_core.recognizer import Found, Recognizer, RecognizerOptions
from fer_core.recording import Recording
from fer_core.results import FrameResult
from fer_core.stages import read_ahead


@dataclass(frozen=True)
class ViewOptions:
    """How frames are shown (changing these needs no new recognizer)."""

    landmarks: bool = False  # draw the 478 points (the recognizer runs the landmarker)
    mirror: bool = False  # flip left-right before anything else, like a mirror
    bars: bool = True  # probability bars under each face


@dataclass(frozen=True)
class Shown:
    """One finished frame, ready to show. The overlays are drawn where they are seen: a view
    draws them at its own resolution (`fer_core.overlay.draw_scaled`); `picture` is the frame
    with them drawn at its own size, as recordings and snapshots keep it."""

    image: np.ndarray  # BGR, as recognised (mirrored when asked), without the overlays
    result: FrameResult
    labels: tuple[str, ...]
    view: ViewOptions  # what the overlays show
    source: str
    engine_fps: float  # frames the session finished per second, over the last second or two
    dropped: int  # frames the capture thread replaced before the session took them

    @cached_property  # drawn once, by whoever needs it first (a recording, a snapshot)
    def picture(self) -> np.ndarray:
        view = self.view
        return draw(self.image, self.result, self.labels, view.bars, view.landmarks)


def _ignore(*_) -> None:
    pass


@dataclass(frozen=True)
class LiveCallbacks:
    """What the session says, each called in the session's thread."""

    frame: Callable[[Shown], None] = _ignore
    event: Callable[[str, str], None] = _ignore  # kind ("error", "retry", "recovered", "info")
    source_opened: Callable[[str], None] = _ignore  # the source's name
    source_failed: Callable[[str], None] = _ignore  # why it did not open (the old one goes on)
    source_ended: Callable[[str], None] = _ignore  # a video or folder reached its end
    model_changed: Callable[[str], None] = _ignore  # the package name now running
    # (video path, csv path) when a recording starts, None when it stops
    recording_changed: Callable[[tuple[Path, Path] | None], None] = _ignore
    # (track id, label, its profile now) when a face's teaching of an expression is complete
    taught: Callable[[int, str, Profile], None] = _ignore


# ---- requests: a queued one replaces an older queued one of the same `slot` ------------------
@dataclass(frozen=True)
class OpenSource:
    make: Callable[[], Source]  # called in the session's thread: a camera can take seconds
    slot: ClassVar[str | None] = "source"


@dataclass(frozen=True)
class SetOptions:
    options: RecognizerOptions
    slot: ClassVar[str | None] = "options"


@dataclass(frozen=True)
class SetView:
    view: ViewOptions
    slot: ClassVar[str | None] = "view"


@dataclass(frozen=True)
class SetPaused:
    paused: bool
    slot: ClassVar[str | None] = "paused"


@dataclass(frozen=True)
class StartRecording:
    folder: Path  # a new `fer-<date>-<time>.mp4` and its CSV go there
    slot: ClassVar[str | None] = "recording"


@dataclass(frozen=True)
class StopRecording:
    slot: ClassVar[str | None] = "recording"


@dataclass(frozen=True)
class Teach:
    track_id: int  # this face's next frames are its `label` expression
    label: str
    name: str | None = None  # of the profile, if the face has none yet
    slot: ClassVar[str | None] = None  # every one counts


@dataclass(frozen=True)
class UseProfile:
    profile: Profile
    track_id: int | None  # None: the largest face
    slot: ClassVar[str | None] = None


@dataclass(frozen=True)
class ClearProfiles:
    slot: ClassVar[str | None] = None


Request = (OpenSource | SetOptions | SetView | SetPaused | StartRecording | StopRecording
           | Teach | UseProfile | ClearProfiles)  # fmt: skip


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


class LiveSession:
    def __init__(
        self,
        options: RecognizerOptions,
        view: ViewOptions | None = None,
        callbacks: LiveCallbacks | None = None,
        overlap: bool = True,
    ):
        self.callbacks = callbacks or LiveCallbacks()
        # detection of the next frame beside the rest of this one's work: on 2 cores five
        # faces took 18.8 ms a frame one after the other (detect 11.3, the rest 7.5)
        self.overlap = overlap
        self._lock = threading.Lock()
        self._wake = threading.Event()  # a request or stop() ends an idle wait early
        self._stopped = threading.Event()
        self._queue: deque[Request] = deque([SetOptions(options)])
        self._applying: Request | None = None  # taken off the queue, not yet in force
        # in force (the session's thread writes them)
        self._options = options
        self._view = view or ViewOptions()
        self._paused = False
        self.recognizer: Recognizer | None = None
        self.labels: tuple[str, ...] = ()
        self._latest: LatestFrame | None = None
        self._recording: Recording | None = None
        self._rate = Rate()
        self._apply_request: dict[type, Callable] = {
            OpenSource: lambda r: self._open(r.make),
            SetOptions: lambda r: self._load(r.options),
            SetView: lambda r: setattr(self, "_view", r.view),
            SetPaused: lambda r: self._pause(r.paused),
            StartRecording: lambda r: self._record(r.folder),
            StopRecording: lambda r: self._record(None),
            Teach: lambda r: self._teach(r),
            UseProfile: lambda r: self._use_profile(r.profile, r.track_id),
            ClearProfiles: lambda r: self._clear_profiles(),
        }

    # ---- requests, from any thread ----------------------------------------------------------
    def request(self, request: Request) -> None:
        with self._lock:
            if request.slot is not None:
                for old in [r for r in self._queue if r.slot == request.slot]:
                    self._queue.remove(old)
            self._queue.append(request)
        self._wake.set()

    def open_source(self, make: Callable[[], Source]) -> None:
        self.request(OpenSource(make))

    def set_options(self, options: RecognizerOptions) -> None:
        self.request(SetOptions(options))

    def set_view(self, **changes) -> None:
        with self._lock:  # on top of earlier changes still queued
            view = replace(self._asked(SetView, "view", self._view), **changes)
        self.request(SetView(view))

    def set_paused(self, paused: bool) -> None:
        self.request(SetPaused(paused))

    def start_recording(self, folder: Path) -> None:
        self.request(StartRecording(Path(folder)))

    def stop_recording(self) -> None:
        self.request(StopRecording())

    def teach(self, track_id: int, label: str, name: str | None = None) -> None:
        self.request(Teach(track_id, label, name))

    def calibrate(self, track_id: int) -> None:
        """Neutral calibration: teach the face its neutral expression."""
        self.request(Teach(track_id, NEUTRAL))

    def use_profile(self, profile: Profile, track_id: int | None = None) -> None:
        self.request(UseProfile(profile, track_id))

    def clear_profiles(self) -> None:
        self.request(ClearProfiles())

    def stop(self) -> None:
        """`run()` returns once the frames in flight are finished (at most two with `overlap`),
        closing the source and the recording."""
        self._stopped.set()
        self._wake.set()

    # what was asked last, whether or not it is in force yet
    @property
    def options(self) -> RecognizerOptions:
        with self._lock:
            return self._asked(SetOptions, "options", self._options)

    @property
    def view(self) -> ViewOptions:
        with self._lock:
            return self._asked(SetView, "view", self._view)

    @property
    def paused(self) -> bool:
        with self._lock:
            return self._asked(SetPaused, "paused", self._paused)

    def _asked(self, kind: type, name: str, in_force):
        """The newest queued (or being applied) `kind` request's `name`; hold the lock."""
        waiting = [r for r in (self._applying, *self._queue) if isinstance(r, kind)]
        return getattr(waiting[-1], name) if waiting else in_force

    # ---- the session's thread ---------------------------------------------------------------
    def run(self) -> None:
        """Frames until `stop()`, in the calling thread."""
        try:
            while not self._stopped.is_set():
                self._apply_requests()
                latest = self._latest
                if self._paused or latest is None or self.recognizer is None:
                    self._wake.wait(0.05)
                    self._wake.clear()
                    continue
                self._play(latest)
        finally:
            self._close_source()
            if self.recognizer is not None:
                self.recognizer.close()

    def _play(self, latest: LatestFrame) -> None:
        """Frames of `latest` until a request comes, `stop()`, or the source ends. With
        `overlap`, a second thread finds the faces of the next frame while this one finishes
        the frame before (`fer_core.stages`), one frame ahead. A request lets the frame in
        flight finish first, so it applies between frames as without overlap, and the next
        frame is found with what it asked for (a new source, model, mirror)."""
        enough = threading.Event()  # find no more frames: what was found still finishes
        found = self._found(latest, enough)
        if self.overlap:
            found = read_ahead(found, depth=1)
        try:
            for item in found:
                self._report(latest.source)
                if item is not None:
                    self._finish(*item)
                if self._stopped.is_set() or self._waiting():
                    enough.set()
        finally:
            found.close()
        if not enough.is_set():  # the found frames ran out on their own: the source ended
            self.callbacks.source_ended(latest.source.name)
            self._close_source()

    def _found(self, latest: LatestFrame, enough: threading.Event) -> Iterator[tuple | None]:
        """(frame, image as recognised, what `find` saw) for each new frame, None when no
        new frame came for a moment (the session looks at its requests then)."""
        while not enough.is_set():
            frame = latest.get(timeout=0.05)
            if frame is None:
                if latest.ended:
                    return
                yield None
                continue
            mirror = self._view.mirror
            image = np.ascontiguousarray(frame.image[:, ::-1]) if mirror else frame.image
            yield frame, image, self.recognizer.find(image, frame.still)

    def _waiting(self) -> bool:
        with self._lock:
            return bool(self._queue)

    def _apply_requests(self) -> None:
        while True:
            with self._lock:
                self._applying = self._queue.popleft() if self._queue else None
                request = self._applying
            if request is None:
                return
            self._apply_request[type(request)](request)
            with self._lock:
                self._applying = None

    def _finish(self, frame: Frame, image: np.ndarray, found: Found) -> None:
        view, latest = self._view, self._latest
        result = self.recognizer.finish(image, found, frame.index, frame.time_s)
        shown = Shown(image, result, self.labels, view, latest.source.name, self._rate.tick(),
                      latest.dropped)  # fmt: skip
        if self._recording is not None:
            try:
                self._recording.write(shown.picture, result)
            except OSError as error:
                self.callbacks.event("error", f"recording stopped, nothing kept: {error}")
                self._recording.discard()
                self._recording = None
                self.callbacks.recording_changed(None)
        self.callbacks.frame(shown)
        for track_id, label in self.recognizer.lessons.take_taught():
            self.callbacks.taught(track_id, label, self.recognizer.profile(track_id))

    def _load(self, options: RecognizerOptions) -> None:
        """The running recognizer takes `options` if it can, else a new one is built; if that
        fails the running one stays."""
        if self.recognizer is not None and self.recognizer.reconfigure(options):
            self._options = options
            return
        try:
            recognizer = Recognizer(options)
        except (OSError, ValueError, RuntimeError) as error:
            if self.recognizer is not None:
                self.callbacks.event("error", f"model not changed: {error}")
                return
            fallback = replace(options, model=None, backend="onnxruntime", device="cpu")
            if options == fallback:
                self.callbacks.event("error", f"no model can run: {error}")
                return
            # nothing runs yet (a remembered package that is gone): start on the default one
            self.callbacks.event("error", f"{error}; using the default model on onnxruntime")
            self._load(fallback)
            return
        if self.recognizer is not None:
            self.recognizer.close()
        if self.labels and tuple(recognizer.labels) != self.labels:
            self._record(None)  # new CSV columns: the recording ends here
        self.recognizer, self._options = recognizer, options
        self.labels = tuple(recognizer.labels)
        self.callbacks.model_changed(recognizer.classifier.package.name)

    def _open(self, make: Callable[[], Source]) -> None:
        try:
            source = make()
        except (SourceError, OSError) as error:
            self.callbacks.source_failed(str(error))
            return  # the old source goes on
        self._close_source()
        if self.recognizer is not None:
            self.recognizer.reset()
        if not source.live:
            source = Paced(source)
        self.callbacks.source_opened(source.name)
        self._latest = LatestFrame(source)
        self._pause(self._paused)

    def _close_source(self) -> None:
        self._record(None)  # a recording ends with its source (the next may differ in size)
        if self._latest is not None:
            self._latest.close()
            self._latest = None

    def _pause(self, paused: bool) -> None:
        self._paused = paused
        if self._latest is not None and isinstance(self._latest.source, Paced):
            self._latest.source.paused = paused  # a video's clock stops with it

    def _teach(self, request: Teach) -> None:
        if self.recognizer is None:
            return
        try:
            if request.label == NEUTRAL and request.name is None:
                frames = self.recognizer.calibrate(request.track_id)
            else:
                frames = self.recognizer.teach(request.track_id, request.label, request.name)
        except ValueError as error:
            self.callbacks.event("error", str(error))
            return
        self.callbacks.event(
            "info", f"face #{request.track_id}: hold {request.label} ({frames} frames)"
        )

    def _use_profile(self, profile: Profile, track_id: int | None) -> None:
        if self.recognizer is None:
            return
        try:
            self.recognizer.use_profile(profile, track_id)
        except ValueError as error:  # another model's profile, or a face no longer tracked
            self.callbacks.event("error", str(error))
            return
        face = "the largest face" if track_id is None else f"face #{track_id}"
        self.callbacks.event("info", f"{face} is read with profile {profile.name!r}")

    def _clear_profiles(self) -> None:
        if self.recognizer is not None:
            self.recognizer.clear_profiles()
            self.callbacks.event("info", "profiles and calibrations cleared")

    def _record(self, folder: Path | None) -> None:
        """End the running recording, if any; then start one in `folder`, if given."""
        if self._recording is not None:
            recording, self._recording = self._recording, None
            try:
                recording.close()
            except OSError as error:
                self.callbacks.event("error", f"recording not kept: {error}")
            self.callbacks.recording_changed(None)
        if folder is None:
            return
        latest = self._latest
        fps = latest.source.fps if latest is not None else 0.0  # 0: the writer's default
        stem = free_stem(folder, time.strftime("fer-%Y%m%d-%H%M%S"), ".mp4")
        try:
            blendshapes = self._options.faces.blendshapes
            self._recording = Recording(folder, stem, list(self.labels), fps, blendshapes)
        except OSError as error:
            self.callbacks.event("error", f"cannot record into {folder}: {error}")
            return
        self.callbacks.recording_changed(self._recording.paths)

    def _report(self, source: Source) -> None:
        while source.events:
            event = source.events.popleft()
            self.callbacks.event(event.kind, event.message)


def free_stem(folder: Path, stem: str, suffix: str) -> str:
    """`stem`, or `stem-2`, `stem-3`, … if a file of that name is already in `folder`."""
    candidate, n = stem, 1
    while (folder / f"{candidate}{suffix}").exists():
        n += 1
        candidate = f"{stem}-{n}"
    return candidate

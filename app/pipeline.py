"""The app's engine thread: a `fer_core.live.LiveSession` run in a QThread, its callbacks
turned into Qt signals (queued into the GUI thread), so the GUI never waits on a camera, a
model load or a frame. The requests are the session's own (thread-safe, applied between frames).

Painting is the GUI's (the overlays too, at the view's resolution): the pipeline hands over a
finished `Shown` frame, at most one at a time (a new one replaces a frame the GUI has not taken
yet, so a busy GUI sees the present).
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QThread, Signal

from fer_core.live import LiveCallbacks, LiveSession, Rate, Shown, ViewOptions
from fer_core.recognizer import RecognizerOptions

__all__ = ["Pipeline", "Rate", "Shown", "ViewOptions"]  # what the window takes from here


class Pipeline(QThread):
    shown = Signal()  # a new `Shown` waits in `take()`
    event = Signal(str, str)  # kind ("error", "retry", "recovered", "info"), message
    source_opened = Signal(str)  # the source's name
    source_failed = Signal(str)  # why the requested source did not open (the old one goes on)
    source_ended = Signal(str)  # the source's name: a video or folder reached its end
    model_changed = Signal(str)  # the package name now running
    recording_changed = Signal(object)  # (video path, csv path) when it starts, None at stop
    taught = Signal(int, str, object)  # track id, label, its profile: a face learnt an expression

    def __init__(self, options: RecognizerOptions, view: ViewOptions | None = None):
        super().__init__()
        self.setObjectName("inference")
        self._lock = threading.Lock()
        self._shown: Shown | None = None
        callbacks = LiveCallbacks(
            frame=self._hand_over,
            event=self.event.emit,
            source_opened=self.source_opened.emit,
            source_failed=self.source_failed.emit,
            source_ended=self.source_ended.emit,
            model_changed=self.model_changed.emit,
            recording_changed=self.recording_changed.emit,
            taught=self.taught.emit,
        )
        self.session = LiveSession(options, view, callbacks)
        # the requests and what they asked for, as the session has them
        self.open_source = self.session.open_source
        self.set_options = self.session.set_options
        self.set_view = self.session.set_view
        self.set_paused = self.session.set_paused
        self.start_recording = self.session.start_recording
        self.stop_recording = self.session.stop_recording
        self.teach = self.session.teach
        self.calibrate = self.session.calibrate
        self.use_profile = self.session.use_profile
        self.clear_profiles = self.session.clear_profiles

    @property
    def options(self) -> RecognizerOptions:
        return self.session.options

    @property
    def view(self) -> ViewOptions:
        return self.session.view

    @property
    def paused(self) -> bool:
        return self.session.paused

    def take(self) -> Shown | None:
        """The newest finished frame, once (None if there is nothing new)."""
        with self._lock:
            shown, self._shown = self._shown, None
        return shown

    def stop(self, timeout_ms: int = 5000) -> None:
        self.session.stop()
        self.wait(timeout_ms)

    def run(self) -> None:
        self.session.run()

    def _hand_over(self, shown: Shown) -> None:
        with self._lock:
            self._shown = shown
        self.shown.emit()

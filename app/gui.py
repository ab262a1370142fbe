"""The window opened for real: the Qt half of `python -m app` (after `app.launch`'s checks
passed) and of `python -m app benchmark --window`. The Qt-free modules import this only inside
the function that opens a window (the two imports `[tool.importlinter]` allows), so the
headless paths never load Qt."""

from __future__ import annotations

import contextlib
import signal
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from app.settings import APPLICATION, ORGANISATION, AppSettings, open_store
from app.window import MainWindow, run_for
from fer_core.capture import list_cameras
from fer_core.demo import write_demo_video
from fer_core.outputs import STOPS, signals_handled


def show(source: str | None, model: str | None, settings: str | None, frames: int | None,
         screenshot: str | None, report_at_end: bool) -> int:  # fmt: skip
    """The window until it is closed (or after `frames` frames); the app's exit status."""
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    cameras = [] if source else list_cameras()
    window = MainWindow(open_store(settings), source, cameras, model)
    with closed_by_signals(window) as stop:
        window.show()
        if frames:
            run_for(window, frames, screenshot, window.close)
        code = app.exec()
    if report_at_end:
        print(report(window))
    return 2 if stop.signal else code


class SignalClose:
    """What `closed_by_signals` does with a signal: the window is closed as its close button
    closes it, once, and one line says so."""

    def __init__(self, window: MainWindow):
        self.window = window
        self.signal: int | None = None  # the first stop received
        self.line = ""

    def handle(self, signum, frame) -> None:
        # Python runs this between two of its own steps, maybe inside a slot: the window is
        # closed from the event loop, after it
        if self.signal is None:
            self.signal = signum
            QTimer.singleShot(0, self.close)

    def close(self) -> None:
        recording = self.window.recording
        self.window.close()  # stops the engine, which finishes the recording (closeEvent)
        self.line = f"stopped by {signal.Signals(self.signal).name}: the window closed"
        if recording and recording[0].is_file():
            self.line += f"; the recording is kept: {recording[0]} and {recording[1].name}"
        with contextlib.suppress(OSError):  # a closed terminal (SIGHUP) takes no line
            print(self.line, file=sys.stderr, flush=True)


@contextlib.contextmanager
def closed_by_signals(window: MainWindow) -> Iterator[SignalClose]:
    """Ctrl-C in the terminal (SIGINT), a kill (SIGTERM) or a closed terminal (SIGHUP) close
    `window` as the user closing it does, so a running recording is finished and kept; the
    caller exits with status 2 when `.signal` is set. Python's handlers run only when the
    interpreter has control, never inside Qt's event loop: a timer gives it control five
    times a second."""
    stop = SignalClose(window)
    tick = QTimer(window)
    tick.timeout.connect(lambda: None)
    tick.start(200)
    try:
        with signals_handled(STOPS, stop.handle):
            yield stop
    finally:
        tick.stop()


def report(window: MainWindow) -> str:
    """The app's own figures: frames painted per second and the engine's stage medians."""
    shown = window.current
    stages = ", ".join(f"{k} {v:.2f}" for k, v in window.stage_medians().items())
    return "\n".join([
        f"{window.frames_shown} frames shown: {window.mean_view_fps():.1f} frames/s painted "
        f"(first to last frame), engine {shown.engine_fps if shown else 0:.1f} frames/s at the "
        f"end, {shown.dropped if shown else 0} frames dropped by capture",
        f"median ms over the last 30 frames: {stages}",
    ])  # fmt: skip


def window_rates(cases, frames: int, video_fps: float, model: str | None) -> list[tuple]:
    """(faces, face width, the window's report) per (faces, face width) case, with the app's
    default settings, each on a demo video of its own."""
    app = QApplication.instance() or QApplication(["benchmark"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for faces, width in cases:
            name = f"{faces}-{width or 'grid'}"
            video = write_demo_video(Path(tmp) / f"{name}.avi", frames, faces, video_fps, width)
            store = open_store(f"{tmp}/settings-{name}.ini")
            AppSettings(model=model or "", output_folder=tmp).save(store)
            window = MainWindow(store, str(video), cameras=[])
            window.show()
            run_for(window, frames, None, app.quit)
            app.exec()
            rows.append((faces, width, report(window)))
            window.close()
    return rows

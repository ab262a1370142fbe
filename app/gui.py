"""The window opened for real: the Qt half of `python -m app` (after `app.launch`'s checks
passed) and of `python -m app benchmark --window`. The Qt-free modules import this only inside
the function that opens a window (the two imports `[tool.importlinter]` allows), so the
headless paths never load Qt."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PySide6.QtWidgets import QApplication

from app.settings import APPLICATION, ORGANISATION, AppSettings, open_store
from app.window import MainWindow, run_for
from fer_core.capture import list_cameras
from fer_core.demo import write_demo_video


def show(source: str | None, model: str | None, settings: str | None, frames: int | None,
         screenshot: str | None, report_at_end: bool) -> int:  # fmt: skip
    """The window until it is closed (or after `frames` frames); the app's exit status."""
    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    cameras = [] if source else list_cameras()
    window = MainWindow(open_store(settings), source, cameras, model)
    window.show()
    if frames:
        run_for(window, frames, screenshot, window.close)
    code = app.exec()
    if report_at_end:
        print(report(window))
    return code


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

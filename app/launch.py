"""`python -m app [--source PATH|INDEX|demo]`: the desktop window.

Without `--source` it opens the first camera that works, or, on a machine without one, the
labelled demo source, saying so. `--frames N` closes the window after N frames (with
`--screenshot PNG` and `--report`: screenshots and the app's own frame rate, no person needed).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.display import forget_opencv_qt
from app.display import problem as display_problem
from fer_core.capture import SourceError, list_cameras, open_source
from fer_core.zoo import PackageError, load_package


def parse(argv: list[str]) -> argparse.Namespace:
    from app.__main__ import VERBS

    verbs = "\n".join(f"  {verb:<10} {what}" for verb, (_, what) in VERBS.items())
    p = argparse.ArgumentParser(
        prog="python -m app",
        description=__doc__,
        epilog=f"other commands (`python -m app VERB --help`):\n{verbs}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--source", help="a video file, a folder of images, a camera index, or 'demo'")
    p.add_argument(
        "--model",
        help="a model package's name, or its folder anywhere, e.g. one just exported "
        "(default: the last one used)",
    )
    p.add_argument("--settings", help="an INI file to keep the settings in (default: the user's)")
    p.add_argument("--frames", type=int, help="close after this many frames are shown")
    p.add_argument("--screenshot", help="with --frames: save the window to this PNG first")
    p.add_argument("--report", action="store_true",
                   help="at the end print the frame rates and stage milliseconds")  # fmt: skip
    return p.parse_args(argv)


def check_source(spec: str) -> str | None:
    """An error message for a `--source` that cannot be opened or gives no frame, else None
    (tried before the window opens: a window waiting for frames that never come would
    wait forever)."""
    if spec == "demo":
        return None
    camera = spec.isdigit() or spec.startswith("camera:")
    if not camera and not Path(spec).exists():
        return f"{spec}: no such file or folder (expected a video, a folder of images, a camera "
        "index such as 0, or 'demo')"
    try:
        with open_source(f"camera:{spec}" if spec.isdigit() else spec) as source:
            if not camera and source.read() is None:
                return f"{spec}: no frame could be decoded (expected a video OpenCV's FFmpeg "
                "reads, e.g. MP4/H.264, AVI/MJPG, MKV, WebM)"
    except SourceError as error:
        return str(error)
    return None


def check_model(spec: str) -> str | None:
    """An error message for a `--model` that names no usable package, else None."""
    try:
        load_package(spec)
    except PackageError as error:
        return f"--model {spec}: {error}"
    return None


def main(argv: list[str]) -> int:
    args = parse(argv)
    forget_opencv_qt()  # before PySide6 is imported (app.settings)
    from app.settings import check_settings

    checks = ((args.source, check_source), (args.model, check_model),
              (args.settings, check_settings))  # fmt: skip
    for given, check in checks:
        if given and (problem := check(given)):
            print(f"error: {problem}", file=sys.stderr)
            return 2
    if args.screenshot and not args.frames:
        print("error: --screenshot needs --frames N (when to take it)", file=sys.stderr)
        return 2
    if cannot := display_problem():
        print(f"error: {cannot}", file=sys.stderr)
        return 2
    source = f"camera:{args.source}" if args.source and args.source.isdigit() else args.source

    from PySide6.QtWidgets import QApplication

    from app.settings import APPLICATION, ORGANISATION, open_store
    from app.window import MainWindow, run_for

    app = QApplication.instance() or QApplication([sys.argv[0]])
    app.setOrganizationName(ORGANISATION)
    app.setApplicationName(APPLICATION)
    cameras = [] if source else list_cameras()
    window = MainWindow(open_store(args.settings), source, cameras, args.model)
    window.show()
    if args.frames:
        run_for(window, args.frames, args.screenshot, window.close)
    code = app.exec()
    if args.report:
        print(report(window))
    return code


def report(window) -> str:
    """The app's own figures: frames painted per second and the engine's stage medians."""
    shown = window.current
    stages = ", ".join(f"{k} {v:.2f}" for k, v in window.stage_medians().items())
    return "\n".join([
        f"{window.frames_shown} frames shown: {window.mean_view_fps():.1f} frames/s painted "
        f"(first to last frame), engine {shown.engine_fps if shown else 0:.1f} frames/s at the "
        f"end, {shown.dropped if shown else 0} frames dropped by capture",
        f"median ms over the last 30 frames: {stages}",
    ])  # fmt: skip

"""`python -m app [--source PATH|INDEX|demo]`: the desktop window.

Without `--source` it opens the first camera that works, or, on a machine without one, the
labelled demo source, saying so. `--frames N` closes the window after N frames (with
`--screenshot PNG` and `--report`: screenshots and the app's own frame rate, no person needed).

Everything here runs before Qt is loaded (no display needed): the window itself opens in
`app.gui` once the checks passed.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from app.display import forget_opencv_qt
from app.display import problem as display_problem
from app.verbs import VERBS
from fer_core.capture import SourceError, open_source
from fer_core.outputs import is_special
from fer_core.zoo import PackageError, load_package


def parse(argv: list[str]) -> argparse.Namespace:
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
        return (
            f"{spec}: no such file or folder (expected a video, a folder of images, a camera "
            "index such as 0, or 'demo')"
        )
    try:
        with open_source(f"camera:{spec}" if spec.isdigit() else spec) as source:
            if not camera and source.read() is None:
                return (
                    f"{spec}: no frame could be decoded (expected a video OpenCV's FFmpeg "
                    "reads, e.g. MP4/H.264, AVI/MJPG, MKV, WebM)"
                )
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


# the lines Qt's INI files hold: blank, [section], key=value (Qt drops the rest on a rewrite)
INI_LINE = re.compile(r"\s*(\[.*\]|[^;#=\s][^=]*=.*)?\s*")


def check_settings(path: str) -> str | None:
    """An error message for a `--settings` file the app cannot keep its settings in without
    losing what it holds, else None (a new file, an INI file, a device or a FIFO)."""
    file = Path(path)
    if not file.exists() or is_special(file):
        return None
    if file.is_dir():
        return f"--settings {path}: is a folder; expected an INI file"
    expected = "expected an INI file the app wrote, or a new file name"
    try:
        lines = file.read_bytes().decode("utf-8-sig").splitlines()
    except UnicodeDecodeError:
        return f"--settings {path}: not a text file; {expected}"
    except OSError as error:
        return f"--settings {path}: cannot be read ({error.strerror or error}); {expected}"
    for number, line in enumerate(lines, 1):
        if not INI_LINE.fullmatch(line):
            return (
                f"--settings {path}: line {number} ({line.strip()[:40]!r}) is no INI "
                f"[section] or key=value line and would be lost; {expected}"
            )
    return None


def main(argv: list[str]) -> int:
    args = parse(argv)
    forget_opencv_qt()  # before PySide6 is imported (app.gui)
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

    from app.gui import show  # Qt, only now

    return show(source, args.model, args.settings, args.frames, args.screenshot, args.report)

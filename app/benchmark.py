"""`python -m app benchmark`: the speed of the headless pipeline with the default settings on
640×480 demo videos (one face; five on a grid, about 100 px; five side by side, 70 px and
40 px wide, a group further away), as `analyze` runs it: decode, detect, align, classify,
track, draw, write MP4 + CSV. It prints the share of the faces detected and shown in every
frame, the frames per second end to end and each stage's median ms. Targets on 2 CPU cores: ≥ 100
frames/s with one face, ≥ 60 with five, every face found.

`--window`: the desktop app's own rate instead: the real window (offscreen when there is no
display) plays the same videos at their frame rate (`--video-fps`, 60 by default, above a
webcam's 30) with capture, engine and painting in their threads, and reports the frames it
painted per second."""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from app.analyze import AnalysisSummary, add_arguments, analyze
from fer_core.demo import write_demo_video

# (faces, face width in px: None on a grid sized to the frame, else side by side)
CASES = ((1, None), (5, None), (5, 70), (5, 40))


def scene(faces: int, width: int | None) -> str:
    return f"{faces} on a grid" if width is None else f"{faces} × {width} px"


def run(frames: int, flags: list[str]) -> list[tuple]:
    rows = []
    parser = argparse.ArgumentParser()
    add_arguments(parser)  # each case runs exactly as `analyze` with these flags
    with tempfile.TemporaryDirectory() as tmp:
        for faces, width in CASES:
            name = f"{faces}-{width or 'grid'}"
            video = write_demo_video(Path(tmp) / f"{name}.avi", frames, faces, face_width=width)
            argv = [str(video), "--out", f"{tmp}/{name}.mp4", "--csv", f"{tmp}/{name}.csv",
                    "--no-progress", *flags]  # fmt: skip
            rows.append((faces, width, analyze(parser.parse_args(argv))))
    return rows


def format_rows(rows: list[tuple[int, int | None, AnalysisSummary]]) -> str:
    stages = ["detect", "align", "classify", "track", "draw + write"]
    head = f"{'faces':>13} {'detected':>9} {'shown':>7} {'frames/s':>9} " + " ".join(
        f"{s + ' ms':>14}" for s in stages
    )
    lines = [head]
    for faces, width, s in rows:
        cells = " ".join(f"{s.stage_ms.get(k, 0.0):>14.2f}" for k in stages)
        every = faces * s.frames or 1
        shown, detected = s.faces / every, (s.faces - s.held) / every
        lines.append(
            f"{scene(faces, width):>13} {detected:>9.1%} {shown:>7.1%} {s.fps:>9.1f} {cells}"
        )
    return "\n".join(lines)


def window_rates(frames: int, video_fps: float, model: str | None) -> list[tuple]:
    """(faces, face width, the window's report) per case, with the app's default settings."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # before Qt is loaded
    from app.gui import window_rates as measure

    return measure(CASES[:3], frames, video_fps, model)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app benchmark", description=__doc__)
    parser.add_argument("--frames", type=int, default=300, help="frames per video (300)")
    parser.add_argument("--window", action="store_true", help="the desktop app's frame rate")
    parser.add_argument("--video-fps", type=float, default=60.0,
                        help="with --window: the videos' frame rate (60)")  # fmt: skip
    parser.add_argument("--model", help="model package (default: the default package)")
    # headless only: any of analyze's engine flags (default: analyze's defaults)
    for flag in ("--precision", "--threads", "--detector"):
        parser.add_argument(flag, help=f"headless: analyze's {flag} (its default if not given)")
    parser.add_argument("--no-zoom", action="store_true", help="headless: analyze's --no-zoom")
    args = parser.parse_args(argv)
    if args.window:
        if args.precision or args.threads or args.detector or args.no_zoom:
            parser.error("--window measures the app with its default engine settings")
        for faces, width, text in window_rates(args.frames, args.video_fps, args.model):
            print(f"{scene(faces, width)}, {args.video_fps:g} fps video:\n{text}\n")
        return 0
    flags = [part for flag in ("model", "precision", "threads", "detector")
             if getattr(args, flag) for part in (f"--{flag}", getattr(args, flag))]  # fmt: skip
    flags += ["--no-zoom"] if args.no_zoom else []
    print(format_rows(run(args.frames, flags)))
    print("\ndetected: faces the detector found / (faces × frames); shown: face rows, with the "
          "faces it missed held at their last place (up to 2 frames); frames/s end to end: "
          "decode + engine + drawing + MP4/CSV writing; stage columns are medians")  # fmt: skip
    return 0

"""`python -m app benchmark`: the speed of the headless pipeline on 640×480 demo videos with
one face and with five (the issue's targets: ≥ 30 and ≥ 15 frames/s on 2 CPU cores), as
`analyze` runs it: decode, detect, align, classify, track, draw, write MP4 + CSV.

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

# faces in the frame → the detector that finds them all (five 100-px faces need full range)
CASES = ((1, "short"), (5, "full"))


def run(frames: int, model: str | None, precision: str, threads: int) -> list[tuple]:
    rows = []
    parser = argparse.ArgumentParser()
    add_arguments(parser)  # each case runs exactly as `analyze` with these flags
    with tempfile.TemporaryDirectory() as tmp:
        for faces, detector in CASES:
            video = write_demo_video(Path(tmp) / f"demo-{faces}.avi", frames, faces)
            argv = [str(video), "--out", f"{tmp}/out-{faces}.mp4", "--csv", f"{tmp}/f-{faces}.csv",
                    "--detector", detector, "--precision", precision, "--threads", str(threads),
                    "--no-progress"] + (["--model", model] if model else [])  # fmt: skip
            rows.append((faces, detector, analyze(parser.parse_args(argv))))
    return rows


def format_rows(rows: list[tuple[int, str, AnalysisSummary]]) -> str:
    stages = ["detect", "align", "classify", "track", "write"]
    head = f"{'faces':>5} {'detector':>8} {'frames/s':>9} {'face rows':>9} " + " ".join(
        f"{s + ' ms':>11}" for s in stages
    )
    lines = [head]
    for faces, detector, s in rows:
        cells = " ".join(f"{s.stage_ms.get(k, 0.0):>11.2f}" for k in stages)
        lines.append(f"{faces:>5} {detector:>8} {s.fps:>9.1f} {s.faces:>9} {cells}")
    return "\n".join(lines)


def window_rates(frames: int, video_fps: float, model: str | None) -> list[tuple]:
    """(faces, detector, the window's report) per case."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from app.launch import report
    from app.settings import AppSettings, open_store
    from app.window import MainWindow, run_for

    app = QApplication.instance() or QApplication(["benchmark"])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for faces, detector in CASES:
            video = write_demo_video(Path(tmp) / f"demo-{faces}.avi", frames, faces, video_fps)
            store = open_store(f"{tmp}/settings-{faces}.ini")
            AppSettings(model=model or "", detector=detector, output_folder=tmp).save(store)
            window = MainWindow(store, str(video), cameras=[])
            window.show()
            run_for(window, frames, None, app.quit)
            app.exec()
            rows.append((faces, detector, report(window)))
            window.close()
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app benchmark", description=__doc__)
    parser.add_argument("--frames", type=int, default=300, help="frames per video (300)")
    parser.add_argument("--model", help="model package (default: the default package)")
    parser.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    parser.add_argument("--threads", type=int, default=1, help="classifier threads (1)")
    parser.add_argument("--window", action="store_true", help="the desktop app's frame rate")
    parser.add_argument("--video-fps", type=float, default=60.0,
                        help="with --window: the videos' frame rate (60)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.window and (args.precision, args.threads) != ("fp32", 1):
        parser.error("--window measures the app as it runs: fp32, 1 classifier thread")
    if args.window:
        for faces, detector, text in window_rates(args.frames, args.video_fps, args.model):
            print(f"{faces} face(s), {detector} detector, {args.video_fps:g} fps video:\n{text}\n")
        return 0
    rows = run(args.frames, args.model, args.precision, args.threads)
    print(format_rows(rows))
    print("\nend to end: decode + engine + drawing + MP4/CSV writing; stage columns are medians")
    return 0

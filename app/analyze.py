"""`python -m app analyze VIDEO --out ANNOTATED.mp4 --csv FACES.csv`: the engine over a whole
video as fast as it goes, no display: the annotated video, one row per face per frame (CSV
and/or JSON lines), a progress bar, and at the end the per-stage milliseconds and the frames
per second. Qt-free: it runs on a server.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field

from fer_core.capture import SourceError, VideoSource, frames
from fer_core.faces import DETECTORS, FaceOptions
from fer_core.overlay import draw
from fer_core.recognizer import Recognizer, RecognizerOptions
from fer_core.recording import AnnotatedVideo, write_png
from fer_core.results import FaceLog
from fer_core.timeline import Timeline
from fer_core.track import SMOOTHERS, TrackerOptions


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="the video file to analyse")
    p.add_argument("--out", help="annotated video to write (.mp4)")
    p.add_argument("--csv", help="faces as CSV: one row per face per frame")
    p.add_argument("--json", help="faces as JSON lines (the same rows)")
    p.add_argument("--timeline", help="a picture of each face's probabilities over time (.png)")
    p.add_argument("--model", help="model package name or folder (default: the default package)")
    p.add_argument("--precision", choices=("fp32", "int8"), default="fp32")
    p.add_argument("--threads", type=int, default=1, help="classifier threads (default 1)")
    p.add_argument("--detector", choices=tuple(DETECTORS), default="short",
                   help="short: faces near the camera (fast); full: small faces too")  # fmt: skip
    p.add_argument("--landmarks", action="store_true", help="run and draw the 478 landmarks")
    p.add_argument("--smoothing", choices=tuple(SMOOTHERS), default="ema")
    p.add_argument("--threshold", type=float, default=0.4,
                   help="smoothed probability below which the label is 'uncertain'")  # fmt: skip
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass
class AnalysisSummary:
    frames: int = 0
    faces: int = 0  # face rows written
    seconds: float = 0.0  # wall time of the whole loop (decode, engine, draw, write)
    stage_ms: dict[str, float] = field(default_factory=dict)  # medians per frame
    events: list[str] = field(default_factory=list)

    @property
    def fps(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def report(self) -> str:
        stages = ", ".join(f"{k} {v:.2f}" for k, v in self.stage_ms.items())
        lines = [
            f"{self.frames} frames, {self.faces} face rows in {self.seconds:.1f} s: "
            f"{self.fps:.1f} frames/s end to end",
            f"median ms per frame: {stages}",
        ]
        return "\n".join(lines + [f"note: {e}" for e in self.events])


def analyze(args: argparse.Namespace) -> AnalysisSummary:
    from tqdm import tqdm

    options = RecognizerOptions(
        model=args.model,
        precision=args.precision,
        threads=args.threads,
        faces=FaceOptions(detector=args.detector, landmarks=args.landmarks),
        tracker=TrackerOptions(smoothing=args.smoothing, threshold=args.threshold),
    )
    summary = AnalysisSummary()
    timings: dict[str, list[float]] = {}
    outputs = [(args.csv, "csv"), (args.json, "jsonl")]
    with ExitStack() as stack:
        source = stack.enter_context(VideoSource(args.video))
        recognizer = stack.enter_context(Recognizer(options))
        labels = recognizer.labels
        # each log is renamed from .partial only if the whole video went through
        logs = [stack.enter_context(FaceLog(path, labels, fmt)) for path, fmt in outputs if path]
        video = stack.enter_context(AnnotatedVideo(args.out, source.fps)) if args.out else None
        timeline = Timeline(labels, seconds=math.inf) if args.timeline else None
        bar = stack.enter_context(
            tqdm(total=source.frame_count or None, unit="frame", disable=args.no_progress)
        )
        started = time.perf_counter()
        for frame in frames(source):
            result = recognizer.process_frame(frame)
            t0 = time.perf_counter()
            for log in logs:
                log.write(result)
            if video is not None:
                video.write(draw(frame.image, result, labels, landmarks=args.landmarks))
            if timeline is not None:
                timeline.add(result)
            result.timings_ms["write"] = (time.perf_counter() - t0) * 1e3
            for k, v in result.timings_ms.items():
                timings.setdefault(k, []).append(v)
            summary.frames += 1
            summary.faces += len(result.faces)
            bar.update()
        summary.seconds = time.perf_counter() - started
        summary.events = [e.message for e in source.events]
        if timeline is not None:
            write_png(args.timeline, timeline.picture())
    summary.stage_ms = {k: statistics.median(v) for k, v in timings.items()}
    return summary


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app analyze",
        description="analyse a video headless: annotated video, faces as CSV / JSON lines",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    if not (args.out or args.csv or args.json or args.timeline):
        parser.error("nothing to write: give --out, --csv, --json and/or --timeline")
    try:
        summary = analyze(args)
    except (SourceError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary.report())
    for path in (args.out, args.csv, args.json, args.timeline):
        if path:
            print(f"wrote {path}")
    return 0

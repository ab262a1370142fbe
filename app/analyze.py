"""`python -m app analyze VIDEO --out ANNOTATED.mp4 --csv FACES.csv`: the engine over a whole
video (or a folder of images) as fast as it goes, no display: the annotated video, one row per
face per frame (CSV and/or JSON lines), a progress bar, and at the end the per-stage
milliseconds and the frames per second. Qt-free: it runs on a server.

Every output is checked before the first frame, written under a `.partial` name and renamed
only when the whole input went through; an error or Ctrl-C (or SIGTERM, SIGHUP) removes what
this run wrote.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from fer_core.capture import Frame, ImageFolderSource, SourceError, VideoSource, frames
from fer_core.faces import DETECTORS, FaceOptions
from fer_core.outputs import check_outputs, stops_as_interrupts
from fer_core.overlay import draw
from fer_core.profile import Profile
from fer_core.recognizer import Recognizer, RecognizerOptions
from fer_core.recording import AnnotatedVideo, write_png
from fer_core.results import FaceLog, FrameResult
from fer_core.stages import Behind, read_ahead
from fer_core.timeline import Timeline
from fer_core.track import SMOOTHERS, TrackerOptions
from fer_core.zoo import THREADS_EXPECTED, check_threads

PRECISIONS = ("auto", "fp32", "int8")


def _threads(text: str) -> int:
    """An argparse type: a thread count the classifier takes (argparse names the flag)."""
    try:
        threads = int(text)
        check_threads(threads)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {THREADS_EXPECTED}, got {text!r}") from None
    return threads


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("video", help="the video file (or folder of images) to analyse")
    p.add_argument("--out", help="annotated video to write (.mp4)")
    p.add_argument("--csv", help="faces as CSV: one row per face per frame")
    p.add_argument("--json", help="faces as JSON lines (the same rows)")
    p.add_argument("--timeline", help="a picture of each face's probabilities over time (.png)")
    p.add_argument("--model", help="model package name or folder (default: the default package)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="auto: int8 where the package has it, else fp32")  # fmt: skip
    p.add_argument("--threads", type=_threads, default=RecognizerOptions.threads,
                   help=f"classifier threads (default {RecognizerOptions.threads})")  # fmt: skip
    p.add_argument("--detector", choices=tuple(DETECTORS), default=FaceOptions.detector,
                   help="full: every face from ~40 px (default); short: close-ups only, "
                   "about 2.5 ms faster")  # fmt: skip
    p.add_argument("--no-zoom", dest="zoom", action="store_false",
                   help="full detector: do not look again, magnified, for faces under ~64 px "
                   "(faster with small faces; finds 4 in 5 faces of 40 px, not all)")  # fmt: skip
    p.add_argument("--landmarks", action="store_true", help="run and draw the 478 landmarks")
    p.add_argument("--blendshapes", action="store_true",
                   help="add MediaPipe's 52 blendshape scores (bs_*) to the CSV / JSON rows "
                   "(runs the landmarker: about 10 ms a face)")  # fmt: skip
    p.add_argument("--smoothing", choices=tuple(SMOOTHERS), default="ema")
    p.add_argument("--threshold", type=float, default=0.4,
                   help="smoothed probability below which the label is 'uncertain'")  # fmt: skip
    p.add_argument(
        "--profile",
        help="a saved personal profile (.profile.json, taught in the "
        "app or with Recognizer.teach) to read the largest face with",
    )
    p.add_argument(
        "--profile-face",
        type=int,
        metavar="ID",
        help="read face ID (its face_id in the CSV) with --profile, not the largest",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


@dataclass
class AnalysisSummary:
    frames: int = 0
    faces: int = 0  # face rows written
    held: int = 0  # of them, faces the detector missed in that frame, kept at their last place
    seconds: float = 0.0  # wall time of the whole loop (decode, engine, draw, write)
    stage_ms: dict[str, float] = field(default_factory=dict)  # medians per frame
    events: list[str] = field(default_factory=list)
    left_out: str = ""  # the faces the --timeline picture could not draw, if any

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


def open_input(path: str) -> VideoSource | ImageFolderSource:
    if Path(path).is_dir():
        return ImageFolderSource(path)
    if not Path(path).exists():
        raise SourceError(
            f"{path}: no such file or folder (expected a video or a folder of images)"
        )
    return VideoSource(path)


def check(args: argparse.Namespace) -> None:
    """Everything that can be known wrong before the first frame (raises)."""
    outputs = {"--out": args.out, "--csv": args.csv, "--json": args.json,
               "--timeline": args.timeline}  # fmt: skip
    check_outputs(outputs, inputs=[args.video], regular_only=["--out"])
    if args.profile_face is not None and not args.profile:
        raise ValueError("--profile-face: give the profile to use with --profile FILE")
    if args.profile_face is not None and args.profile_face < 1:
        raise ValueError(f"--profile-face {args.profile_face}: face ids start at 1")


def analyze(args: argparse.Namespace) -> AnalysisSummary:
    from tqdm import tqdm

    check(args)
    options = RecognizerOptions(
        model=args.model,
        precision=args.precision,
        threads=args.threads,
        faces=FaceOptions(
            detector=args.detector,
            zoom=args.zoom,
            landmarks=args.landmarks,
            blendshapes=args.blendshapes,
        ),
        tracker=TrackerOptions(smoothing=args.smoothing, threshold=args.threshold),
    )
    profile = Profile.load(args.profile) if args.profile else None
    summary = AnalysisSummary()
    timings: dict[str, list[float]] = {}
    outputs = [(args.csv, "csv"), (args.json, "jsonl")]
    with ExitStack() as stack:
        source = stack.enter_context(open_input(args.video))
        recognizer = stack.enter_context(Recognizer(options))
        labels = recognizer.labels
        if profile is not None:  # the face ids start at 1 with the first frame's faces
            recognizer.use_profile(profile, args.profile_face)
        # each log is renamed from .partial only if the whole video went through
        logs = [stack.enter_context(FaceLog(path, labels, fmt, args.blendshapes))
                for path, fmt in outputs if path]  # fmt: skip
        video = stack.enter_context(AnnotatedVideo(args.out, source.fps)) if args.out else None
        timeline = Timeline(labels, seconds=math.inf) if args.timeline else None
        total = getattr(source, "frame_count", None) or len(getattr(source, "files", ()))
        bar = stack.enter_context(tqdm(total=total or None, unit="frame", disable=args.no_progress))
        written: list[float] = []

        def write(item: tuple[Frame, FrameResult]) -> None:
            frame, result = item
            t0 = time.perf_counter()
            for log in logs:
                log.write(result)
            if video is not None:
                video.write(draw(frame.image, result, labels, landmarks=args.landmarks))
            if timeline is not None:
                timeline.add(result)
            written.append((time.perf_counter() - t0) * 1e3)
            bar.update()

        # decoding, detection, the rest of the engine, and drawing + writing each run in
        # their own thread, frame after frame (fer_core.stages)
        found = read_ahead(
            (f, recognizer.find(f.image, f.still)) for f in read_ahead(frames(source))
        )
        writer = Behind(write)
        started = time.perf_counter()
        try:
            for frame, faces in found:
                result = recognizer.finish(frame.image, faces, frame.index, frame.time_s)
                for k, v in result.timings_ms.items():
                    timings.setdefault(k, []).append(v)
                summary.frames += 1
                summary.faces += len(result.faces)
                summary.held += sum(face.held for face in result.faces)
                writer.put((frame, result))
            writer.finish()
        except BaseException:
            writer.abandon()
            raise
        finally:
            found.close()  # its threads end here, before the source and the engine close
        if not summary.frames:  # raised inside the stack: no output is kept
            told = "".join(f"; {e.message}" for e in list(source.events)[:1])
            raise SourceError(f"{args.video}: no frames in it; nothing written{told}")
        summary.seconds = time.perf_counter() - started
        timings["draw + write"] = written
        summary.events = [e.message for e in source.events]
        if timeline is not None:
            write_png(args.timeline, timeline.picture())
            summary.left_out = timeline.picture_faces()[1]
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
        with stops_as_interrupts():  # a kill, a timeout, a closed terminal: as Ctrl-C
            summary = analyze(args)
    except (SourceError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no output written (nothing partial left)", file=sys.stderr)
        return 2
    print(summary.report())
    if summary.left_out:
        print(f"note: {args.timeline}: {summary.left_out}", file=sys.stderr)
    for path in (args.out, args.csv, args.json, args.timeline):
        if path:
            print(f"wrote {path}")
    return 0

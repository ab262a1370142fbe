"""`python -m app analyze VIDEO --out ANNOTATED.mp4 --csv FACES.csv`: the engine over a whole
video (or a folder of images) as fast as it goes, no display: the annotated video, one row per
face per frame (CSV and/or JSON lines), a progress bar, and at the end the per-stage
milliseconds and the frames per second. Qt-free: it runs on a server.

Every output is checked before the first frame, written under a `.partial` name and renamed
only when the whole input went through; an error or Ctrl-C (or SIGTERM, SIGHUP) removes what
this run wrote.

Several inputs (`analyze A.mp4 B.mp4 --out-dir DIR --csv`, a folder of videos, `--list FILE`)
are a batch (`app.batch`), run on a Dask cluster (`app.cluster`): each input's files in DIR,
the same files `analyze` writes for it alone (`fer_core.analysis.analyze_input` does both).
Status: 0 done, 1 when some inputs of a batch failed (the others done), 2 for bad arguments,
an input or output that cannot be used, or an interruption.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.batch import SUFFIXES, BatchOptions, gather, is_batch, plan
from fer_core.analysis import AnalysisOptions, AnalysisSummary, Outputs, Progress, analyze_input
from fer_core.capture import SourceError
from fer_core.faces import DETECTORS, FaceOptions
from fer_core.outputs import STDOUT, check_outputs, stops_as_interrupts
from fer_core.profile import Profile, model_key
from fer_core.recognizer import RecognizerOptions
from fer_core.track import SMOOTHERS, TrackerOptions
from fer_core.zoo import THREADS_EXPECTED, check_threads, default_package, load_package

PRECISIONS = ("auto", "fp32", "int8")
# a bare --csv (--json, --timeline): in a batch, each input's own file in --out-dir
EACH = True
CLUSTER_EXTRA = "pip install -e '.[cluster]' (or pip install 'fer-desktop[cluster]')"


def _threads(text: str) -> int:
    """An argparse type: a thread count the classifier takes (argparse names the flag)."""
    try:
        threads = int(text)
        check_threads(threads)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {THREADS_EXPECTED}, got {text!r}") from None
    return threads


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a number of worker processes ≥ 1, got {text!r}")
    return int(text)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="the video file (or folder of images) to analyse; several, or a folder "
                   "of videos: a batch (see below)")  # fmt: skip
    p.add_argument("--out", help="annotated video to write (.mp4)")
    p.add_argument("--csv", nargs="?", const=EACH, metavar="FILE",
                   help="faces as CSV: one row per face per frame (- for standard output, "
                   "the report then on stderr)")  # fmt: skip
    p.add_argument("--json", nargs="?", const=EACH, metavar="FILE",
                   help="faces as JSON lines (the same rows; - for standard output)")  # fmt: skip
    p.add_argument("--timeline", nargs="?", const=EACH, metavar="FILE",
                   help="a picture of each face's probabilities over time (.png)")  # fmt: skip
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
    batch = p.add_argument_group(
        "a batch: several inputs on a Dask cluster (pip install -e '.[cluster]')",
        "each input's files go to --out-dir as <name>.csv, .jsonl, .mp4, .png for the bare "
        "flags --csv, --json, --video, --timeline; inputs whose files are complete are skipped",
    )
    batch.add_argument("--out-dir", metavar="DIR", help="where each input's files go")
    batch.add_argument("--list", metavar="FILE",
                       help="inputs, one path a line (relative to the list's folder; "
                       "# comments)")  # fmt: skip
    batch.add_argument("--video", action="store_true", help="each input's annotated <name>.mp4")
    batch.add_argument("--scheduler", metavar="ADDRESS",
                       help="an existing Dask cluster's scheduler, e.g. tcp://host:8786 "
                       "(default: a local cluster for the run)")  # fmt: skip
    batch.add_argument("--workers", type=_workers, metavar="N",
                       help="the local cluster's worker processes (default: the CPUs, at most "
                       "one per input)")  # fmt: skip
    batch.add_argument("--redo", action="store_true",
                       help="analyse the inputs whose files are complete too")  # fmt: skip


class Bar(Progress):
    """One input's frames as a progress bar (on stderr)."""

    def __init__(self, disable: bool):
        self.disable = disable
        self.bar = None

    def opened(self, frames: int) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=frames or None, unit="frame", disable=self.disable)

    def advanced(self, frames: int) -> None:
        self.bar.update(frames)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def analysis_options(args: argparse.Namespace) -> AnalysisOptions:
    """The engine's settings and the profile, as flags say (raises ValueError, ProfileError)."""
    if args.profile_face is not None and not args.profile:
        raise ValueError("--profile-face: give the profile to use with --profile FILE")
    if args.profile_face is not None and args.profile_face < 1:
        raise ValueError(f"--profile-face {args.profile_face}: face ids start at 1")
    recognizer = RecognizerOptions(
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
    return AnalysisOptions(recognizer, profile, args.profile_face)


def check(args: argparse.Namespace) -> None:
    """Everything about one input that can be known wrong before the first frame (raises)."""
    batch_only = {"--video": args.video, "--scheduler": args.scheduler,
                  "--workers": args.workers, "--redo": args.redo}  # fmt: skip
    for flag, value in batch_only.items():
        if value:
            hint = "; for one input give --out FILE" if flag == "--video" else ""
            raise ValueError(f"{flag}: for a batch of inputs written to --out-dir DIR{hint}")
    for flag in ("csv", "json", "timeline"):
        if getattr(args, flag) is EACH:
            raise ValueError(f"--{flag}: expected a file name (a bare --{flag} is for a batch, "
                             "with --out-dir DIR)")  # fmt: skip
    if not args.inputs:
        raise ValueError("give the video or folder of images to analyse")
    outputs = {"--out": args.out, "--csv": args.csv, "--json": args.json,
               "--timeline": args.timeline}  # fmt: skip
    check_outputs(outputs, inputs=args.inputs, regular_only=["--out"])


def analyze(args: argparse.Namespace) -> AnalysisSummary:
    check(args)
    outputs = Outputs(*(Path(p) if p else None for p in (args.out, args.csv, args.json,
                                                           args.timeline)))  # fmt: skip
    bar = Bar(disable=args.no_progress)
    try:
        return analyze_input(args.inputs[0], outputs, analysis_options(args), bar)
    finally:
        bar.close()


def batch_options(args: argparse.Namespace) -> BatchOptions:
    """The batch's flags, checked (raises ValueError naming the flag)."""
    if args.out:
        raise ValueError("--out: names one input's annotated video; in a batch give --video "
                         "(each input's <name>.mp4 in --out-dir)")  # fmt: skip
    for flag in ("csv", "json", "timeline"):
        value = getattr(args, flag)
        if value not in (None, EACH):
            raise ValueError(f"--{flag} {value}: in a batch each input's file is named after it "
                             f"in --out-dir; give --{flag} without a file name")  # fmt: skip
    if not args.out_dir:
        raise ValueError("several inputs, a folder of videos or --list make a batch: give "
                         "--out-dir DIR for their files")  # fmt: skip
    out_dir = Path(args.out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out-dir {out_dir}: not a folder; expected a folder for the files")
    asked = tuple(kind for kind in SUFFIXES if getattr(args, kind))
    if not asked:
        raise ValueError("nothing to write: give --video, --csv, --json and/or --timeline "
                         "(each input's file in --out-dir)")  # fmt: skip
    if args.workers and args.scheduler:
        raise ValueError("--workers: sizes the local cluster; the one at --scheduler has its "
                         "own workers")  # fmt: skip
    return BatchOptions(out_dir, asked, args.scheduler, args.workers, args.redo,
                        not args.no_progress)  # fmt: skip


def analyze_batch(args: argparse.Namespace) -> int:
    options = batch_options(args)
    analysis = analysis_options(args)
    # checked here, at once: each worker would fail on it, input after input
    model = analysis.recognizer.model
    package = load_package(model) if model is not None else default_package()
    if analysis.profile is not None:
        analysis.profile.check_model(model_key(package))
    try:
        from app import cluster
    except ModuleNotFoundError as error:
        if (error.name or "").split(".")[0] not in ("dask", "distributed"):
            raise
        raise ValueError(f"a batch runs on Dask, which is not installed: {CLUSTER_EXTRA}") from None
    inputs, notes = gather(args.inputs, args.list, options.out_dir)
    jobs, skipped = plan(inputs, options)
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not jobs:
        print(f"all {skipped} inputs have their files in {options.out_dir} already; nothing to "
              "do (--redo analyses them again)")  # fmt: skip
        return 0
    try:
        result = cluster.run_jobs(jobs, options, analysis)
    except KeyboardInterrupt:
        print("error: interrupted; the inputs finished before are kept, nothing partial left",
              file=sys.stderr)  # fmt: skip
        return 2
    result.skipped = skipped
    print(result.report())
    done = len(result.videos) - len(result.failed)
    print(f"wrote the files of {done} inputs to {options.out_dir}")
    return 1 if result.failed else 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m app analyze",
        description="analyse a video headless: annotated video, faces as CSV / JSON lines; "
        "several videos on a Dask cluster",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    several = is_batch(args.inputs, args.list, args.out_dir)
    if not several and not (args.out or args.csv or args.json or args.timeline):
        parser.error("nothing to write: give --out, --csv, --json and/or --timeline")
    try:
        with stops_as_interrupts():  # a kill, a timeout, a closed terminal: as Ctrl-C
            if several:
                return analyze_batch(args)
            summary = analyze(args)
    except (SourceError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; no output written (nothing partial left)", file=sys.stderr)
        return 2
    written = [p for p in (args.out, args.csv, args.json, args.timeline) if p]
    # the rows own standard output when one of them is written there (`--csv - | ...`)
    report = sys.stderr if STDOUT in written else sys.stdout
    print(summary.report(), file=report)
    if summary.left_out:
        print(f"note: {args.timeline}: {summary.left_out}", file=sys.stderr)
    for path in written:
        print(f"wrote {'standard output' if path == STDOUT else path}", file=report)
    return 0

"""`python -m app analyze` over many inputs: what the batch is, decided before any engine or
cluster starts, and its summary. The videos run on a Dask cluster (`app.cluster`, the
`cluster` extra); this module imports no Dask.

A batch is several inputs, a `--list FILE` of them (one path a line), a folder that holds
videos (its videos, not recursively), or anything given with `--out-dir`. Each input (a video,
or a folder of photos taken as one input, as `analyze` takes it alone) writes its files to
`--out-dir` named after it: `<name>.csv`, `.jsonl`, `.mp4`, `.png`, for the bare flags
`--csv`, `--json`, `--video`, `--timeline`. `<name>` is the input's stem, or, where two inputs
share a stem, the stem and six hex digits of the input's full path, so they never overwrite
each other and a rerun names them alike.

An input whose files are all there and newer than it is done: a rerun skips it (`--redo`
does not). A missing input is a bad argument (one line, status 2, before anything runs); an
input that fails as it is analysed (not a video, a write error) is a failure of that input,
said in the summary, and the others go on.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from fer_core.analysis import AnalysisSummary, Outputs, frame_count, open_input
from fer_core.capture import IMAGE_SUFFIXES, SourceError
from fer_core.outputs import VIDEO_SUFFIXES, OutputError, check_outputs

VIDEOS = (*VIDEO_SUFFIXES, ".webm", ".mpg", ".mpeg", ".wmv")  # a folder of these is a batch
SUFFIXES = {"video": ".mp4", "csv": ".csv", "json": ".jsonl", "timeline": ".png"}


@dataclass(frozen=True)
class BatchOptions:
    out_dir: Path
    asked: tuple[str, ...]  # keys of SUFFIXES
    scheduler: str | None = None  # an existing cluster's scheduler address; None: a local one
    workers: int | None = None  # the local cluster's worker processes; None: CPUs, ≤ inputs
    redo: bool = False  # analyse the inputs whose files are complete too
    progress: bool = True


@dataclass(frozen=True)
class Job:
    index: int  # in the run's list of jobs
    path: Path
    name: str  # its files' stem in --out-dir
    outputs: Outputs
    frames: int  # as its container says (0: unknown), for the progress bar and the order


@dataclass
class VideoResult:
    job: Job
    worker: str  # the worker that ran it ("?" when its worker was lost)
    summary: AnalysisSummary | None = None
    error: str = ""  # why it failed; its files were not written


@dataclass
class BatchResult:
    videos: list[VideoResult] = field(default_factory=list)
    skipped: int = 0  # inputs whose files were complete already
    workers: str = ""  # what ran them, for the report
    start_seconds: float = 0.0  # the cluster's start (or connection) and the engines' loading
    seconds: float = 0.0  # from the first input handed out to the last one back

    @property
    def failed(self) -> list[VideoResult]:
        return [v for v in self.videos if v.error]

    def report(self) -> str:
        """The table per worker (inputs done, frames, face rows, frames/s while busy,
        failures), the whole run's line, then what was skipped and what failed."""
        per_worker: dict[str, list[VideoResult]] = defaultdict(list)
        for video in self.videos:
            per_worker[video.worker].append(video)
        head = f"{'worker':<24} {'videos':>6} {'frames':>7} {'faces':>7} {'frames/s':>9} "
        lines = [head + f"{'failures':>8}"]

        def row(name: str, videos: list[VideoResult], seconds: float | None = None) -> str:
            done = [v.summary for v in videos if v.summary is not None]
            frames, faces = sum(s.frames for s in done), sum(s.faces for s in done)
            busy = sum(s.seconds for s in done) if seconds is None else seconds
            fps = frames / busy if busy else 0.0
            failures = len(videos) - len(done)
            return f"{name:<24} {len(done):>6} {frames:>7} {faces:>7} {fps:>9.1f} {failures:>8}"

        lines += [row(name, per_worker[name]) for name in sorted(per_worker)]
        lines.append(row(f"all, in {self.seconds:.1f} s", self.videos, self.seconds))
        lines.append(f"{self.workers}, ready in {self.start_seconds:.1f} s; frames/s per "
                     "worker: while it analysed (decode, engine, drawing, writing)")  # fmt: skip
        if self.skipped:
            lines.append(f"skipped {self.skipped} inputs whose files are complete "
                         "(--redo analyses them again)")  # fmt: skip
        for video in (v for v in self.videos if v.summary is not None):
            lines += [f"note: {event}" for event in video.summary.events]
            if video.summary.left_out:
                lines.append(f"note: {video.job.outputs.timeline}: {video.summary.left_out}")
        for video in self.failed:
            said = video.error if str(video.job.path) in video.error else (
                f"{video.job.path}: {video.error}")  # fmt: skip
            lines.append(f"failed: {said}")
        return "\n".join(lines)


def describe(error: BaseException) -> str:
    """An input's failure as one line: the message of an expected error (not a video, a full
    disk), with its type for anything else."""
    said = str(error) if isinstance(error, (SourceError, OSError, ValueError)) else (
        f"{type(error).__name__}: {error}")  # fmt: skip
    return " ".join(said.split())


def holds_videos(path: Path) -> bool:
    return path.is_dir() and any(_is_video(p) for p in path.iterdir())


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEOS and path.is_file()


def is_batch(inputs: list[str], listed: str | None, out_dir: str | None) -> bool:
    """Whether the command line asks for a batch (else it is `analyze`'s one input)."""
    return bool(listed or out_dir or len(inputs) > 1) or (
        len(inputs) == 1 and holds_videos(Path(inputs[0]))
    )


def _listed(file: Path) -> list[tuple[Path, str]]:
    """The paths of a --list file (relative ones to its folder), each with where it was said."""
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise ValueError(f"--list {file}: cannot be read ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ValueError(f"--list {file}: not UTF-8 text; expected one path a line") from None
    named = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            named.append((file.parent / line, f"--list {file}, line {number}: "))
    return named


def gather(paths: list[str], listed: str | None, out_dir: Path) -> tuple[list[Path], list[str]]:
    """The batch's inputs, each once, in the order given (a folder of videos: its videos by
    name), and notes for what was left aside. A missing input, or an --out-dir inside a folder
    given, raises ValueError (one line)."""
    named = [(Path(p), "") for p in paths] + (_listed(Path(listed)) if listed else [])
    if not named:
        raise ValueError("no input: give videos, folders, or --list FILE")
    inputs: list[Path] = []
    notes: list[str] = []
    for path, where in named:
        if not path.exists():
            raise ValueError(f"{where}{path}: no such file or folder (expected a video, a folder "
                             "of videos, or a folder of images)")  # fmt: skip
        if not path.is_dir():
            inputs.append(path)
            continue
        # the outputs would be inputs of the next run (a video), or files in an input folder
        if out_dir.resolve().is_relative_to(path.resolve()):
            raise ValueError(f"--out-dir {out_dir}: inside the input folder {path}; "
                             "choose a folder outside it")  # fmt: skip
        videos = sorted(p for p in path.iterdir() if _is_video(p))
        if not videos:  # photos: one input, as `analyze FOLDER` takes them
            inputs.append(path)
            continue
        inputs += videos
        images = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())
        if images:
            notes.append(f"{path}: its {images} images are not analysed (a folder that holds "
                         "videos is taken as its videos)")  # fmt: skip
    seen: set[Path] = set()
    unique = []
    for path in inputs:
        if path.resolve() in seen:
            notes.append(f"{path}: given twice; analysed once")
            continue
        seen.add(path.resolve())
        unique.append(path)
    return unique, notes


def _stem(path: Path) -> str:
    return path.name if path.is_dir() else path.stem


def names(inputs: list[Path]) -> list[str]:
    """Each input's files' stem: its own, unless another input has it too (in any case: some
    file systems do not tell `Clip` from `clip`)."""
    counts = Counter(_stem(p).casefold() for p in inputs)

    def name(path: Path) -> str:
        if counts[_stem(path).casefold()] == 1:
            return _stem(path)
        return f"{_stem(path)}-{hashlib.sha1(os.fsencode(path.resolve())).hexdigest()[:6]}"

    return [name(p) for p in inputs]


def complete(path: Path, outputs: Outputs) -> bool:
    """Every file asked is there (each is renamed into place only when whole) and none is
    older than the input (an input replaced since is analysed again)."""
    try:
        since = path.stat().st_mtime
        return all(p.is_file() and p.stat().st_mtime >= since for p in outputs.paths())
    except OSError:
        return False


def _frames(path: Path) -> int:
    try:
        with open_input(path) as source:
            return frame_count(source)
    except (SourceError, OSError):
        return 0  # its worker says why


def plan(inputs: list[Path], options: BatchOptions) -> tuple[list[Job], int]:
    """The jobs to run, longest first (the last to start is a short one: workers finish
    together), and the count of inputs skipped as complete. An output that cannot be written
    raises OutputError naming its flag and file (before anything runs)."""
    given = {p.resolve() for p in inputs}
    todo, skipped = [], 0
    for path, name in zip(inputs, names(inputs), strict=True):
        places = {kind: options.out_dir / f"{name}{SUFFIXES[kind]}" for kind in options.asked}
        outputs = Outputs(**places)
        flags = {f"--{kind}": place for kind, place in places.items()}
        for flag, place in flags.items():
            if place.resolve() in given:
                raise OutputError(f"{flag} {place}: is an input too; choose another --out-dir")
        check_outputs(flags, inputs=[path], regular_only=["--video"])
        if not options.redo and complete(path, outputs):
            skipped += 1
            continue
        todo.append((path, name, outputs, _frames(path)))
    todo.sort(key=lambda job: -job[3])
    return [Job(i, *job) for i, job in enumerate(todo)], skipped

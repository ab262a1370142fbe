"""One input (a video, or a folder of photos) through the engine into its files, as fast as it
goes: the annotated video, one row per face per frame (CSV and / or JSON lines), the timeline
picture, and a summary (frames, face rows, frames/s, each stage's median ms).

`analyze_input(path, Outputs(...), AnalysisOptions(...))` → `AnalysisSummary` is the work of
`python -m app analyze` for its one input, and of each video of a batch on a cluster
(`app.cluster`), which hands it the worker's own `Recognizer`: one function, so a video's files
are the same either way.

Every output is written under a partial name of this run's own and renamed only when the whole
input went through (`fer_core.outputs`); an error, or an exception raised by `Progress` (a
stop), removes what was written.
"""

from __future__ import annotations

import math
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from fer_core.capture import Frame, ImageFolderSource, Source, SourceError, VideoSource, frames
from fer_core.overlay import draw
from fer_core.profile import Profile
from fer_core.recognizer import Recognizer, RecognizerOptions
from fer_core.recording import AnnotatedVideo, write_png
from fer_core.results import FaceLog, FrameResult
from fer_core.stages import Behind, read_ahead
from fer_core.timeline import Timeline


@dataclass(frozen=True)
class Outputs:
    """Where one input's files go; None: not asked for."""

    video: Path | None = None  # the annotated MP4
    csv: Path | None = None
    json: Path | None = None  # JSON lines: the CSV's rows
    timeline: Path | None = None  # PNG

    def paths(self) -> list[Path]:
        return [p for p in (self.video, self.csv, self.json, self.timeline) if p is not None]


@dataclass(frozen=True)
class AnalysisOptions:
    recognizer: RecognizerOptions = field(default_factory=RecognizerOptions)
    profile: Profile | None = None  # read the largest face (or face `profile_face`) with it
    profile_face: int | None = None  # a face id as the CSV's face_id (from 1)


class Progress:
    """What `analyze_input` tells as it goes (this one tells nobody). An exception raised by
    `advanced` stops the input, its files removed."""

    def opened(self, frames: int) -> None:
        """The input opened: its frame count (0 when the container does not say)."""

    def advanced(self, frames: int) -> None:
        """`frames` more went through the engine."""


@dataclass
class AnalysisSummary:
    frames: int = 0
    faces: int = 0  # face rows written
    held: int = 0  # of them, faces the detector missed in that frame, kept at their last place
    seconds: float = 0.0  # wall time of the whole loop (decode, engine, draw, write)
    stage_ms: dict[str, float] = field(default_factory=dict)  # medians per frame
    events: list[str] = field(default_factory=list)
    left_out: str = ""  # the faces the timeline picture could not draw, if any

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


def open_input(path: str | Path) -> VideoSource | ImageFolderSource:
    if Path(path).is_dir():
        return ImageFolderSource(path)
    if not Path(path).exists():
        raise SourceError(
            f"{path}: no such file or folder (expected a video or a folder of images)"
        )
    return VideoSource(path)


def frame_count(source: Source) -> int:
    """A video's frame count as its container says it, a folder's images; 0 if unknown."""
    return getattr(source, "frame_count", None) or len(getattr(source, "files", ()))


def analyze_input(
    path: str | Path,
    outputs: Outputs,
    options: AnalysisOptions | None = None,
    progress: Progress | None = None,
    recognizer: Recognizer | None = None,
) -> AnalysisSummary:
    """Every frame of `path` through the engine into `outputs`. `recognizer`: one the caller
    keeps loaded (a worker's, video after video), taken as new for this input; None: one is
    loaded for it once the input opened (a bad input is said before the model loads)."""
    options = options or AnalysisOptions()
    progress = progress or Progress()
    faces = options.recognizer.faces
    summary = AnalysisSummary()
    timings: dict[str, list[float]] = {}
    with ExitStack() as stack:
        source = stack.enter_context(open_input(path))
        if recognizer is None:
            recognizer = stack.enter_context(Recognizer(options.recognizer))
        elif recognizer.options != options.recognizer:
            raise ValueError(f"{path}: the engine given was loaded with other options")
        else:
            recognizer.restart()
        labels = recognizer.labels
        if options.profile is not None:  # the face ids start at 1 with the first frame's faces
            recognizer.use_profile(options.profile, options.profile_face)
        # each log is renamed from .partial only if the whole input went through
        logs = [stack.enter_context(FaceLog(p, labels, fmt, faces.blendshapes))
                for p, fmt in ((outputs.csv, "csv"), (outputs.json, "jsonl")) if p]  # fmt: skip
        video = None
        if outputs.video:
            video = stack.enter_context(AnnotatedVideo(outputs.video, source.fps))
        timeline = Timeline(labels, seconds=math.inf) if outputs.timeline else None
        progress.opened(frame_count(source))
        written: list[float] = []

        def write(item: tuple[Frame, FrameResult]) -> None:
            frame, result = item
            t0 = time.perf_counter()
            for log in logs:
                log.write(result)
            if video is not None:
                video.write(draw(frame.image, result, labels, landmarks=faces.landmarks))
            if timeline is not None:
                timeline.add(result)
            written.append((time.perf_counter() - t0) * 1e3)

        # decoding, detection, the rest of the engine, and drawing + writing each run in
        # their own thread, frame after frame (fer_core.stages)
        found = read_ahead(
            (f, recognizer.find(f.image, f.still)) for f in read_ahead(frames(source))
        )
        writer = Behind(write)
        started = time.perf_counter()
        try:
            for frame, seen in found:
                result = recognizer.finish(frame.image, seen, frame.index, frame.time_s)
                for k, v in result.timings_ms.items():
                    timings.setdefault(k, []).append(v)
                summary.frames += 1
                summary.faces += len(result.faces)
                summary.held += sum(face.held for face in result.faces)
                writer.put((frame, result))
                progress.advanced(1)
            writer.finish()
        except BaseException:
            writer.abandon()
            raise
        finally:
            found.close()  # its threads end here, before the source and the engine close
        if not summary.frames:  # raised inside the stack: no output is kept
            told = "".join(f"; {e.message}" for e in list(source.events)[:1])
            raise SourceError(f"{path}: no frames in it; nothing written{told}")
        summary.seconds = time.perf_counter() - started
        timings["draw + write"] = written
        summary.events = [e.message for e in source.events]
        if timeline is not None:
            write_png(outputs.timeline, timeline.picture())
            summary.left_out = timeline.picture_faces()[1]
    summary.stage_ms = {k: statistics.median(v) for k, v in timings.items()}
    return summary

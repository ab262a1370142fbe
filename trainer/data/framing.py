"""`python -m trainer framing`: where a dataset keeps the eyes in its stored face squares.

The engine aligns live faces to this (`fer_core.faces.FRAMINGS`), so a model sees faces framed
the way it was trained. Each stored face is upscaled to 192 px, padded with its own border
(the detector wants some context around a face) and given to MediaPipe's face detector; the
eye keypoints of the faces it finds give the eye centre and the eye distance as fractions of
the square's side.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

SIDE = 192  # the stored square, upscaled
PAD = SIDE // 2  # border around it: the detector wants some context around a face


@dataclass(frozen=True)
class FramingMeasure:
    dataset: str
    images: int  # faces looked at
    found: int  # faces the detector found
    eye_x: float
    eye_y: float
    eye_distance: float
    eye_x_std: float
    eye_y_std: float
    eye_distance_std: float

    def report(self) -> str:
        return (
            f"{self.dataset}: eyes found in {self.found} of {self.images} faces\n"
            f"  eye centre x {self.eye_x:.3f} ± {self.eye_x_std:.3f}, "
            f"y {self.eye_y:.3f} ± {self.eye_y_std:.3f}; "
            f"eye distance {self.eye_distance:.3f} ± {self.eye_distance_std:.3f} of the side\n"
            f"  as fer_core.faces.Framing({self.eye_x:.3f}, {self.eye_y:.3f}, "
            f"{self.eye_distance:.3f})"
        )


def as_scene(image: np.ndarray) -> np.ndarray:
    """A stored face square (grey H×W or BGR H×W×3 uint8) as a BGR picture for the detector:
    upscaled to `SIDE` and padded by `PAD` with its own border on every side, so the square
    spans [PAD, PAD + SIDE) in both axes."""
    image = np.asarray(image)
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    big = cv2.resize(image, (SIDE, SIDE), interpolation=cv2.INTER_CUBIC)
    return cv2.copyMakeBorder(big, PAD, PAD, PAD, PAD, cv2.BORDER_REPLICATE)


def measure_framing(images, dataset: str = "") -> FramingMeasure:
    """Eye positions over stored faces (grey H×W or BGR H×W×3 uint8 arrays)."""
    from fer_core.faces import FaceFinder, FaceOptions

    rows = []
    with FaceFinder(FaceOptions(zoom=False)) as finder:  # unrelated pictures, not a video
        for image in images:
            faces, _ = finder.find(as_scene(image))
            if faces:
                left, right = (faces[0].eyes - PAD) / SIDE
                rows.append([*(left + right) / 2, np.linalg.norm(right - left)])
    a = np.array(rows).reshape(-1, 3)
    if not len(a):
        raise ValueError(f"{dataset or 'the images'}: the detector found no face to measure")
    mean, std = a.mean(axis=0), a.std(axis=0)
    return FramingMeasure(dataset, len(images), len(a), *mean.tolist(), *std.tolist())

"""Resampling between continuous pixel coordinates, as MediaPipe gives them.

`warp` is the one way frame pixels become a picture (the classifier's face, the landmarker's
crop, the zoom mosaic, the stored framing of a dataset). Where it shrinks, every output pixel is
the mean of the frame pixels under it, as the training data's faces were made (`INTER_AREA`): a
single bilinear warp reads one frame pixel in 9–50 for a webcam face seen at 40 px, and folds
skin texture, eyelashes and hair into what the network reads.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# a map this close to 1:1 (or to an integer shrink) is taken as exact, so that float error in a
# card's crop fraction never turns a 1:1 copy into an average
SHRINK_TOLERANCE = 1e-3
# beyond six samples per output pixel and axis (a face crop over 240 px seen at 40), samples fall
# up to s/6 frame pixels apart; each still blends 2×2 pixels, so none is skipped, and the cost
# stays that of a 240×240 warp
MAX_SUPERSAMPLING = 6
# and at most this many samples in all: the landmarker's 256 px square takes k ≤ 2 (samples up to
# s/2 frame pixels apart, still every pixel blended) instead of a 768 px warp for a 300 px face
MAX_SAMPLES = 512 * 512


def warp(
    image: np.ndarray,
    m: np.ndarray,
    size: tuple[int, int],
    border: int = cv2.BORDER_REPLICATE,
) -> np.ndarray:
    """`image` resampled into a W×H picture through the 2×3 similarity map `m` (frame → output),
    given between continuous coordinates (pixel i spans [i, i+1), as MediaPipe's keypoints
    are); `border` fills what lies outside the image.

    Where the map shrinks by s > 1, the output is sampled bilinearly at k = ⌈s⌉ times its size
    (neighbouring samples within a frame pixel, so every pixel is read; k is capped, see
    `supersampling`) and each k×k block is averaged: an output pixel is the mean of the frame
    under it, at any rotation, as `INTER_AREA` would give it for an upright crop."""
    m = np.asarray(m, dtype=np.float64)
    w, h = size
    k = supersampling(m, size)
    fine = _bilinear(image, m * k, (w * k, h * k), border)
    return fine if k == 1 else cv2.resize(fine, (w, h), interpolation=cv2.INTER_AREA)


def supersampling(m: np.ndarray, size: tuple[int, int]) -> int:
    """k: the samples per output pixel and axis that keep samples within a frame pixel, as far
    as the caps allow."""
    shrink = 1.0 / math.sqrt(max(abs(np.linalg.det(np.asarray(m)[:, :2])), 1e-12))
    cap = min(MAX_SUPERSAMPLING, math.isqrt(MAX_SAMPLES // max(1, size[0] * size[1])))
    return max(1, min(cap, math.ceil(shrink - SHRINK_TOLERANCE)))


def _bilinear(image: np.ndarray, m: np.ndarray, size: tuple[int, int], border: int) -> np.ndarray:
    # OpenCV wants pixel-index coordinates (pixel i at i): shift the map by half a pixel
    index = m.copy()
    index[:, 2] = index[:, 2] + index[:, :2].sum(axis=1) * 0.5 - 0.5
    return cv2.warpAffine(image, index, size, flags=cv2.INTER_LINEAR, borderMode=border)

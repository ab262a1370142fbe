"""Resampling between continuous pixel coordinates, as MediaPipe gives them."""

from __future__ import annotations

import cv2
import numpy as np


def warp(
    image: np.ndarray,
    m: np.ndarray,
    size: tuple[int, int],
    border: int = cv2.BORDER_REPLICATE,
) -> np.ndarray:
    """`image` resampled (bilinear) into a W×H picture through the 2×3 map `m`, given between
    continuous coordinates (pixel i spans [i, i+1), as MediaPipe's keypoints are); OpenCV
    wants pixel-index coordinates (pixel i at i), so the map is shifted by half a pixel."""
    index = np.array(m, dtype=np.float64)
    index[:, 2] = index[:, 2] + index[:, :2].sum(axis=1) * 0.5 - 0.5
    return cv2.warpAffine(image, index, size, flags=cv2.INTER_LINEAR, borderMode=border)

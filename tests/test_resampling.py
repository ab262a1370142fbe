"""Faces shrunk from a frame are area-averaged, as the training data's faces were: a face that
is larger in the frame than the network's input reads the same as its clean crop."""

import cv2
import numpy as np
import pytest

from fer_core.classify import Classifier, softmax
from fer_core.faces import alignment
from fer_core.geometry import supersampling, warp
from fer_core.zoo import default_package

# the astronaut's eyes in scikit-image's 512 px photo (MediaPipe's keypoints, rounded)
ASTRONAUT_EYES = np.array([[202.8, 103.5], [248.0, 105.9]])
# the photo's scale in the frame: its own resolution (the crop the network sees is 106 px) down
# to about twice the network input (81 px for a 40 px input)
SCALES = (1.0, 0.88, 0.76)
# mean absolute difference to the INTER_AREA reference, grey levels of 255: measured 0.6–1.5;
# one bilinear warp (the path before area averaging) gave 3.6, 2.7 and 1.6
MAX_INPUT_MAD = 2.0
MAX_PROBABILITY_SPREAD = 0.02  # any class, across the sizes (measured 0.0035)


def _textured(rows: int, cols: int) -> np.ndarray:
    noise = np.random.default_rng(0).integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 0.8)


@pytest.mark.parametrize("shrink", [3.0, 4.5, 10.0])
def test_an_upright_shrink_is_the_area_average(shrink):
    frame = _textured(480, 640)
    x0, y0, n = 30, 50, 40
    m = np.array([[1 / shrink, 0, -x0 / shrink], [0, 1 / shrink, -y0 / shrink]])
    side = round(n * shrink)
    reference = cv2.resize(
        frame[y0 : y0 + side, x0 : x0 + side], (n, n), interpolation=cv2.INTER_AREA
    )
    out = warp(frame, m, (n, n)).astype(float)
    # one bilinear sample a pixel (the path before area averaging) is 10.7–16.3 grey levels off
    assert np.abs(out - reference).mean() < 1.0


def test_a_map_at_one_to_one_or_larger_is_one_bilinear_warp():
    frame = _textured(60, 80)
    assert supersampling(np.array([[1.0, 0, -3], [0, 1.0, -4]]), (20, 10)) == 1
    float_error = np.array([[40 / (48 * 40 / 48), 0, 0], [0, 1.0, 0]])
    assert supersampling(float_error, (40, 40)) == 1
    assert np.array_equal(warp(frame, np.array([[1.0, 0, -3], [0, 1.0, -4]]), (20, 10)),
                          frame[4:14, 3:23])  # fmt: skip


def test_large_outputs_take_fewer_samples():
    tenfold = np.array([[0.1, 0, 0], [0, 0.1, 0]])
    assert supersampling(tenfold, (40, 40)) == 6  # the classifier's crop of a big face
    assert supersampling(tenfold, (256, 256)) == 2  # the landmarker's square


@pytest.fixture(scope="module")
def astronaut():
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image holds the test photo")
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)


def _reference_crop(photo: np.ndarray, preprocess) -> np.ndarray:
    """The network's input made the way the training data was: the aligned face cut at the
    photo's own resolution (never shrunk), then INTER_AREA to the input size."""
    n = preprocess.size[0]
    to_unit = alignment(ASTRONAUT_EYES, preprocess.framing, 1.0)
    square = 1 / np.sqrt(abs(np.linalg.det(to_unit[:, :2])))
    side = int(np.ceil(square * preprocess.crop))  # at least the photo's own pixels
    k = side / preprocess.crop
    m = k * to_unit
    m[:, 2] -= k * (1 - preprocess.crop) / 2
    m[:, 2] += m[:, :2].sum(axis=1) * 0.5 - 0.5  # continuous → OpenCV's pixel-index coordinates
    big = cv2.warpAffine(photo, m, (side, side), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
    return cv2.resize(big, (n, n), interpolation=cv2.INTER_AREA)


def _in_frame(photo: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo area-shrunk by `scale` on a 640×480 grey frame (its bottom cut off where it
    does not fit), and its eyes there."""
    small = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    frame = np.full((480, 640, 3), 128, np.uint8)
    shown = small[:470, :620]
    frame[10 : 10 + shown.shape[0], 20 : 20 + shown.shape[1]] = shown
    return frame, ASTRONAUT_EYES * (small.shape[1] / photo.shape[1]) + (20, 10)


def test_a_face_larger_than_the_input_reads_as_its_clean_crop_at_every_size(astronaut):
    classifier = Classifier(default_package(), threads=1)
    preprocess = classifier.preprocess
    reference = _reference_crop(astronaut, preprocess).astype(float)
    probs = []
    for scale in SCALES:
        frame, eyes = _in_frame(astronaut, scale)
        face = preprocess.from_frame(frame, [eyes])
        mad = np.abs(face[0].astype(float) - reference).mean()
        assert mad <= MAX_INPUT_MAD, f"photo at {scale:.2f}: {mad:.2f} grey levels off"
        probs.append(softmax(classifier.logits(face))[0])
    spread = np.ptp(np.array(probs), axis=0).max()
    assert spread <= MAX_PROBABILITY_SPREAD

"""Classifying faces from a model package: the card's view applied to frames and to stored
faces exactly as the trainer applies it, on a real face and on the real PrivateTest."""

import cv2
import numpy as np
import pytest

from fer_core.classify import Classifier, Preprocess, softmax
from fer_core.faces import FRAMINGS, FaceFinder
from fer_core.view import InputView
from fer_core.zoo import default_package
from tests.conftest import FER2013_CSV


@pytest.fixture(scope="module")
def classifier():
    return Classifier(default_package(), threads=1)


def test_a_stored_face_gives_the_exact_centre_crop(classifier):
    p = classifier.preprocess
    side = round(p.size[0] / p.crop)
    squares = np.random.default_rng(0).integers(0, 255, (3, side, side), dtype=np.uint8)
    lo = (side - p.size[0]) // 2
    expected = squares[:, lo : lo + p.size[0], lo : lo + p.size[1]]
    assert np.array_equal(p.from_stored(squares), expected)


def test_tensor_normalises_and_orders_channels():
    view = InputView(size=2, channels=3, mean=(0.5,) * 3, std=(0.5,) * 3)
    p = Preprocess(view, FRAMINGS["fer2013"])
    bgr = np.zeros((1, 2, 2, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    x = p.tensor(bgr)
    assert x.shape == (1, 3, 2, 2) and x.dtype == np.float32
    assert x[0, :, 0, 0].tolist() == [-1.0, -1.0, 1.0]  # RGB order: blue last


def test_the_astronaut_smiles(classifier):
    skimage_data = pytest.importorskip("skimage.data", reason="scikit-image holds the test photo")
    frame = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)
    with FaceFinder() as finder:
        faces, _ = finder.find(frame)
    probs, timings = classifier.classify(frame, [f.eyes for f in faces])
    assert probs.shape == (1, len(classifier.labels))
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    assert classifier.labels[int(probs[0].argmax())] == "happy" and probs[0].max() > 0.5
    assert set(timings) == {"align", "classify"}


def test_no_faces_no_work(classifier):
    probs, _ = classifier.classify(np.zeros((10, 10, 3), np.uint8), [])
    assert probs.shape == (0, len(classifier.labels))


def test_softmax_rows_sum_to_one():
    p = softmax(np.array([[1000.0, 1000.0], [0.0, np.log(3.0)]]))
    assert np.allclose(p, [[0.5, 0.5], [0.25, 0.75]])


def test_unknown_backend_is_named():
    with pytest.raises(ValueError, match="backend 'tensorrt': expected one of onnxruntime"):
        Classifier(default_package(), backend="tensorrt")


@pytest.mark.slow
@pytest.mark.data
def test_engine_view_reproduces_the_cards_private_test_top1(classifier):
    """The engine's preprocessing (numpy + OpenCV) sees a stored FER2013 face exactly as the
    trainer's evaluation does: the card's PrivateTest top-1 comes out again."""
    if not FER2013_CSV.is_file():
        pytest.skip(f"real FER2013 not found at {FER2013_CSV}")
    from trainer.data import read_dataset

    test = read_dataset("fer2013", FER2013_CSV)["test"]
    logits = np.concatenate(
        [
            classifier.logits(classifier.preprocess.from_stored(test.images[i : i + 512]))
            for i in range(0, len(test), 512)
        ]
    )
    top1 = float((logits.argmax(1) == test.targets).mean())
    card_top1 = classifier.package.card.metrics["fer2013/test"]["top1"]
    assert top1 == pytest.approx(card_top1, abs=1e-6)

"""Face detection, landmarks and alignment on a real photo (scikit-image's astronaut, Eileen
Collins), and the checks on the vendored MediaPipe files."""

import shutil

import cv2
import numpy as np
import pytest

from fer_core.faces import (
    DETECTOR,
    FRAMINGS,
    MEDIAPIPE_DIR,
    FaceFinder,
    FaceModelError,
    FaceOptions,
    Framing,
    aligned_crop,
    alignment,
    verified_path,
)
from fer_core.track import iou

skimage_data = pytest.importorskip("skimage.data", reason="scikit-image holds the test photo")

ASTRONAUT_FACE = (177, 82, 95, 95)  # x, y, w, h, by eye: forehead to chin


@pytest.fixture(scope="module")
def astronaut():
    return cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)  # 512 × 512


@pytest.fixture(scope="module")
def finder():
    with FaceFinder(FaceOptions(landmarks=True, blendshapes=True)) as f:
        yield f


def test_finds_the_astronauts_face_with_eyes_and_landmarks(astronaut, finder):
    faces, timings = finder.find(astronaut)
    (face,) = faces
    assert iou(np.array(face.box), np.array(ASTRONAUT_FACE))[0, 0] > 0.6
    assert face.score > 0.8
    (lx, ly), (rx, ry) = face.eyes
    x, y, w, h = face.box
    assert x < lx < rx < x + w and y < min(ly, ry) < y + h / 2  # eyes in the upper half
    assert face.landmarks.shape == (478, 2)
    assert len(face.blendshapes) == 52 and 0 <= face.blendshapes["jawOpen"] <= 1
    assert set(timings) == {"detect", "landmarks"}


def test_the_full_range_detector_finds_smaller_faces_of_a_group(astronaut):
    # two 60-px faces in a 640 × 480 frame: beyond the short-range model, within the full one
    small = cv2.resize(astronaut, (320, 320))
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:320, :320] = small
    frame[160:, 320:] = small[:, ::-1]
    with FaceFinder(FaceOptions(detector="short")) as short:
        assert short.find(frame)[0] == []
    with FaceFinder(FaceOptions(detector="full", landmarks=True)) as full:
        faces, _ = full.find(frame)
    assert sorted(f.box[0] // 320 for f in faces) == [0, 1]
    assert all(f.landmarks is not None for f in faces)


def test_no_face_in_a_blank_frame(finder):
    faces, _ = finder.find(np.full((240, 320, 3), 127, np.uint8))
    assert faces == []


def test_alignment_puts_the_eyes_where_the_dataset_has_them():
    framing = FRAMINGS["fer2013"]
    eyes = np.array([[100.0, 120.0], [160.0, 100.0]])  # tilted head
    m = alignment(eyes, framing, 48)
    mapped = (m[:, :2] @ eyes.T).T + m[:, 2]
    assert mapped[:, 1] == pytest.approx([framing.eye_y * 48] * 2)  # level
    assert mapped.mean(axis=0) == pytest.approx([framing.eye_x * 48, framing.eye_y * 48])
    assert mapped[1, 0] - mapped[0, 0] == pytest.approx(framing.eye_distance * 48)


def test_an_aligned_crop_is_framed_like_fer2013(astronaut, finder):
    (face,) = finder.find(astronaut)[0]
    crop = aligned_crop(astronaut, face.eyes, FRAMINGS["fer2013"], 192)
    assert crop.shape == (192, 192, 3)
    # the detector finds the eyes of the crop where FER2013 keeps them
    padded = cv2.copyMakeBorder(crop, 96, 96, 96, 96, cv2.BORDER_REPLICATE)
    (again,) = finder.find(padded)[0]
    centre = (again.eyes.mean(axis=0) - 96) / 192
    # (the detector's eye keypoints move by a few hundredths with the face's scale)
    assert centre == pytest.approx([0.504, 0.388], abs=0.05)


def test_a_missing_or_altered_model_file_says_which_and_how_to_restore(tmp_path):
    with pytest.raises(FaceModelError, match="missing; restore it") as missing:
        verified_path(DETECTOR, tmp_path)
    assert "face_detection_short_range.tflite" in str(missing.value)
    assert "pip download --no-deps mediapipe==0.10.21" in str(missing.value)
    altered = tmp_path / DETECTOR.name
    shutil.copy(MEDIAPIPE_DIR / DETECTOR.name, altered)
    with altered.open("r+b") as f:
        f.seek(100)
        f.write(b"\x00\x01")
    with pytest.raises(FaceModelError, match=r"altered \(sha256 [0-9a-f]{16}…, expected bbff11"):
        FaceFinder(FaceOptions(detector="short"), folder=tmp_path)
    with pytest.raises(ValueError, match="expected one of full, short"):
        FaceFinder(FaceOptions(detector="long"))


def test_framing_measure_recovers_how_faces_were_stored(astronaut, finder):
    from trainer.data.framing import measure_framing

    stored = Framing(0.5, 0.42, 0.33)
    (face,) = finder.find(astronaut)[0]
    square = aligned_crop(astronaut, face.eyes, stored, 48)
    grey = cv2.cvtColor(square, cv2.COLOR_BGR2GRAY)
    result = measure_framing([grey, grey[:, ::-1]], "astronaut")
    assert result.found == 2
    measured = [result.eye_x, result.eye_y, result.eye_distance]
    assert measured == pytest.approx([0.5, 0.42, 0.33], abs=0.05)
    assert "Framing(" in result.report()


def test_live_check_scores_the_engine_crop_beside_the_stored_one(astronaut, finder, tmp_path):
    from trainer.cli import main
    from trainer.data import read_dataset
    from trainer.evaluation.live import live_check

    (face,) = finder.find(astronaut)[0]
    square = cv2.cvtColor(
        aligned_crop(astronaut, face.eyes, FRAMINGS["fer2013"], 48), cv2.COLOR_BGR2GRAY
    )
    stored = {  # CK+48 layout; the flat square has no face for the detector
        "happy/S010_006_00000001.png": square,
        "happy/S010_006_00000002.png": square[:, ::-1],
        "fear/S011_001_00000001.png": np.full((48, 48), 128, np.uint8),
        "contempt/S012_001_00000001.png": square,  # a class vgg-fer-s lacks
    }
    for name, image in stored.items():
        (tmp_path / "CK+48" / name).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(tmp_path / "CK+48" / name), image)
    check = live_check("vgg-fer-s", read_dataset("ckplus", tmp_path))
    assert (check.images, check.found, check.left_out) == (3, 2, 1)
    assert (check.live.n, check.stored.n, check.stored_all.n) == (2, 2, 3)
    # stored in the framing the engine aligns to, each face gets the same class both ways
    assert check.live.confusion == check.stored.confusion
    assert check.live_top1_all == pytest.approx(check.live.top1 * 2 / 3)
    assert "detector found 2 of 3 faces" in check.report()

    assert (
        main(["evaluate", "model.pt", "--dataset", "ckplus", "--data", str(tmp_path), "--live"])
        == 2
    )

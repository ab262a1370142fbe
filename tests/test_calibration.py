"""Neutral calibration: the resting face reads neutral afterwards, departures from it still
move the reading, only the calibrated face is corrected, and the engine does it per track."""

import numpy as np
import pytest

from fer_core.calibration import CalibrationOptions, NeutralCalibration, NeutralCalibrator
from fer_core.capture import VideoSource
from fer_core.demo import write_demo_video
from fer_core.recognizer import Recognizer, RecognizerOptions

LABELS = ["angry", "happy", "sad", "neutral"]


def test_the_baseline_reads_neutral_and_a_smile_still_reads_happy():
    resting = np.array([0.15, 0.05, 0.55, 0.25])  # this person looks sad at rest
    calibration = NeutralCalibration.from_samples(np.stack([resting] * 5), LABELS, 0.6)
    assert calibration.apply(resting) == pytest.approx([0.4 / 3, 0.4 / 3, 0.4 / 3, 0.6])
    smiling = np.array([0.05, 0.45, 0.30, 0.20])
    corrected = calibration.apply(smiling)
    assert LABELS[int(np.argmax(corrected))] == "happy"
    assert corrected.sum() == pytest.approx(1.0)


def test_the_calibrator_collects_then_corrects_only_that_face():
    calibrator = NeutralCalibrator(LABELS, CalibrationOptions(frames=3))
    resting = np.array([0.1, 0.1, 0.6, 0.2])
    calibrator.start(7)
    for i in range(2):
        assert calibrator.progress(7) == pytest.approx(i / 3)
        assert calibrator.adjust(7, resting) is resting  # not corrected while collecting
    assert np.argmax(calibrator.adjust(7, resting)) == 3  # the third frame completes it
    assert calibrator.progress(7) == 1.0
    assert np.argmax(calibrator.adjust(7, resting)) == 3
    assert calibrator.adjust(8, resting) is resting and calibrator.progress(8) is None
    calibrator.keep_only([8])
    assert calibrator.progress(7) is None


def test_a_model_without_neutral_cannot_be_calibrated():
    with pytest.raises(ValueError, match="needs a model with a 'neutral' class"):
        NeutralCalibrator(["angry", "happy"]).start(1)


def test_the_engine_calibrates_a_face_on_video(tmp_path):
    """The demo face smiles throughout: taken as her neutral face, the smile reads neutral."""
    video = write_demo_video(tmp_path / "v.avi", 40)
    with Recognizer(RecognizerOptions()) as recognizer, VideoSource(video) as source:
        results = recognizer.run(source)
        first = next(results)
        (face,) = first.faces
        assert face.label == "happy" and face.calibration is None
        recognizer.calibrate(face.track_id)
        recognizer.calibration.options = CalibrationOptions(frames=10)
        later = [r.faces[0] for r in results]
    assert 0 < later[4].calibration < 1 and later[4].label == "happy"
    assert later[-1].calibration == 1.0 and later[-1].label == "neutral"
    assert later[-1].raw_probs["happy"] > 0.5  # the model's own reading is kept beside

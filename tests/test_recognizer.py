"""The engine end to end on short real-face videos composed from the shipped demo photo
(astronaut Eileen Collins): faces found, one stable id per face, smoothed labels, timings."""

import numpy as np
import pytest

from fer_core.capture import VideoSource
from fer_core.demo import write_demo_video
from fer_core.faces import FaceOptions
from fer_core.recognizer import Recognizer, RecognizerOptions
from fer_core.track import TrackerOptions


def test_one_face_keeps_its_id_and_label_over_a_video(tmp_path):
    video = write_demo_video(tmp_path / "one.avi", 12)
    with Recognizer() as recognizer, VideoSource(video) as source:
        results = list(recognizer.run(source))
    assert len(results) == 12
    assert all(len(r.faces) == 1 for r in results)
    assert {r.faces[0].track_id for r in results} == {1}
    last = results[-1].faces[0]
    assert last.label == "happy" and last.score > 0.5
    assert sum(last.probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert set(results[0].timings_ms) == {"detect", "align", "classify", "track", "total"}
    assert results[3].time_s == pytest.approx(3 / 25)


def test_several_faces_get_distinct_stable_ids(tmp_path):
    video = write_demo_video(tmp_path / "three.avi", 6, faces=3)
    options = RecognizerOptions(
        faces=FaceOptions(detector="full", landmarks=True),
        tracker=TrackerOptions(smoothing="window", window=4),
    )
    with Recognizer(options) as recognizer, VideoSource(video) as source:
        results = list(recognizer.run(source))
    ids_per_frame = [sorted(f.track_id for f in r.faces) for r in results]
    assert ids_per_frame == [[1, 2, 3]] * 6
    by_id = {}
    for r in results:
        for f in r.faces:
            by_id.setdefault(f.track_id, []).append(f.box[0])
    assert all(xs == sorted(xs) for xs in by_id.values())  # each id follows its drifting face
    assert all(f.landmarks.shape == (478, 2) for f in results[-1].faces)
    assert "landmarks" in results[-1].timings_ms


def test_a_frame_without_faces_is_an_empty_result():
    with Recognizer() as recognizer:
        result = recognizer.process(np.full((120, 160, 3), 90, np.uint8), index=7, time_s=0.5)
    assert result.faces == () and (result.index, result.width, result.height) == (7, 160, 120)


def test_a_face_the_detector_misses_is_held_briefly_then_dropped():
    from fer_core.demo import demo_frame

    face, blank = demo_frame(0, label=False), np.full((480, 640, 3), 110, np.uint8)
    with Recognizer(RecognizerOptions(tracker=TrackerOptions(hold=2))) as recognizer:
        seen = [recognizer.process(image) for image in [face] * 3 + [blank] * 3]
    assert [len(r.faces) for r in seen] == [1, 1, 1, 1, 1, 0]
    assert [r.faces[0].held for r in seen[:5]] == [False, False, False, True, True]
    assert seen[4].faces[0].box == seen[2].faces[0].box  # at its last detected place
    assert {r.faces[0].track_id for r in seen[:5]} == {1}


def test_process_takes_bgr_grey_or_bgra_uint8_and_says_so_for_anything_else():
    """Issue 31: None, lists, floats, uint16, empty arrays were internal errors; BGRA too."""
    from fer_core.demo import demo_frame

    face = demo_frame(0, label=False)
    nan = np.full((48, 64, 3), np.nan, np.float32)
    with Recognizer() as recognizer:
        bgr = recognizer.process(face).faces[0].box
        grey = recognizer.process(face.mean(axis=2).astype(np.uint8)).faces[0].box
        bgra = recognizer.process(np.dstack([face, np.full(face.shape[:2], 255, np.uint8)]))
        assert np.allclose(grey, bgr, atol=8) and np.allclose(bgra.faces[0].box, bgr, atol=2)
        for bad, kind, said in [
            (None, TypeError, "got NoneType"),
            (face.tolist(), TypeError, "got list"),
            (face.astype(np.float32), TypeError, "got dtype float32"),
            (nan, TypeError, "got dtype float32"),
            (face.astype(np.uint16), TypeError, "got dtype uint16"),
            (np.zeros((0, 0, 3), np.uint8), ValueError, r"got shape \(0, 0, 3\)"),
            (np.zeros((4, 4, 2), np.uint8), ValueError, r"got shape \(4, 4, 2\)"),
        ]:
            with pytest.raises(kind, match=rf"frame: {said}; expected a uint8 numpy array, H×W×3"):
                recognizer.process(bad)


def test_calibrating_an_id_that_is_not_tracked_names_the_tracked_ids():
    from fer_core.demo import demo_frame

    with Recognizer() as recognizer:
        with pytest.raises(ValueError, match=r"calibrate\(1\): .* tracked ids: none"):
            recognizer.calibrate(1)
        (face,) = recognizer.process(demo_frame(0, label=False)).faces
        with pytest.raises(ValueError, match=rf"calibrate\(99\): .* tracked ids: {face.track_id}$"):
            recognizer.calibrate(99)
        recognizer.calibrate(face.track_id)

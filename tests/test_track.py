"""Face tracking: stable ids, smoothing, the uncertain label, ending and never reusing tracks."""

import numpy as np
import pytest

from fer_core.track import UNCERTAIN, Tracker, TrackerOptions, iou

LABELS = ["angry", "happy", "neutral"]
HAPPY = [0.1, 0.8, 0.1]
NEUTRAL = [0.1, 0.1, 0.8]


def test_iou_of_known_boxes():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [20, 20, 5, 5]])
    assert iou(a, b) == pytest.approx(np.array([[1.0, 50 / 150, 0.0]]))


def test_ids_follow_faces_that_move_and_swap_order():
    tracker = Tracker(LABELS)
    left, right = [10, 10, 50, 50], [200, 10, 50, 50]
    first = tracker.update([left, right], [HAPPY, NEUTRAL])
    assert [f.track_id for f in first] == [1, 2]
    # both move a little, and the detector lists them the other way round
    moved = tracker.update([[204, 12, 50, 50], [14, 12, 50, 50]], [NEUTRAL, HAPPY])
    assert [f.track_id for f in moved] == [2, 1]


def test_new_faces_get_ids_in_reading_order_not_the_detectors():
    """Five faces in two rows, listed by the detector in no order; the lower row's faces sit
    at slightly different heights and still read as one row."""
    boxes = {  # expected id: box
        1: [20, 30, 60, 60], 2: [150, 22, 60, 60], 3: [280, 36, 60, 60],
        4: [60, 200, 70, 70], 5: [250, 210, 60, 60],
    }  # fmt: skip
    listed = [5, 2, 4, 1, 3]
    faces = Tracker(LABELS).update([boxes[k] for k in listed], [HAPPY] * 5)
    assert [f.track_id for f in faces] == listed  # results keep the input order
    # a face new in a later frame, left of the others, takes the next id (ids never reshuffle)
    tracker = Tracker(LABELS)
    tracker.update([boxes[2], boxes[1]], [HAPPY] * 2)
    later = tracker.update([boxes[2], boxes[1], [0, 100, 40, 40]], [HAPPY] * 3)
    assert [f.track_id for f in later] == [2, 1, 3]


def test_a_fast_move_without_overlap_keeps_the_id_when_the_centre_is_close():
    tracker = Tracker(LABELS, TrackerOptions(min_iou=0.9))
    tracker.update([[100, 100, 40, 40]], [HAPPY])
    (face,) = tracker.update([[110, 100, 40, 40]], [HAPPY])  # IoU 0.6 < 0.9, centres 10 px
    assert face.track_id == 1
    (far,) = tracker.update([[300, 300, 40, 40]], [HAPPY])
    assert far.track_id == 2


def test_a_track_ends_after_max_missing_frames_and_its_id_is_not_reused():
    tracker = Tracker(LABELS, TrackerOptions(max_missing=2))
    box = [[50, 50, 40, 40]]
    assert tracker.update(box, [HAPPY])[0].track_id == 1
    tracker.update(np.zeros((0, 4)), np.zeros((0, 3)))
    tracker.update(np.zeros((0, 4)), np.zeros((0, 3)))
    assert tracker.update(box, [HAPPY])[0].track_id == 1  # two missed frames: still alive
    for _ in range(3):
        tracker.update(np.zeros((0, 4)), np.zeros((0, 3)))
    assert tracker.tracks == []
    assert tracker.update(box, [HAPPY])[0].track_id == 2


def test_ema_smoothing_and_the_uncertain_label():
    tracker = Tracker(LABELS, TrackerOptions(smoothing="ema", alpha=0.5, threshold=0.5))
    box = [[0, 0, 30, 30]]
    assert tracker.update(box, [HAPPY])[0].label == "happy"
    face = tracker.update(box, [NEUTRAL])[0]
    assert face.smoothed == pytest.approx([0.1, 0.45, 0.45])
    assert face.label == UNCERTAIN and face.score == pytest.approx(0.45)
    face = tracker.update(box, [NEUTRAL])[0]
    assert face.smoothed == pytest.approx([0.1, 0.275, 0.625])
    assert face.label == "neutral"


def test_window_smoothing_averages_the_last_frames():
    tracker = Tracker(LABELS, TrackerOptions(smoothing="window", window=2, threshold=0.0))
    box = [[0, 0, 30, 30]]
    tracker.update(box, [HAPPY])
    tracker.update(box, [NEUTRAL])
    face = tracker.update(box, [[0.7, 0.2, 0.1]])[0]
    assert face.smoothed == pytest.approx([0.4, 0.15, 0.45])  # HAPPY has left the window


def test_no_smoothing_returns_each_frame():
    tracker = Tracker(LABELS, TrackerOptions(smoothing="none"))
    box = [[0, 0, 30, 30]]
    tracker.update(box, [HAPPY])
    assert tracker.update(box, [NEUTRAL])[0].smoothed == pytest.approx(NEUTRAL)


def test_each_track_smooths_on_its_own():
    tracker = Tracker(LABELS, TrackerOptions(alpha=0.5))
    boxes = [[0, 0, 30, 30], [100, 0, 30, 30]]
    tracker.update(boxes, [HAPPY, NEUTRAL])
    a, b = tracker.update(boxes, [HAPPY, NEUTRAL])
    assert a.label == "happy" and b.label == "neutral"


@pytest.mark.parametrize(
    "options, message",
    [
        (dict(smoothing="median"), "expected one of ema, window, none"),
        (dict(alpha=0.0), "alpha=0.0"),
        (dict(window=0), "window=0"),
        (dict(threshold=1.5), "threshold=1.5"),
    ],
)
def test_bad_options_say_which(options, message):
    with pytest.raises(ValueError, match=message):
        TrackerOptions(**options)


def test_probabilities_must_match_the_labels():
    with pytest.raises(ValueError, match="2 probabilities per face, expected 3"):
        Tracker(LABELS).update([[0, 0, 10, 10]], [[0.5, 0.5]])

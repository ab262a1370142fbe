"""The recent history behind the app's emotion timeline: per face, pruned to the window, reset
when the source restarts."""

import numpy as np
import pytest

from fer_core.results import FaceResult, FrameResult
from fer_core.timeline import Timeline

LABELS = ["happy", "sad"]


def frame(t, faces):
    return FrameResult(
        index=round(t * 10), time_s=t, width=64, height=64,
        faces=tuple(
            FaceResult(track_id=i, box=(0, 0, 8, 8), probs={"happy": p, "sad": 1 - p},
                       raw_probs={"happy": p, "sad": 1 - p}, label="happy", score=p)
            for i, p in faces.items()
        ),
    )  # fmt: skip


def test_series_are_per_face_relative_to_now_and_pruned_to_the_window():
    timeline = Timeline(LABELS, seconds=1.0)
    for k in range(30):  # 3 s at 10 frames/s; face 2 only in the first second
        timeline.add(frame(k / 10, {1: 0.9, **({2: 0.2} if k < 10 else {})}))
    assert timeline.tracks() == [1]  # face 2 left more than the window ago
    times, probs = timeline.series(1)
    assert times[-1] == 0 and times[0] == pytest.approx(-1.0) and len(times) == 11
    np.testing.assert_allclose(probs[-1], [0.9, 0.1], atol=1e-6)
    assert timeline.series(2)[0].size == 0


def test_a_restarted_source_starts_a_new_history():
    timeline = Timeline(LABELS)
    timeline.add(frame(5.0, {1: 0.5}))
    timeline.add(frame(0.0, {3: 0.5}))
    assert timeline.tracks() == [3]


def test_picture_has_a_panel_per_face():
    timeline = Timeline(LABELS, seconds=float("inf"))
    for k in range(20):
        timeline.add(frame(k / 10, {1: 0.9, 2: 0.1}))
    one = Timeline(LABELS).picture()
    two = timeline.picture()
    assert two.shape[0] > one.shape[0] and two.shape[1] == 1000


def test_picture_draws_every_face_up_to_the_cap_and_names_the_rest():
    """Five faces used to be drawn as four, silently."""
    timeline = Timeline(LABELS, seconds=float("inf"))
    for k in range(20):  # face 5 is seen least
        timeline.add(frame(k / 10, {i: 0.5 for i in range(1, 6 if k < 10 else 5)}))
    assert timeline.picture_faces() == ([1, 2, 3, 4, 5], "")
    assert timeline.picture().shape[0] > 5 * 170
    shown, left_out = timeline.picture_faces(cap=4)
    assert shown == [1, 2, 3, 4] and left_out.startswith("1 of 5 faces not drawn (#5)")
    assert "4 longest-seen" in left_out
    assert timeline.picture(faces=4).shape[0] > 4 * 170 + 30  # room for the line naming #5

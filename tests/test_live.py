"""The live session without Qt: a demo video through `LiveSession` in a thread of the test's
own, requests issued from the test, results collected through the callbacks."""

import csv
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from fer_core.capture import SourceError, open_source
from fer_core.demo import write_demo_video
from fer_core.live import LiveCallbacks, LiveSession, Rate, SetOptions, SetView, free_stem
from fer_core.profile import ProfileOptions
from fer_core.recognizer import RecognizerOptions
from fer_core.track import TrackerOptions


class Heard:
    """Everything the session said, in order, as (callback, value)."""

    def __init__(self):
        self.said: list[tuple[str, object]] = []
        self.changed = threading.Condition()

    def callbacks(self) -> LiveCallbacks:
        names = ("frame", "event", "source_opened", "source_failed", "source_ended",
                 "model_changed", "recording_changed", "taught")  # fmt: skip
        return LiveCallbacks(**{name: self._hear(name) for name in names})

    def _hear(self, name):
        def hear(*value):
            with self.changed:
                self.said.append((name, value[0] if len(value) == 1 else value))
                self.changed.notify_all()

        return hear

    def of(self, name: str) -> list:
        with self.changed:
            return [value for said, value in self.said if said == name]

    def wait(self, test, timeout: float = 60.0):
        with self.changed:
            assert self.changed.wait_for(test, timeout), self.said[-5:]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_demo_video(tmp_path_factory.mktemp("live") / "demo.avi", 40, fps=50.0)


@pytest.fixture
def running():
    """Start a session in a thread; stop and join it at the end of the test."""
    started = []

    def start(options=None, view=None):
        heard = Heard()
        session = LiveSession(options or RecognizerOptions(), view, heard.callbacks())
        thread = threading.Thread(target=session.run, name="live")
        thread.start()
        started.append((session, thread))
        return session, heard

    yield start
    for session, thread in started:
        session.stop()
        thread.join(30)
        assert not thread.is_alive()


def test_a_video_plays_to_its_end_through_the_callbacks(running, video):
    session, heard = running()
    session.open_source(lambda: open_source(video))
    heard.wait(lambda: heard.of("source_ended"))
    assert heard.of("model_changed") and heard.of("source_opened") == [str(video)]
    shown = heard.of("frame")
    assert shown and all(s.source == str(video) for s in shown)
    assert [s.result.index for s in shown] == sorted(s.result.index for s in shown)
    first = shown[-1]
    assert first.result.faces and first.labels and first.image.shape == (480, 640, 3)
    assert first.picture.shape == (480, 640, 3)  # the overlays drawn at the frame's size
    assert np.abs(first.picture.astype(int) - first.image).max() > 100


def test_requests_are_applied_between_frames_and_read_back_at_once(running, video):
    session, heard = running()
    session.set_paused(True)
    session.open_source(lambda: open_source(video))
    session.set_view(mirror=True)
    session.set_view(bars=False)  # on top of the change still queued
    assert session.paused and session.view.mirror and not session.view.bars
    heard.wait(lambda: heard.of("source_opened"))
    time.sleep(0.3)
    assert not heard.of("frame")  # paused
    tracker = TrackerOptions(threshold=1.0)
    session.set_options(replace(session.options, tracker=tracker))
    assert session.options.tracker == tracker
    session.set_paused(False)
    heard.wait(lambda: len(heard.of("frame")) >= 3)
    assert len(heard.of("model_changed")) == 1  # the tracker changed in place: no new model
    faces = [f for s in heard.of("frame")[1:] for f in s.result.faces]
    assert faces and all(f.label == "uncertain" for f in faces)


def test_options_queued_together_load_only_the_newest(video):
    session = LiveSession(RecognizerOptions())
    session.set_options(RecognizerOptions(threads=2))
    assert [type(r) for r in session._queue] == [SetOptions]  # the first one was replaced
    session.set_view(mirror=True)
    session.set_view(landmarks=True)
    assert [r for r in session._queue if isinstance(r, SetView)] == [
        SetView(replace(session.view, mirror=True, landmarks=True))
    ]


def test_a_model_that_fails_to_load_leaves_the_running_one(running, tmp_path):
    session, heard = running()
    heard.wait(lambda: heard.of("model_changed"))
    session.set_options(RecognizerOptions(model=tmp_path / "nothing-here"))
    heard.wait(lambda: heard.of("event"))
    assert heard.of("event")[0][1].startswith("model not changed")
    assert session.recognizer is not None and len(heard.of("model_changed")) == 1


def test_a_source_that_fails_to_open_leaves_the_running_one(running, video):
    session, heard = running()
    session.open_source(lambda: open_source(video))
    heard.wait(lambda: heard.of("frame"))

    def broken():
        raise SourceError("no such camera")

    session.open_source(broken)
    heard.wait(lambda: heard.of("source_failed"))
    assert heard.of("source_failed") == ["no such camera"]
    count = len(heard.of("frame"))
    heard.wait(lambda: len(heard.of("frame")) > count)  # the video goes on


def test_a_recording_ends_with_its_source(running, video, tmp_path):
    session, heard = running()
    session.set_paused(True)
    session.open_source(lambda: open_source(video))
    session.start_recording(tmp_path)
    session.set_paused(False)
    heard.wait(lambda: len(heard.of("recording_changed")) == 2)
    assert heard.of("source_ended")
    started, stopped = heard.of("recording_changed")
    assert stopped is None
    mp4, table = started
    assert mp4.exists() and mp4.parent == tmp_path
    with open(table) as file:
        rows = list(csv.DictReader(file))
    assert rows and {r["frame"] for r in rows} <= {str(i) for i in range(40)}


def test_teaching_requests_are_answered(running, video):
    session, heard = running(RecognizerOptions(profiles=ProfileOptions(frames=5)))
    session.open_source(lambda: open_source(video))
    heard.wait(lambda: any(s.result.faces for s in heard.of("frame")))
    face = next(s for s in heard.of("frame") if s.result.faces).result.faces[0]
    session.calibrate(face.track_id)
    session.teach(9999, "happy")
    heard.wait(lambda: heard.of("taught"))  # 5 frames of her neutral face
    ((track_id, label, profile),) = heard.of("taught")
    assert (track_id, label, profile.taught) == (face.track_id, "neutral", ("neutral",))
    session.use_profile(profile)
    session.clear_profiles()
    heard.wait(lambda: len(heard.of("event")) >= 4)
    said = [message for _, message in heard.of("event")]
    assert said[0] == f"face #{face.track_id}: hold neutral (5 frames)"
    assert said[1].startswith("teach(9999, 'happy'): no face with this id is tracked")
    assert said[2] == f"the largest face is read with profile {profile.name!r}"
    assert said[3] == "profiles and calibrations cleared"


def test_rate_and_free_stem(tmp_path):
    rate = Rate(window=1.0)
    assert [rate.tick(t) for t in (0.0, 0.5, 1.0)] == [0.0, 2.0, 2.0]
    assert rate.tick(3.0) == 0.0  # the older ticks left the window
    (tmp_path / "fer.mp4").touch()
    (tmp_path / "fer-2.mp4").touch()
    assert free_stem(tmp_path, "fer", ".mp4") == "fer-3"
    assert free_stem(tmp_path, "other", ".mp4") == "other"


def play(video, overlap: bool, mirror_after: int | None = None) -> list:
    """Every frame of `video` as shown by a session (mirrored from the frame after the
    `mirror_after`-th shown one on, when given)."""
    heard = Heard()
    session = LiveSession(RecognizerOptions(), callbacks=heard.callbacks(), overlap=overlap)
    thread = threading.Thread(target=session.run, name="live")
    thread.start()
    try:
        session.open_source(lambda: open_source(video))
        if mirror_after is not None:
            heard.wait(lambda: len(heard.of("frame")) >= mirror_after)
            session.set_view(mirror=True)
        heard.wait(lambda: heard.of("source_ended"))
    finally:
        session.stop()
        thread.join(30)
    shown = heard.of("frame")
    assert shown[-1].dropped == 0, "the machine was too busy to compare every frame"
    assert [s.result.index for s in shown] == list(range(len(shown)))  # none lost, in order
    return shown


def test_overlap_gives_the_results_of_one_frame_after_the_other(tmp_path):
    video = write_demo_video(tmp_path / "two.avi", 24, faces=2, fps=8.0)  # slow: none dropped
    together, apart = play(video, overlap=True), play(video, overlap=False)

    def seen(shown):
        return [[(f.track_id, f.label, f.box, f.held) for f in s.result.faces] for s in shown]

    assert seen(together) == seen(apart) and len(together) == 24
    assert all(s.result.faces for s in together)


def test_with_overlap_a_request_applies_between_frames(tmp_path):
    """The frame in flight when a request comes finishes as it was found; every frame from
    the next on is found and shown as asked (here mirrored)."""
    video = write_demo_video(tmp_path / "two.avi", 24, faces=2, fps=8.0)
    plain, shown = play(video, overlap=False), play(video, overlap=True, mirror_after=8)
    mirrored = [s.view.mirror for s in shown]
    assert mirrored == sorted(mirrored) and 8 <= mirrored.index(True) < 24
    for before, now in zip(plain, shown, strict=True):
        if now.view.mirror:
            assert np.array_equal(now.image, before.image[:, ::-1])
            centres = sorted(
                640 - (x + w / 2) for x, _, w, _ in (f.box for f in before.result.faces)
            )
            assert np.allclose(
                sorted(x + w / 2 for x, _, w, _ in (f.box for f in now.result.faces)),
                centres,
                atol=12,
            )
        else:
            assert np.array_equal(now.image, before.image)

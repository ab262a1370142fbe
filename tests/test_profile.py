"""Personal profiles: neutral calibration is the one-class case (the resting face reads
neutral, departures still move the reading); two or more taught classes are told apart by the
person's own examples; an untaught class keeps the model's reading; profiles round-trip
through their file, a bad file is one line, another model's profile is refused; the engine
teaches and applies them per track, and to the largest face."""

import json

import numpy as np
import pytest

from fer_core.capture import VideoSource
from fer_core.demo import write_demo_video
from fer_core.profile import Lessons, ModelKey, Profile, ProfileError, ProfileOptions
from fer_core.recognizer import Recognizer, RecognizerOptions

LABELS = ("angry", "happy", "sad", "neutral")
MODEL = ModelKey("tiny", "abc123", LABELS)


def test_taught_neutral_alone_is_the_prior_shift_of_neutral_calibration():
    resting = np.array([0.15, 0.05, 0.55, 0.25])  # this person looks sad at rest
    profile = Profile("p", MODEL).taught_with("neutral", np.stack([resting] * 5))
    assert profile.apply(resting) == pytest.approx([0.4 / 3, 0.4 / 3, 0.4 / 3, 0.6])
    corrected = profile.apply(np.array([0.05, 0.45, 0.30, 0.20]))  # a smile
    assert LABELS[int(np.argmax(corrected))] == "happy"
    assert corrected.sum() == pytest.approx(1.0)


def test_taught_classes_the_model_confuses_are_told_apart():
    # the model reads this person's anger as neutral, a little less sure than their rest
    frown, rest = np.array([0.2, 0.02, 0.18, 0.6]), np.array([0.05, 0.03, 0.12, 0.8])
    profile = Profile("p", MODEL).taught_with("angry", [frown]).taught_with("neutral", [rest])
    assert profile.taught == ("angry", "neutral")
    assert LABELS[int(np.argmax(profile.apply(frown)))] == "angry"
    assert LABELS[int(np.argmax(profile.apply(rest)))] == "neutral"
    smile = np.array([0.02, 0.9, 0.03, 0.05])  # never taught: still the model's happy
    read = profile.apply(smile)
    assert LABELS[int(np.argmax(read))] == "happy" and read.sum() == pytest.approx(1.0)
    batch = profile.apply(np.stack([frown, rest, smile]))  # rows at once, as evaluate does
    assert batch == pytest.approx(np.stack([profile.apply(p) for p in (frown, rest, smile)]))


def test_lessons_collect_then_correct_only_that_face():
    lessons = Lessons(MODEL, ProfileOptions(frames=3))
    resting = np.array([[0.1, 0.1, 0.6, 0.2]])
    lessons.teach(7, "neutral")
    for i in range(2):
        assert lessons.adjust([7], resting, 0)[0] == pytest.approx(resting[0])
        assert lessons.progress(7) == ("neutral", pytest.approx((i + 1) / 3))
    assert np.argmax(lessons.adjust([7], resting, 0)[0]) == 3  # the third frame completes it
    assert lessons.progress(7) is None and lessons.profile(7).taught == ("neutral",)
    assert lessons.take_taught() == [(7, "neutral")] and lessons.take_taught() == []
    assert lessons.adjust([8], resting, 0)[0] == pytest.approx(resting[0])  # another face
    lessons.keep_only([8])
    assert lessons.profile(7) is None
    with pytest.raises(ValueError, match="teach 'contempt': not a class of tiny"):
        lessons.teach(8, "contempt")


def test_a_profile_for_the_largest_face_stays_with_it_then_moves_on():
    profile = Profile("p", MODEL).taught_with("neutral", [[0.1, 0.1, 0.6, 0.2]])
    lessons = Lessons(MODEL)
    lessons.use(profile)
    probs = np.array([[0.1, 0.1, 0.6, 0.2]] * 2)
    lessons.adjust([1, 2], probs, largest=1)
    assert lessons.profile(2) is profile and lessons.profile(1) is None
    lessons.adjust([1, 2], probs, largest=0)  # face 1 grows: the profile stays with face 2
    assert lessons.profile(1) is None
    lessons.keep_only([1])  # face 2 gone: the next largest face takes it
    lessons.adjust([1], probs[:1], largest=0)
    assert lessons.profile(1) is profile


def test_a_profile_round_trips_through_its_file(tmp_path):
    profile = Profile("Ada", MODEL).taught_with("happy", [[0.1, 0.7, 0.1, 0.1]] * 2)
    path = profile.save(tmp_path / "ada.profile.json")
    data = json.loads(path.read_text())
    assert data["format"] == "fer-profile/1" and data["model"]["package"] == "tiny"
    again = Profile.load(path)
    assert again.name == "Ada" and again.model == MODEL and again.taught == ("happy",)
    probs = np.array([0.3, 0.3, 0.2, 0.2])
    assert again.apply(probs) == pytest.approx(profile.apply(probs), abs=1e-4)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", r"line 1: not JSON"),
        ('{"format": "fer-profile/9"}', r"format 'fer-profile/9', expected 'fer-profile/1'"),
        ('{"format": "fer-profile/1", "name": "", "model": {}}', r"field 'name' should be"),
        (
            '{"format": "fer-profile/1", "name": "a", "model": {"package": "tiny", "weights": '
            '"abc123", "labels": ["angry", "happy"]}, "examples": {"happy": [[0.5, -1]]}}',
            r"examples of 'happy' should be log-probabilities",
        ),
        (
            '{"format": "fer-profile/1", "name": "a", "model": {"package": "tiny", "weights": '
            '"abc123", "labels": ["angry", "happy"]}, "examples": {"sad": [[-1, -1]]}}',
            r"'sad' is not a class of tiny",
        ),
        (
            '{"format": "fer-profile/1", "name": "a", "model": {"package": "tiny", "weights": '
            '"abc123", "labels": ["angry", "happy"]}, "examples": {"happy": [[-1]]}}',
            r"examples of 'happy' should be frames of 2 numbers each",
        ),
    ],
)
def test_a_bad_profile_file_is_one_line_naming_it(tmp_path, text, message):
    path = tmp_path / "bad.profile.json"
    path.write_text(text)
    with pytest.raises(ProfileError, match=message) as error:
        Profile.load(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_another_models_profile_is_refused():
    other = Profile("Ada", ModelKey("tiny", "different", LABELS))
    with pytest.raises(ProfileError, match=r"was taught on tiny .*teach it again with this model"):
        Lessons(MODEL).use(other)


def test_the_engine_calibrates_a_face_on_video(tmp_path):
    """The demo face smiles throughout: taken as her neutral face, the smile reads neutral."""
    video = write_demo_video(tmp_path / "v.avi", 40)
    options = RecognizerOptions(profiles=ProfileOptions(frames=10))
    with Recognizer(options) as recognizer, VideoSource(video) as source:
        results = recognizer.run(source)
        (face,) = next(results).faces
        assert face.label == "happy" and face.teaching is None and face.profile is None
        assert recognizer.calibrate(face.track_id) == 10
        later = [r.faces[0] for r in results]
        taught = recognizer.profile(face.track_id)
    assert later[4].teaching == ("neutral", pytest.approx(0.5)) and later[4].label == "happy"
    assert later[-1].teaching is None and later[-1].label == "neutral"
    assert later[-1].profile == taught.name and later[-1].raw_probs["happy"] > 0.5
    # saved and given to a new recognizer for the largest face, it reads the same way
    path = taught.save(tmp_path / "her.profile.json")
    with Recognizer(options) as recognizer, VideoSource(video) as source:
        recognizer.use_profile(Profile.load(path))
        frames = list(recognizer.run(source))
    assert all(f.faces[0].label == "neutral" for f in frames[1:])
    assert frames[-1].faces[0].profile == taught.name


def test_teaching_an_id_that_is_not_tracked_names_the_tracked_ids():
    said = r"teach\(3, 'happy'\): .* tracked ids: none"
    with Recognizer(RecognizerOptions()) as recognizer, pytest.raises(ValueError, match=said):
        recognizer.teach(3, "happy")

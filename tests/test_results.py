"""The flat face rows every front end writes: columns, values, no row for an empty frame, and
files that take their name only when complete."""

import csv
import json

import numpy as np
import pytest

from fer_core.results import FaceLog, FaceResult, FrameResult, columns, rows

LABELS = ["Angry", "Happy", "Neutral"]


def face(track_id, box, probs, label):
    named = dict(zip(LABELS, probs, strict=True))
    return FaceResult(track_id, box, named, named, label, max(probs))


FRAMES = [
    FrameResult(0, 0.0, 640, 480, (face(1, (10, 20, 100, 120), [0.1, 0.7, 0.2], "Happy"),)),
    FrameResult(1, 0.04, 640, 480),  # no face: no row
    FrameResult(
        2,
        0.08,
        640,
        480,
        (
            face(1, (12, 21, 100, 120), [0.2, 0.5, 0.3], "Happy"),
            face(2, (300, 40, 90, 90), [0.34, 0.33, 0.33], "uncertain"),
        ),
    ),
]


def test_columns_end_with_one_lower_case_probability_per_class():
    assert columns(LABELS) == [
        "frame", "time_s", "face_id", "x", "y", "w", "h", "label", "score", "held", "profile",
        "p_angry", "p_happy", "p_neutral",
    ]  # fmt: skip


def test_rows_hold_the_faces_of_a_frame():
    (row,) = rows(FRAMES[0], LABELS)
    assert row == {
        "frame": 0, "time_s": 0.0, "face_id": 1, "x": 10, "y": 20, "w": 100, "h": 120,
        "label": "Happy", "score": 0.7, "held": 0, "profile": "",
        "p_angry": 0.1, "p_happy": 0.7, "p_neutral": 0.2,
    }  # fmt: skip
    assert rows(FRAMES[1], LABELS) == []


def test_csv_log_has_one_row_per_face_per_frame(tmp_path):
    path = tmp_path / "out" / "faces.csv"
    with FaceLog(path, LABELS) as log:
        for frame in FRAMES:
            log.write(frame)
        assert not path.exists()  # named only when complete
    with open(path, newline="") as f:
        read = list(csv.DictReader(f))
    assert list(read[0]) == columns(LABELS)
    assert [(r["frame"], r["face_id"], r["label"]) for r in read] == [
        ("0", "1", "Happy"),
        ("2", "1", "Happy"),
        ("2", "2", "uncertain"),
    ]
    assert float(read[2]["p_angry"]) == pytest.approx(0.34)
    assert not (tmp_path / "out" / "faces.csv.partial").exists()


def test_json_lines_log_holds_the_same_rows(tmp_path):
    path = tmp_path / "faces.jsonl"
    with FaceLog(path, LABELS) as log:
        for frame in FRAMES:
            log.write(frame)
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [r for frame in FRAMES for r in rows(frame, LABELS)]


def test_an_interrupted_log_leaves_the_old_file_and_nothing_partial(tmp_path):
    path = tmp_path / "faces.csv"
    path.write_text("yesterday's rows\n")
    with pytest.raises(RuntimeError), FaceLog(path, LABELS) as log:
        log.write(FRAMES[0])
        raise RuntimeError("stream broke")
    assert path.read_text() == "yesterday's rows\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["faces.csv"]


def test_blendshape_columns_follow_the_probabilities_and_stay_empty_without_scores(tmp_path):
    from fer_core.blendshapes import BLENDSHAPES

    scored = FaceResult(1, (0, 0, 9, 9), {k: 1 / len(LABELS) for k in LABELS}, {}, "Happy",
                        0.3, blendshapes={name: 0.25 for name in BLENDSHAPES})  # fmt: skip
    bare = FaceResult(2, (9, 9, 9, 9), scored.probs, {}, "Happy", 0.3)
    frame = FrameResult(0, 0.0, 64, 64, (scored, bare))
    with FaceLog(tmp_path / "f.csv", LABELS, blendshapes=True) as log:
        log.write(frame)
    with open(tmp_path / "f.csv", newline="") as f:
        header, first, second = list(csv.reader(f))
    assert header == columns(LABELS, blendshapes=True)
    assert header[-52:] == [f"bs_{name}" for name in BLENDSHAPES] and len(set(BLENDSHAPES)) == 52
    assert first[-52:] == ["0.25"] * 52 and second[-52:] == [""] * 52


def test_landmarks_and_blendshapes_are_optional():
    f = FaceResult(3, (0, 0, 1, 1), {}, {}, "uncertain", 0.0)
    assert f.landmarks is None and f.blendshapes is None
    g = FaceResult(3, (0, 0, 1, 1), {}, {}, "x", 0.0, landmarks=np.zeros((478, 2)))
    assert g.landmarks.shape == (478, 2)


def test_the_rows_need_not_load_the_detector_for_the_blendshape_names():
    """`fer_core.blendshapes` holds the names, for the rows and the detector alike: reading or
    writing results loads neither MediaPipe nor the detector module."""
    import subprocess
    import sys

    probe = (
        "import sys, fer_core.results; "
        "print('fer_core.faces' in sys.modules, 'mediapipe' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]

"""`python -m app analyze` on a composed real-face video: the annotated MP4, the CSV and JSON
rows (none for frames without a face), and a clear error on an unreadable input."""

import csv
import json

import cv2
import numpy as np
import pytest

from app.__main__ import main
from fer_core.demo import write_demo_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.avi"
    write_demo_video(path, 10)
    # three face-less frames in front: they must give no row
    capture = cv2.VideoCapture(str(path))
    frames = [capture.read()[1] for _ in range(10)]
    capture.release()
    out = path.with_name("clip-with-blank.avi")
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (640, 480))
    for image in [np.full((480, 640, 3), 110, np.uint8)] * 3 + frames:
        writer.write(image)
    writer.release()
    return out


def test_analyze_writes_video_csv_and_json(video, tmp_path, capsys):
    out, rows_csv, rows_json = tmp_path / "a.mp4", tmp_path / "f.csv", tmp_path / "f.jsonl"
    code = main(["analyze", str(video), "--out", str(out), "--csv", str(rows_csv),
                 "--json", str(rows_json), "--no-progress"])  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "13 frames, 10 face rows" in printed and "frames/s end to end" in printed
    assert "detect" in printed and "classify" in printed

    with open(rows_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "frame", "time_s", "face_id", "x", "y", "w", "h", "label", "score",
        "p_angry", "p_disgust", "p_fear", "p_happy", "p_sad", "p_surprise", "p_neutral",
    ]  # fmt: skip
    assert [int(r["frame"]) for r in rows] == list(range(3, 13))  # no row for the blank frames
    assert {r["face_id"] for r in rows} == {"1"}
    assert rows[-1]["label"] == "happy"
    assert float(rows[4]["time_s"]) == pytest.approx(7 / 25)
    lines = [json.loads(line) for line in rows_json.read_text().splitlines()]
    assert [r["frame"] for r in lines] == list(range(3, 13))
    assert lines[0]["p_happy"] == pytest.approx(float(rows[0]["p_happy"]))

    capture = cv2.VideoCapture(str(out))
    assert capture.isOpened()
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 13
    ok, first_annotated = capture.read()
    capture.release()
    assert ok and first_annotated.shape == (480, 640, 3)
    assert not list(tmp_path.glob("*partial*"))


def test_unreadable_input_exits_non_zero_with_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"this is not a video")
    assert main(["analyze", str(bad), "--csv", str(tmp_path / "f.csv")]) == 2
    err = capsys.readouterr().err
    assert "error:" in err and "broken.mp4" in err and "cannot be read as a video" in err
    assert not (tmp_path / "f.csv").exists()


def test_analyze_needs_something_to_write(video):
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", str(video)])
    assert exit_.value.code == 2


def test_benchmark_prints_both_cases(capsys):
    assert main(["benchmark", "--frames", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["faces", "detector", "frames/s"]
    assert [line.split()[:2] for line in lines[1:3]] == [["1", "short"], ["5", "full"]]
    assert [int(line.split()[3]) for line in lines[1:3]] == [4, 20]  # every face of every frame


def test_analyze_draws_the_emotion_timeline(video, tmp_path):
    picture = tmp_path / "timeline.png"
    assert main(["analyze", str(video), "--timeline", str(picture), "--no-progress"]) == 0
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[1] == 1000
    # one face: one panel, with the happy line (overlay colour) high in it
    happy = np.all(image == (0, 200, 255), axis=2)
    rows = np.nonzero(happy[:, 50:890].any(axis=1))[0]
    assert len(rows) and rows.min() < 24 + 0.3 * 130

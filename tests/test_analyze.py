"""`python -m app analyze` on a composed real-face video: the annotated MP4, the CSV and JSON
rows (none for frames without a face), blendshape columns, a folder of images, and every bad
output or input giving one line, status 2 and no lost or partial file."""

import csv
import json
import os
import re
import resource
import signal
import stat
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from app.__main__ import main
from fer_core.demo import demo_frame, write_demo_video
from tests.conftest import ROOT


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


@pytest.mark.slow
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
        "frame", "time_s", "face_id", "x", "y", "w", "h", "label", "score", "held", "profile",
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


@pytest.mark.slow
def test_benchmark_prints_every_case_with_the_share_of_faces_found(capsys):
    assert main(["benchmark", "--frames", "4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["faces", "detected", "shown", "frames/s"]
    scenes = [re.match(r"\s*(.+ (?:grid|px))\s+([\d.]+)%\s+([\d.]+)%", line) for line in lines[1:5]]
    assert [s[1] for s in scenes] == ["1 on a grid", "5 on a grid", "5 × 70 px", "5 × 40 px"]
    # with the default settings every face is detected, the 40-px group too (`fer_core.zoom`)
    assert [float(s[2]) for s in scenes] == [100.0, 100.0, 100.0, 100.0]
    assert all(float(s[3]) >= float(s[2]) for s in scenes)


def test_analyze_draws_the_emotion_timeline(video, tmp_path):
    picture = tmp_path / "timeline.png"
    assert main(["analyze", str(video), "--timeline", str(picture), "--no-progress"]) == 0
    image = cv2.imread(str(picture))
    assert image is not None and image.shape[1] == 1000
    # one face: one panel, with the happy line (overlay colour) high in it
    happy = np.all(image == (0, 200, 255), axis=2)
    rows = np.nonzero(happy[:, 50:890].any(axis=1))[0]
    assert len(rows) and rows.min() < 24 + 0.3 * 130


def test_analyze_names_the_faces_its_timeline_left_out(video, tmp_path, monkeypatch, capsys):
    """Faces beyond the picture's cap are said in one stderr line, not dropped silently."""
    from fer_core.timeline import Timeline

    said = "1 of 13 faces not drawn (#13): the timeline draws the 12 longest-seen"
    monkeypatch.setattr(Timeline, "picture_faces", lambda self, cap=12: ([1], said))
    picture = tmp_path / "timeline.png"
    assert main(["analyze", str(video), "--timeline", str(picture), "--no-progress"]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [f"note: {picture}: {said}"]


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def run_analyze(args, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "app", "analyze", *map(str, args),
                             "--no-progress"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kwargs)  # fmt: skip


@pytest.mark.slow
def test_a_full_disk_is_an_error_and_the_old_video_survives(video, tmp_path):
    """The file-size limit makes writes past 300 kB fail as a full disk does."""
    long_video = write_demo_video(tmp_path / "long.avi", 120)
    out = tmp_path / "annotated.mp4"
    out.write_bytes(b"yesterday's video")

    def small_disk():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (300_000, 300_000))

    run = run_analyze([long_video, "--out", out], preexec_fn=small_disk)
    stdout, stderr = run.communicate(timeout=300)
    assert run.returncode == 2, stderr
    assert len(stderr.strip().splitlines()) == 1 and "annotated.mp4" in stderr
    assert "wrote" not in stdout
    assert out.read_bytes() == b"yesterday's video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["annotated.mp4", "long.avi"]


def test_a_device_output_is_written_through_never_replaced(video, capsys):
    assert main(["analyze", str(video), "--csv", "/dev/full", "--no-progress"]) == 2
    assert "/dev/full" in one_line_error(capsys)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)
    assert main(["analyze", str(video), "--json", "/dev/null", "--no-progress"]) == 0
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


@pytest.mark.slow
def test_rows_go_to_standard_output_with_a_dash_and_the_report_to_stderr(video, tmp_path):
    """`--csv -` once wrote a file named `-`; now the rows are the only thing on stdout."""
    run = subprocess.run([sys.executable, "-m", "app", "analyze", str(video), "--csv", "-",
                          "--no-progress"], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(run.stdout.splitlines()))
    assert [int(r["frame"]) for r in rows] == list(range(3, 13))
    assert "frames/s end to end" in run.stderr and "wrote standard output" in run.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flags", [["--out", "-"], ["--csv", "-", "--json", "/dev/stdout"]])
def test_standard_output_taken_twice_or_by_the_video_is_refused(video, flags, capsys):
    assert main(["analyze", str(video), *flags, "--no-progress"]) == 2
    error = one_line_error(capsys)
    assert error.startswith(f"error: {flags[-2]} {flags[-1]}: ")
    assert "seek" in error or "names this file too" in error


@pytest.mark.parametrize(
    "case", ["same file twice", "output is the input", "out is a folder", "read-only place"]
)
def test_outputs_that_cannot_be_written_are_refused_before_the_video(video, tmp_path, capsys,
                                                                     case):  # fmt: skip
    from tests.test_outputs import read_only_place

    kept = tmp_path / "faces.csv"
    kept.write_text("yesterday's rows")
    flags = {
        "same file twice": ["--csv", kept, "--json", kept],
        "output is the input": ["--csv", video],
        "out is a folder": ["--out", tmp_path, "--csv", kept],
        "read-only place": ["--csv", kept, "--timeline", read_only_place(tmp_path) / "t.png"],
    }[case]
    started = time.perf_counter()
    assert main(["analyze", str(video), *map(str, flags), "--no-progress"]) == 2
    assert time.perf_counter() - started < 5  # no engine was started
    assert re.match(r"error: --\w+ ", one_line_error(capsys))
    assert kept.read_text() == "yesterday's rows"
    assert not list(tmp_path.glob("*partial*")) and video.is_file()


def test_an_input_is_never_an_outputs_partial_name_or_in_an_input_folder(video, tmp_path,
                                                                          capsys):  # fmt: skip
    """Issue 31: `analyze rec.partial.mp4 --out rec.mp4` deleted its input (what the app
    leaves when a recording is interrupted); `analyze imgs --timeline imgs/1.jpg` overwrote a
    photo. Both are refused in one line before any frame."""
    left = tmp_path / "rec.partial.avi"
    left.write_bytes(video.read_bytes())
    assert main(["analyze", str(left), "--out", str(tmp_path / "rec.avi"), "--no-progress"]) == 2
    assert "is this output's partial name" in one_line_error(capsys)
    assert left.read_bytes() == video.read_bytes()
    photos = tmp_path / "imgs"
    photos.mkdir()
    cv2.imwrite(str(photos / "1.jpg"), demo_frame(0, label=False))
    photo = (photos / "1.jpg").read_bytes()
    assert main(["analyze", str(photos), "--timeline", str(photos / "1.jpg"), "--no-progress"]) == 2
    assert "inside the input folder" in one_line_error(capsys)
    assert (photos / "1.jpg").read_bytes() == photo
    assert sorted(p.name for p in tmp_path.iterdir()) == ["imgs", "rec.partial.avi"]


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=lambda s: s.name)  # fmt: skip
def test_ctrl_c_stops_cleanly_and_leaves_nothing(tmp_path, stop):
    """Issue 31: a SIGTERM (kill, timeout) or SIGHUP (a closed terminal) left the .partial
    files; each now stops `analyze` as Ctrl-C does."""
    long_video = write_demo_video(tmp_path / "long.avi", 600)
    out, rows = tmp_path / "a.mp4", tmp_path / "f.csv"
    run = run_analyze([long_video, "--out", out, "--csv", rows])
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob("*partial*")) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    run.send_signal(stop)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 2
    assert stderr.strip().splitlines() == [
        "error: interrupted; no output written (nothing partial left)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["long.avi"]


def test_a_folder_of_images_is_analysed_like_a_video(tmp_path, capsys):
    folder = tmp_path / "stills"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"{i:03d}.png"), demo_frame(i * 7, label=False))
    rows_csv = tmp_path / "f.csv"
    old = os.umask(0o022)
    try:
        assert main(["analyze", str(folder), "--csv", str(rows_csv), "--no-progress"]) == 0
    finally:
        os.umask(old)
    with open(rows_csv, newline="") as f:
        assert [r["frame"] for r in csv.DictReader(f)] == ["0", "1", "2"]
    assert stat.S_IMODE(os.stat(rows_csv).st_mode) == 0o644


def test_blendshapes_are_optional_columns(video, tmp_path):
    rows_json = tmp_path / "f.jsonl"
    assert main(["analyze", str(video), "--json", str(rows_json), "--blendshapes",
                 "--no-progress"]) == 0  # fmt: skip
    lines = [json.loads(line) for line in rows_json.read_text().splitlines()]
    assert len(lines) == 10
    shapes = {k: v for k, v in lines[-1].items() if k.startswith("bs_")}
    assert len(shapes) == 52 and all(0 <= v <= 1 for v in shapes.values())
    assert shapes["bs_mouthSmileLeft"] > 0.3 > shapes["bs_jawOpen"]  # she smiles, mouth closed


def test_absurd_thread_counts_are_refused_naming_the_flag(video, tmp_path, capsys):
    """Issue 31: `--threads 100000` hung (onnxruntime starts every thread asked for)."""
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", str(video), "--csv", str(tmp_path / "f.csv"), "--threads", "100000"])
    assert exit_.value.code == 2
    assert "argument --threads: expected 0 (the library's choice) to" in capsys.readouterr().err
    from fer_core.classify import Classifier
    from fer_core.zoo import default_package

    with pytest.raises(ValueError, match=r"classifier threads 100000: expected 0 .* to \d+"):
        Classifier(default_package(), threads=100000)
    assert not (tmp_path / "f.csv").exists()


def test_a_folders_photos_are_independent_pictures_of_any_size(tmp_path, capsys):
    """Issue 31: a face of one photo was held into the next (a 1×1 photo reported faces), and
    photos of mixed sizes ended with "is the disk full?" (the video writer dropped them)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), demo_frame(0, label=False))
    cv2.imwrite(str(folder / "1.png"), np.full((1, 1, 3), 128, np.uint8))
    cv2.imwrite(str(folder / "2.png"), cv2.resize(demo_frame(5, label=False), (320, 240)))
    rows_csv, out = tmp_path / "f.csv", tmp_path / "a.mp4"
    assert main(["analyze", str(folder), "--csv", str(rows_csv), "--out", str(out),
                 "--no-progress"]) == 0  # fmt: skip
    with open(rows_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["frame"], r["held"]) for r in rows] == [("0", "0"), ("2", "0")]
    assert rows[0]["face_id"] != rows[1]["face_id"]  # nothing carried from photo to photo
    capture = cv2.VideoCapture(str(out))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()


def test_a_video_without_frames_is_one_line_and_leaves_nothing(tmp_path, capsys):
    empty = write_demo_video(tmp_path / "empty.avi", 0)
    assert main(["analyze", str(empty), "--csv", str(tmp_path / "f.csv"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: {empty}: no frames in it; nothing written"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.avi"]


@pytest.mark.slow
def test_names_that_are_not_utf8_are_read_or_refused_in_one_line(video, tmp_path):
    """Issue 31: OpenCV given such a name crashed the process (segmentation fault)."""
    odd = os.fsdecode(b"caf\xe9")
    folder = tmp_path / odd
    folder.mkdir()
    (folder / f"{odd}.png").write_bytes(cv2.imencode(".png", demo_frame(0, label=False))[1])
    rows_csv = tmp_path / f"{odd}.csv"
    ok = subprocess.run([sys.executable, "-m", "app", "analyze", folder, "--csv", rows_csv,
                         "--no-progress"], cwd=ROOT, capture_output=True)  # fmt: skip
    assert ok.returncode == 0 and rows_csv.read_text().count("\n") == 2
    video_odd = tmp_path / f"{odd}.avi"
    video_odd.write_bytes(video.read_bytes())
    for args, name in (([video_odd, "--csv", tmp_path / "f.csv"], b"caf\\xe9.avi"),
                       ([video, "--out", tmp_path / f"{odd}.mp4"], b"caf\\xe9.mp4")):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "app", "analyze", *args, "--no-progress"],
                              cwd=ROOT, capture_output=True)  # fmt: skip
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(err) == 1, done.stderr
        assert name + b": the name is not valid UTF-8" in err[0]
    assert not list(tmp_path.glob("*partial*")) and not (tmp_path / "f.csv").exists()


@pytest.mark.slow
def test_a_profile_reads_the_largest_face_and_the_csv_says_so(video, tmp_path, capsys):
    from fer_core.profile import Profile
    from fer_core.recognizer import Recognizer

    with Recognizer() as recognizer:  # her smile, taught as her neutral face
        (face,) = recognizer.process(demo_frame(0, label=False)).faces
        smile = np.array(list(face.raw_probs.values()))
        profile = Profile("Eileen", recognizer.model_key).taught_with("neutral", [smile])
    path = profile.save(tmp_path / "eileen.profile.json")
    rows_csv = tmp_path / "f.csv"
    for extra in ([], ["--profile-face", "1"]):
        argv = ["analyze", str(video), "--csv", str(rows_csv), "--no-progress"]
        assert main([*argv, "--profile", str(path), *extra]) == 0
        with open(rows_csv, newline="") as f:
            rows = list(csv.DictReader(f))
        assert rows and all(r["profile"] == "Eileen" and r["label"] == "neutral" for r in rows)
    assert main(["analyze", str(video), "--csv", str(rows_csv), "--no-progress"]) == 0
    with open(rows_csv, newline="") as f:
        assert all(r["profile"] == "" and r["label"] == "happy" for r in csv.DictReader(f))


@pytest.mark.parametrize(
    ("content", "extra", "said"),
    [
        ("{ not json", [], r"bad\.profile\.json: line 1: not JSON"),
        (None, ["--profile-face", "0"], r"--profile-face 0: face ids start at 1"),
        (
            '{"format": "fer-profile/1", "name": "X", "model": {"package": "zennet-sa", '
            '"weights": "0", "labels": ["a", "b"]}, "examples": {}}',
            [],
            r"profile 'X' was taught on zennet-sa .*teach it again with this model",
        ),
    ],
)
def test_a_bad_profile_is_one_line_and_writes_nothing(video, tmp_path, capsys, content, extra,
                                                      said):  # fmt: skip
    path = tmp_path / "bad.profile.json"
    path.write_text(content or "{}")
    out = tmp_path / "f.csv"
    argv = ["analyze", str(video), "--csv", str(out), "--no-progress", "--profile", str(path)]
    assert main([*argv, *extra]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.search(said, line) and not out.exists()


def test_profile_face_needs_a_profile(video, tmp_path, capsys):
    argv = ["analyze", str(video), "--csv", str(tmp_path / "f.csv"), "--profile-face", "2"]
    assert main(argv) == 2
    assert "--profile-face: give the profile to use with --profile FILE" in capsys.readouterr().err

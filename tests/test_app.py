"""The desktop window, driven for real (offscreen Qt, pytest-qt) on a composed face video: it
shows annotated frames, the controls change what they should, recording writes a playable MP4
and its CSV, settings survive a restart, and a missing camera or a bad source is said plainly.
One test runs the whole app under Xvfb and keeps its screenshot in the test's folder."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from PySide6.QtWidgets import QDockWidget

from app.gui import closed_by_signals
from app.launch import main as launch_main
from app.settings import AppSettings, open_store
from app.window import MainWindow
from fer_core.demo import write_demo_video
from fer_core.results import columns
from fer_core.track import UNCERTAIN
from fer_core.zoo import default_package
from tests.conftest import ROOT

FRAMES = 150  # 6 s at 25 fps: long enough for every test below at the video's own pace


@pytest.fixture(scope="module")
def face_video(tmp_path_factory):
    return write_demo_video(tmp_path_factory.mktemp("video") / "faces.avi", FRAMES)


@pytest.fixture
def store(tmp_path):
    store = open_store(str(tmp_path / "settings.ini"))
    AppSettings(output_folder=str(tmp_path / "out")).save(store)
    return store


@pytest.fixture
def window(qtbot, store, face_video):
    window = MainWindow(store, str(face_video), cameras=[])
    qtbot.addWidget(window)
    window.show()
    yield window
    window.close()


def wait_frames(qtbot, window, n=5, timeout=30_000):
    start = window.frames_shown
    qtbot.waitUntil(lambda: window.frames_shown >= start + n, timeout=timeout)
    return window.current


def wait_for(qtbot, window, condition, timeout=15_000):
    """Until the newest shown frame satisfies `condition`."""
    qtbot.waitUntil(
        lambda: window.current is not None and condition(window.current), timeout=timeout
    )
    return window.current


def raw_frame(window, index):
    """Frame `index` of the video the window plays, as decoded without the app."""
    capture = cv2.VideoCapture(str(window.source_box.currentData()))
    capture.set(cv2.CAP_PROP_POS_FRAMES, index)
    frame = capture.read()[1]
    capture.release()
    return frame


@pytest.mark.slow
def test_window_shows_the_video_with_overlays_panel_timeline_and_timings(qtbot, window):
    shown = wait_frames(qtbot, window, 10)
    assert shown.source.endswith("faces.avi")
    assert len(shown.result.faces) == 1
    face = shown.result.faces[0]
    assert face.label in (*shown.labels, UNCERTAIN)
    # the frame as recognised, and as recorded: with the box drawn on it (its colour at the
    # box edge); the view draws it at its own resolution, filling its width or height
    x, y, w, h = face.box
    frame = raw_frame(window, shown.result.index)
    assert np.abs(shown.image.astype(int) - frame).max() < 100
    assert np.abs(shown.picture.astype(int) - frame).max() > 100
    assert not np.array_equal(shown.picture[y + h, x : x + w], frame[y + h, x : x + w])
    image, view = window.view.image, window.view
    assert image is not None and (image.width() == view.width() or image.height() == view.height())
    # side panel: the face's smoothed probabilities in %, and its timeline
    values = window.panel.values()
    assert list(values) == list(shown.labels)
    assert 95 <= sum(values.values()) <= 105
    assert f"#{face.track_id}" in window.panel.title.text()
    wait_frames(qtbot, window, 5)
    assert window.chart.points() >= 5
    # status bar: rates and per-stage milliseconds
    qtbot.waitUntil(lambda: "fps" in window.rate_label.text(), timeout=5_000)
    assert "engine" in window.rate_label.text()
    for stage in ("detect", "align", "classify", "track", "draw"):
        assert stage in window.stage_label.text()
    assert "faces.avi" in window.source_label.text()


@pytest.mark.slow
def test_controls_change_what_the_engine_does(qtbot, window):
    wait_frames(qtbot, window, 3)
    # mirror: the frame recognised is the frame flipped left-right
    window.mirror_box.setChecked(True)
    assert window.act_mirror.isChecked() and window.pipeline.view.mirror
    wait_frames(qtbot, window, 2)
    shown = wait_frames(qtbot, window, 1)
    frame = raw_frame(window, shown.result.index).astype(int)
    picture = shown.image.astype(int)
    assert np.abs(picture - frame[:, ::-1]).mean() < np.abs(picture - frame).mean() / 3
    window.mirror_box.setChecked(False)

    # threshold 1: no smoothed probability reaches it, every label is "uncertain"
    window.threshold_box.setValue(1.0)
    assert window.pipeline.options.tracker.threshold == 1.0
    wait_for(qtbot, window, lambda s: s.result.faces and s.result.faces[0].label == UNCERTAIN)

    # smoothing off: the shown probabilities are the frame's own
    window.smoothing_box.setCurrentIndex(window.smoothing_box.findData("none"))
    face = wait_for(
        qtbot,
        window,
        lambda s: s.result.faces and s.result.faces[0].probs == s.result.faces[0].raw_probs,
    ).result.faces[0]
    assert face.probs == face.raw_probs

    # landmarks: the landmarker runs and its points come back with the faces
    window.landmarks_box.setChecked(True)
    face = wait_for(
        qtbot, window, lambda s: s.result.faces and s.result.faces[0].landmarks is not None
    ).result.faces[0]
    assert face.landmarks.shape == (478, 2)
    assert "landmarks" in window.stage_medians()

    # detector and model lists
    window.detector_box.setCurrentIndex(window.detector_box.findData("full"))
    assert window.pipeline.options.faces.detector == "full"
    assert window.model_box.findData(default_package().name) >= 0
    assert window.backend_box.findData("onnxruntime") >= 0

    # pause holds the frame, resume goes on
    window.act_pause.setChecked(True)
    # the frame in flight when the request came may still be shown; then none for 0.3 s
    last = [window.frames_shown, time.monotonic()]

    def settled() -> bool:
        if window.frames_shown != last[0]:
            last[:] = [window.frames_shown, time.monotonic()]
        return time.monotonic() - last[1] > 0.3

    qtbot.waitUntil(settled, timeout=5_000)
    held = window.frames_shown
    qtbot.wait(500)
    assert window.frames_shown == held
    window.act_pause.setChecked(False)
    wait_frames(qtbot, window, 3)


def test_recording_writes_a_playable_mp4_and_a_csv_of_every_face(qtbot, window, tmp_path):
    wait_frames(qtbot, window, 2)
    window.act_record.setChecked(True)
    qtbot.waitUntil(lambda: window.recording is not None, timeout=5_000)
    video_path, csv_path = window.recording
    wait_frames(qtbot, window, 15)
    window.act_record.setChecked(False)
    qtbot.waitUntil(lambda: window.recording is None, timeout=5_000)
    qtbot.waitUntil(video_path.is_file, timeout=5_000)
    assert video_path.parent == tmp_path / "out" and csv_path.is_file()
    assert not list(video_path.parent.glob("*partial*"))

    capture = cv2.VideoCapture(str(video_path))
    decoded = 0
    while (ok_image := capture.read())[0]:
        assert ok_image[1].shape == (480, 640, 3)
        decoded += 1
    capture.release()
    assert decoded >= 15
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == columns(window.current.labels)
    assert len(rows) == decoded  # one face in every recorded frame
    assert all(abs(sum(float(r[f"p_{k}"]) for k in window.current.labels) - 1) < 1e-3 for r in rows)


@pytest.mark.slow
def test_calibrating_the_selected_face_corrects_its_reading(qtbot, window):
    """The demo face smiles all along: taken as her neutral face, her smile reads neutral."""
    wait_for(qtbot, window, lambda s: s.result.faces and s.result.faces[0].label == "happy")
    window.act_calibrate.trigger()
    wait_for(qtbot, window, lambda s: s.result.faces[0].teaching is not None)
    assert "learning neutral" in window.panel.title.text()
    shown = wait_for(qtbot, window, lambda s: s.result.faces[0].label == "neutral", 30_000)
    assert shown.result.faces[0].raw_probs["happy"] > 0.5
    assert f"profile {shown.result.faces[0].profile}" in window.panel.title.text()
    window.act_uncalibrate.trigger()
    wait_for(qtbot, window, lambda s: s.result.faces[0].label == "happy", 30_000)


def test_a_recording_with_blendshapes_has_their_columns(qtbot, window):
    window.blendshapes_box.setChecked(True)
    assert window.settings.blendshapes and window.pipeline.options.faces.blendshapes
    wait_for(qtbot, window, lambda s: bool(s.result.faces and s.result.faces[0].blendshapes))
    window.act_record.setChecked(True)
    qtbot.waitUntil(lambda: window.recording is not None, timeout=5_000)
    _, csv_path = window.recording
    wait_frames(qtbot, window, 5)
    window.act_record.setChecked(False)
    qtbot.waitUntil(csv_path.is_file, timeout=5_000)
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert reader.fieldnames == columns(window.current.labels, blendshapes=True)
    assert rows and all(0 <= float(r["bs_mouthSmileLeft"]) <= 1 for r in rows)


@pytest.mark.slow
def test_a_recording_ends_with_its_source(qtbot, store, tmp_path):
    short = write_demo_video(tmp_path / "short.avi", 30)
    window = MainWindow(store, str(short), cameras=[])
    qtbot.addWidget(window)
    wait_frames(qtbot, window, 1)
    window.act_record.setChecked(True)
    qtbot.waitUntil(lambda: window.recording is not None, timeout=5_000)
    video_path, csv_path = window.recording
    qtbot.waitUntil(lambda: not window.act_record.isChecked(), timeout=15_000)
    assert window.recording is None
    assert video_path.is_file() and csv_path.is_file()  # complete, under their final names
    window.close()


def test_snapshot_saves_the_annotated_frame_as_png(qtbot, window, tmp_path):
    shown = wait_frames(qtbot, window, 2)
    path = window.snapshot()
    assert path is not None and path.parent == tmp_path / "out" and path.suffix == ".png"
    saved = cv2.imread(str(path))
    assert saved.shape == shown.picture.shape


def test_settings_persist_between_launches(qtbot, store, face_video):
    first = MainWindow(store, str(face_video), cameras=[])
    qtbot.addWidget(first)
    first.threshold_box.setValue(0.55)
    first.mirror_box.setChecked(True)
    first.smoothing_box.setCurrentIndex(first.smoothing_box.findData("window"))
    first.close()
    second = MainWindow(store, str(face_video), cameras=[])
    qtbot.addWidget(second)
    assert second.threshold_box.value() == pytest.approx(0.55)
    assert second.act_mirror.isChecked() and second.mirror_box.isChecked()
    assert second.smoothing_box.currentData() == "window"
    assert second.pipeline.options.tracker.smoothing == "window"
    second.close()


def test_a_remembered_model_that_is_gone_falls_back_to_the_default(qtbot, tmp_path, face_video):
    store = open_store(str(tmp_path / "settings.ini"))
    AppSettings(model="deleted-model", output_folder=str(tmp_path)).save(store)
    window = MainWindow(store, str(face_video), cameras=[])
    qtbot.addWidget(window)
    shown = wait_frames(qtbot, window, 3)
    assert shown.result.faces
    qtbot.waitUntil(lambda: "deleted-model" in window.banner_text.text(), timeout=5_000)
    assert "not installed" in window.banner_text.text()
    assert window.model_box.currentData() == default_package().name
    window.close()


def test_without_a_camera_it_says_so_and_shows_the_labelled_demo(qtbot, store):
    window = MainWindow(store, None, cameras=[])
    qtbot.addWidget(window)
    window.show()
    assert window.banner.isVisible()
    assert "No camera" in window.banner_text.text()
    shown = wait_frames(qtbot, window, 3)
    assert "DEMO SOURCE" in shown.source and "DEMO SOURCE" in window.source_label.text()
    assert shown.result.faces
    window.close()


def test_a_bad_source_is_reported_and_the_old_one_keeps_running(qtbot, window, tmp_path):
    wait_frames(qtbot, window, 2)
    window.open(str(tmp_path / "missing.mp4"))
    qtbot.waitUntil(window.banner.isVisible, timeout=5_000)
    assert "missing.mp4" in window.banner_text.text()
    assert "no such file" in window.banner_text.text()
    assert window.source_box.currentData().endswith("faces.avi")  # the list shows what plays
    wait_frames(qtbot, window, 3)  # still playing the face video


def test_keyboard_shortcuts(qtbot, window):
    from PySide6.QtCore import Qt

    wait_frames(qtbot, window, 2)
    window.activateWindow()
    window.view.setFocus()
    for key, action in ((Qt.Key.Key_L, window.act_landmarks), (Qt.Key.Key_M, window.act_mirror),
                        (Qt.Key.Key_Space, window.act_pause)):  # fmt: skip
        qtbot.keyClick(window.view, key)
        assert action.isChecked(), action.text()
    assert window.pipeline.paused and window.pipeline.view.mirror
    assert window.landmarks_box.isChecked()  # the checkbox follows its action


@pytest.mark.slow
def test_a_truncated_video_ends_with_a_message_not_a_crash(qtbot, window, tmp_path, face_video):
    cut = tmp_path / "cut.avi"
    data = face_video.read_bytes()
    cut.write_bytes(data[: len(data) // 3])
    wait_frames(qtbot, window, 2)
    window.open(str(cut))
    qtbot.waitUntil(lambda: "ended" in window.statusBar().currentMessage()
                    or window.banner.isVisible(), timeout=30_000)  # fmt: skip
    assert window.current is not None  # the last frame stays on screen


def test_command_line_rejects_a_missing_source(capsys, tmp_path):
    missing = tmp_path / "nope.mp4"
    assert launch_main(["--source", str(missing)]) == 2
    assert capsys.readouterr().err == (
        f"error: {missing}: no such file or folder (expected a video, a folder of images, a "
        "camera index such as 0, or 'demo')\n"
    )


def _run_app(args, platform, prefix=()):
    """`python -m app ARGS` on Qt's `platform` plugin; None: as a user starts it, Qt picks."""
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    if platform:
        env["QT_QPA_PLATFORM"] = platform
    command = [*prefix, sys.executable, "-m", "app", *args]
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.slow
def test_the_app_runs_a_video_and_reports_its_frame_rate(face_video, tmp_path):
    args = ["--source", str(face_video), "--frames", "20", "--report"]
    done = _run_app([*args, "--settings", str(tmp_path / "s.ini")], "offscreen")
    assert done.returncode == 0, done.stderr
    assert int(re.search(r"(\d+) frames shown", done.stdout)[1]) >= 20
    assert "classify" in done.stdout and "engine" in done.stdout


STOPS = pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                                ids=lambda s: s.name)  # fmt: skip


@STOPS
def test_a_stop_signal_closes_the_window_and_keeps_its_recording(qtbot, window, capsys, stop):
    """Issue 31: a SIGTERM lost the recording, a Ctrl-C printed a traceback and the window
    ran on; each stop now closes the window as its close button does, with one line."""
    wait_frames(qtbot, window, 2)
    window.act_record.setChecked(True)
    qtbot.waitUntil(lambda: window.recording is not None, timeout=5_000)
    video_path, csv_path = window.recording
    wait_frames(qtbot, window, 10)
    before = signal.getsignal(stop)
    with closed_by_signals(window) as closing:
        os.kill(os.getpid(), stop)
        qtbot.waitUntil(lambda: not window.isVisible(), timeout=15_000)
    assert signal.getsignal(stop) is before  # the app's handlers end with its event loop
    assert closing.signal == stop and not window.pipeline.isRunning()
    assert capsys.readouterr().err.strip().splitlines() == [
        f"stopped by {stop.name}: the window closed; the recording is kept: {video_path} "
        f"and {csv_path.name}"
    ]
    assert not list(video_path.parent.glob("*partial*"))
    capture = cv2.VideoCapture(str(video_path))
    decoded = 0
    while capture.read()[0]:
        decoded += 1
    capture.release()
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert decoded >= 10 and len(rows) == decoded  # whole: every frame written, in both


def caught_signals(pid: int) -> int:
    """The bit mask of the signals process `pid` has handlers for (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1], 16) for line in status if line.startswith("SigCgt:"))


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc (Linux)")
@STOPS
def test_the_running_app_closes_on_a_stop_signal_in_one_line(face_video, tmp_path, stop):
    """The real app in its event loop: Python's handler runs there too (the timer that gives
    it control), the window closes (its settings are saved), one line, status 2."""
    settings = tmp_path / "s.ini"
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.Popen([sys.executable, "-m", "app", "--source", str(face_video),
                            "--settings", str(settings)], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    ours = 1 << (signal.SIGTERM - 1) | 1 << (signal.SIGHUP - 1)  # set as its event loop starts
    deadline = time.monotonic() + 120
    while caught_signals(run.pid) & ours != ours and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # well inside the event loop
    run.send_signal(stop)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 2, stderr
    assert "Traceback" not in stderr
    said = [line for line in stderr.splitlines() if "propagateSizeHints" not in line]
    assert said == [f"stopped by {stop.name}: the window closed"]
    assert "geometry" in settings.read_text()  # closed as the user closes it


@pytest.mark.skipif(shutil.which("xvfb-run") is None, reason="Xvfb (xvfb-run) is not installed")
def test_screenshot_of_the_window_under_xvfb(face_video, tmp_path):
    """The real X11 platform plugin on a virtual screen, started as a user starts it (no
    QT_QPA_PLATFORM), with nothing from MediaPipe on stderr; the PNG stays in tmp_path."""
    shot = tmp_path / "window.png"
    args = ["--source", str(face_video), "--frames", "15", "--screenshot", str(shot)]
    xvfb = ("xvfb-run", "-a", "-s", "-screen 0 1280x800x24")
    done = _run_app([*args, "--settings", str(tmp_path / "s.ini")], None, xvfb)
    assert done.returncode == 0, done.stderr
    assert not re.search(r"INFO:|WARNING:|W0000|Sparsity", done.stderr), done.stderr
    picture = cv2.imread(str(shot))
    assert picture is not None, f"{shot} was not written"
    assert picture.shape[0] >= 600 and picture.shape[1] >= 1000  # the whole window
    assert len(np.unique(picture.reshape(-1, 3), axis=0)) > 1000  # a photo in it, not a blank


def test_qt_bindings_keep_reference_counts(qapp):
    """PySide6 6.12.0 dropped a reference to None on every call into Qt (and to True/False on
    every signal): Python 3.11 aborts with 'deallocating None' after a few hundred frames. The
    installed bindings must not do that."""
    from PySide6.QtCore import QObject, Signal
    from PySide6.QtWidgets import QProgressBar

    class Emitter(QObject):
        fired = Signal()

    bar, emitter = QProgressBar(), Emitter()
    nones, trues = sys.getrefcount(None), sys.getrefcount(True)
    for i in range(500):
        bar.setValue(i % 100)
        emitter.fired.emit()
    assert abs(sys.getrefcount(None) - nones) < 50
    assert abs(sys.getrefcount(True) - trues) < 50


def test_a_package_folder_from_elsewhere_joins_the_list_and_runs(qtbot, store, face_video,
                                                                  tmp_path):  # fmt: skip
    """`--model runs/my-export`: a package just exported, outside assets/models."""
    folder = shutil.copytree(default_package().path, tmp_path / "exports" / "mine")
    card = json.loads((folder / "card.json").read_text())
    (folder / "card.json").write_text(json.dumps({**card, "name": "my-export"}))
    window = MainWindow(store, str(face_video), cameras=[], model=str(folder))
    qtbot.addWidget(window)
    try:
        assert window.model_box.currentData() == "my-export"
        assert window.model_box.findData(default_package().name) >= 0  # the installed stay
        assert window.recognizer_options().model == folder
        assert wait_frames(qtbot, window, 3).result.faces
    finally:
        window.close()


def test_a_model_that_is_no_package_ends_the_launch_with_one_line(tmp_path, capsys):
    assert launch_main(["--model", str(tmp_path / "nothing"), "--frames", "5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --model {tmp_path / 'nothing'}: ")
    assert "not a model package" in err[0]


def test_a_bad_package_or_a_missing_default_is_skipped_and_said(qtbot, store, face_video,
                                                                 tmp_path):  # fmt: skip
    models = tmp_path / "models"
    shutil.copytree(default_package().path, models / "good")
    (models / "broken").mkdir()
    (models / "broken" / "card.json").write_text("{not json")
    (models / "DEFAULT").write_text("gone\n")
    window = MainWindow(store, str(face_video), cameras=[], models_dir=models)
    qtbot.addWidget(window)
    window.show()
    try:
        shown = wait_frames(qtbot, window, 3)
        assert window.model_box.count() == 1
        assert window.model_box.currentData() == default_package().card.name
        said = window.banner_text.text()
        assert "broken/card.json" in said and "'gone' is not installed" in said
        assert shown.result.faces
    finally:
        window.close()


def test_the_layout_is_stored_as_qt_byte_arrays_and_comes_back_unchanged(qtbot, tmp_path,
                                                                        face_video):  # fmt: skip
    path = tmp_path / "settings.ini"
    layouts = []
    for _ in range(2):
        window = MainWindow(open_store(str(path)), str(face_video), cameras=[])
        qtbot.addWidget(window)
        window.show()
        wait_frames(qtbot, window, 2)
        layouts.append((window.size(), window.splitter.sizes(),
                        window.findChild(QDockWidget).geometry()))  # fmt: skip
        window.close()
    assert layouts[0] == layouts[1]
    text = path.read_text()
    assert "geometry=@ByteArray(" in text and "splitter=@ByteArray(" in text
    assert "PyObject" not in text  # not a pickled Python object


def test_the_panel_and_timeline_read_clearly(qtbot, window):
    from fer_core.overlay import COLOURS

    shown = wait_frames(qtbot, window, 3)
    happy = window.panel.percents["happy"]
    assert (
        happy.text().endswith(" %")
        and happy.geometry().left() >= window.panel.bars["happy"].geometry().right()
    )  # beside the bar, not over it
    assert not window.panel.bars["happy"].isTextVisible()
    plot, legend = window.chart.plot.geometry(), window.chart.legend.geometry()
    assert legend.top() >= plot.bottom() and "surprise" in window.chart.legend.text()
    colours = [np.array(COLOURS[label.lower()]) for label in shown.labels]
    closest = min(np.abs(a - b).sum() for i, a in enumerate(colours) for b in colours[i + 1 :])
    assert closest >= 120  # happy and surprise were 40 apart


def test_a_one_image_screenshot_waits_for_the_laid_out_window(qtbot, store, tmp_path):
    """Offscreen (an 800 × 800 make-believe screen) the window opened at 833 px with its status
    bar clipped, and --screenshot of a single image grabbed it before the probability bars
    the first frame adds were laid out."""
    from app.widgets import rgb
    from app.window import VIRTUAL_SIZE, run_for

    window = MainWindow(store, str(ROOT / "assets" / "demo" / "astronaut.jpg"), cameras=[])
    qtbot.addWidget(window)
    window.show()
    assert (window.width(), window.height()) == VIRTUAL_SIZE
    shot, done = tmp_path / "window.png", []
    run_for(window, 1, str(shot), lambda: done.append(True))
    qtbot.waitUntil(lambda: bool(done), timeout=30_000)
    for label in (window.source_label, window.rate_label, window.stage_label):
        assert label.width() >= label.sizeHint().width(), label.text()  # not clipped
    picture = cv2.imread(str(shot))
    left = window.splitter.widget(1).mapTo(window, window.rect().topLeft()).x()
    side = picture[:, left:]  # the panel and the timeline
    happy = rgb("happy")
    bar = np.all(np.abs(side.astype(int) - (happy.blue(), happy.green(), happy.red())) < 8, 2)
    assert bar.sum() > 1000  # the happy bar's chunk, not only the legend's swatch
    window.close()


def test_the_selection_outline_goes_around_the_label_tag():
    from app.widgets import selection_region
    from fer_core.overlay import OverlayStyle, tag_rect
    from fer_core.results import FaceResult

    face = FaceResult(3, (600, 100, 60, 60), {}, {}, "surprise", 0.9)
    style = OverlayStyle.for_view()
    x0, y0, x1, y1 = selection_region(face, 640, style)
    tx0, ty0, tx1, _ = tag_rect(face, 640, style)
    assert x0 <= tx0 and y0 <= ty0 and x1 >= tx1 and y1 >= 160
    assert tx1 <= 640  # the tag stays inside the frame


def test_a_settings_file_that_is_not_an_ini_is_refused_and_kept(tmp_path, capsys):
    """Issue 31: Qt rewrites a `--settings` file from the keys it understood, so a text file
    given by mistake lost its lines; the launch now ends in one line and keeps it."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my shopping list\nmilk = 2\n")
    assert launch_main(["--settings", str(notes), "--source", "demo", "--frames", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --settings {notes}: line 1 ")
    assert notes.read_text() == "my shopping list\nmilk = 2\n"
    from app.launch import check_settings

    written = tmp_path / "app.ini"  # what the app writes, odd bytes and all, is accepted
    AppSettings(model="a=b [c]\n;d", geometry=bytes(range(256)) * 4).save(open_store(str(written)))
    assert check_settings(str(written)) is None
    assert check_settings(str(tmp_path / "new.ini")) is None


def test_a_settings_device_or_fifo_is_written_through_never_replaced(tmp_path, null_device):
    """Issue 31: Qt replaced a `--settings` device node (/dev/null) with a regular file."""
    import stat
    import threading

    node = null_device  # None where only root may make one; the FIFO below takes the same path
    if node is not None:
        AppSettings(threshold=0.55).save(open_store(str(node)))
        assert stat.S_ISCHR(os.lstat(node).st_mode)
        assert AppSettings.load(open_store(str(node))).threshold == 0.4
    fifo = tmp_path / "settings"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    AppSettings(threshold=0.55).save(open_store(str(fifo)))
    reader.join(10)
    assert "threshold=0.55" in got[0] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_bad_value_in_the_settings_falls_back_to_its_default_with_one_warning(tmp_path, capsys):
    """Issue 31: `threshold=nan` or `smoothing=bogus` in the settings file was a traceback at
    every launch; now that key takes its default, said once, and the others are kept."""
    path = tmp_path / "s.ini"
    path.write_text("[General]\nthreshold=nan\nsmoothing=bogus\ndetector=short\nmirror=true\n")
    settings = AppSettings.load(open_store(str(path)))
    assert (settings.threshold, settings.smoothing) == (0.4, "ema")
    assert (settings.detector, settings.mirror) == ("short", True)
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(str(path) in line for line in err)
    assert "smoothing='bogus'" in err[0] and "threshold=nan" in err[1]


def test_a_lone_point_of_the_timeline_is_drawn_as_a_dot(qtbot):
    """pyqtgraph draws nothing for a one-point line: a photo's timeline was empty."""
    from app.widgets import EmotionTimeline

    chart = EmotionTimeline()
    qtbot.addWidget(chart)
    chart.set_labels(["happy", "sad"])
    chart.show_series(np.array([0.0]), np.array([[0.9, 0.1]]))
    assert all(c.opts["symbol"] == "o" for c in chart.curves.values()) and chart.points() == 1
    chart.show_series(np.array([0.0, 0.5]), np.array([[0.9, 0.1], [0.8, 0.2]]))
    assert all(c.opts["symbol"] is None for c in chart.curves.values())


@pytest.mark.slow
def test_teach_me_asks_each_expression_in_turn_and_keeps_the_profile(qtbot, store, face_video,
                                                                      tmp_path):  # fmt: skip
    """The guided flow on the demo face: one expression taught, one skipped then redone,
    the profile saved under its name, the face read with it, and a restarted window that
    lists it beside an unreadable file (never removed) it names as such."""
    window = MainWindow(store, str(face_video), cameras=[])
    qtbot.addWidget(window)
    window.show()
    teacher = window.teacher
    teacher.timer.setInterval(50)  # no time needed to change expression on a video
    wait_for(qtbot, window, lambda s: bool(s.result.faces))
    teacher.name.setText("Eileen")
    teacher.start(("happy", "neutral", "sad"))
    assert "Show happy" in teacher.prompt.text() and not teacher.start_button.isEnabled()
    qtbot.waitUntil(lambda: teacher.plan.index == 1, timeout=30_000)  # happy taught
    teacher.skip()
    assert "Show sad" in teacher.prompt.text() and teacher.plan.skipped == ["neutral"]
    teacher.redo()
    assert "Show neutral" in teacher.prompt.text() and teacher.plan.skipped == []
    qtbot.waitUntil(lambda: teacher.plan is None, timeout=60_000)
    assert teacher.prompt.text() == "Done: Eileen knows happy, neutral, sad."
    shown = wait_for(qtbot, window, lambda s: s.result.faces[0].profile == "Eileen")
    assert "profile Eileen" in window.panel.title.text()
    assert "read with profile 'Eileen'" in teacher.reading.text()
    window.grab().save(str(tmp_path / "taught.png"))  # looked at: the panel after teaching
    stored = teacher.store.find("Eileen")
    assert stored.profile.taught == ("happy", "sad", "neutral")  # the model's order
    assert shown.result.faces[0].raw_probs["happy"] > 0.5
    window.close()

    broken = stored.path.with_name("broken.profile.json")
    broken.write_text("{ not json")
    again = MainWindow(store, str(face_video), cameras=[])
    qtbot.addWidget(again)
    again.show()
    qtbot.waitUntil(lambda: again.teacher.choice.count() == 3, timeout=30_000)
    items = [again.teacher.choice.itemText(i) for i in range(3)]
    assert items == ["(none: the model alone)", "broken.profile.json (unreadable)", "Eileen"]
    box = again.teacher.choice.model()
    assert not box.item(1).isEnabled() and box.item(2).isEnabled()
    again.teacher.rename("Eileen", "Eileen C")
    assert again.teacher.store.find("Eileen C") and not again.teacher.store.find("Eileen")
    wait_for(qtbot, again, lambda s: bool(s.result.faces))
    again.teacher.use("Eileen C")
    wait_for(qtbot, again, lambda s: s.result.faces[0].profile == "Eileen C")
    again.teacher.delete("Eileen C")
    assert broken.exists() and [s.name for s in again.teacher.store.list()] == [broken.name]
    again.close()

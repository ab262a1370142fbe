"""The main window: the live view, the selected face's probabilities and 60 s timeline, the
controls, and a status bar with the frame rates and each stage's milliseconds.

All the work happens in `Pipeline` (its own thread, with capture in another); this class only
turns controls into pipeline requests and paints what comes back."""

from __future__ import annotations

import statistics
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, QSettings, Qt, QTimer, Slot
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDockWidget,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSplitter,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.pipeline import Pipeline, Rate, Shown, ViewOptions
from app.profiles import ProfileStore
from app.settings import AppSettings, profiles_folder
from app.teach import TeachPanel
from app.widgets import EmotionTimeline, ProbabilityPanel, VideoView
from fer_core.capture import IMAGE_SUFFIXES, Source, open_source
from fer_core.classify import backend_devices
from fer_core.demo import DemoSource
from fer_core.faces import DETECTORS, FaceOptions
from fer_core.profile import Profile, model_key
from fer_core.recognizer import RecognizerOptions
from fer_core.recording import write_png
from fer_core.results import FaceResult
from fer_core.timeline import Timeline
from fer_core.track import SMOOTHERS, TrackerOptions
from fer_core.zoo import DEFAULT_FILE, MODELS_DIR, load_package, usable_packages

DEMO = "demo"
VIDEO_FILTER = "Videos (*.mp4 *.avi *.mkv *.mov *.webm *.m4v);;All files (*)"
STAGES = ("detect", "landmarks", "align", "classify", "track", "draw")
VIRTUAL_PLATFORMS = ("offscreen", "minimal")  # Qt platforms with a make-believe screen
VIRTUAL_SIZE = (1280, 800)  # the window's first size there: every control and status label fits
STATUS_EVERY_S = 0.25  # the status bar text changes at most this often (readable, cheap)


def default_name(models_dir: Path) -> str:
    """The package `DEFAULT` names ("" when there is no such file): checked by the caller."""
    marker = models_dir / DEFAULT_FILE
    return marker.read_text().strip() if marker.is_file() else ""


def source_factory(spec: str) -> Callable[[], Source]:
    """What the pipeline thread calls to open `spec`: "demo", or what `open_source` takes
    ("camera:N", a video, a folder of images)."""
    return DemoSource if spec == DEMO else lambda: open_source(spec)


class MainWindow(QMainWindow):
    def __init__(
        self,
        store: QSettings,
        source: str | None = None,
        cameras: list[int] | None = None,
        model: str | None = None,
        models_dir: Path = MODELS_DIR,
    ):
        super().__init__()
        self.models_dir = models_dir
        self.setWindowTitle("FER desktop")
        self.store = store
        self.settings = AppSettings.load(store)
        self.cameras = cameras or []
        self.timeline: Timeline | None = None
        self.selected_id: int | None = None
        self.current: Shown | None = None
        self.view_rate = Rate()
        self.stage_ms: dict[str, deque[float]] = {}
        self.last_status = 0.0
        self.recording: tuple[Path, Path] | None = None
        self.recording_started = 0.0
        self.frames_shown = 0
        self.opening: deque[str] = deque()  # requested sources, answered in order
        self.source_spec: str | None = None  # the source playing
        self.first_shown = self.last_shown = 0.0  # monotonic times of the first / newest frame
        self.on_frame: Callable[[int], None] | None = None  # tests and --frames hook here

        packages, self.skipped_packages = usable_packages(models_dir)
        # `model`: a name, or a package folder anywhere (one just exported): it joins the list
        if model:
            chosen = load_package(model, models_dir)
            packages = [p for p in packages if p.name != chosen.name] + [chosen]
            self.settings.model = chosen.name
        self.packages = {package.name: package for package in packages}
        # made first: building the controls already sends it their initial state
        self.pipeline = Pipeline(
            self.recognizer_options(),
            ViewOptions(landmarks=self.settings.landmarks, mirror=self.settings.mirror),
        )
        self.view = VideoView()
        self.panel = ProbabilityPanel()
        self.teacher = TeachPanel(self.pipeline, ProfileStore(profiles_folder(store)))
        self.chart = EmotionTimeline(60.0)
        self.banner, self.banner_text = self._banner()
        self._build_central()
        self._build_actions()
        self._build_controls()
        self._build_status()
        self._options_changed()  # settings follow what the controls could select
        # a first size that fits the screen: Qt moves and shrinks a restored window that does
        # not, and the layout would shift from one launch to the next. A virtual screen
        # (offscreen: 800 × 800, narrower than the controls) has no size to fit and would
        # shrink any restored one: there the window is always one size, the one screenshots show
        if QGuiApplication.platformName() in VIRTUAL_PLATFORMS:
            self.resize(*VIRTUAL_SIZE)
        else:
            screen = self.screen().availableGeometry()
            self.resize(min(1200, screen.width()), min(720, screen.height()))
            self.restoreGeometry(QByteArray(self.settings.geometry))
        self.restoreState(QByteArray(self.settings.window_state))
        self.splitter.restoreState(QByteArray(self.settings.splitter))

        self.pipeline.shown.connect(self._on_shown)
        self.pipeline.event.connect(self._on_event)
        self.pipeline.source_opened.connect(self._on_source_opened)
        self.pipeline.source_failed.connect(self._on_source_failed)
        self.pipeline.source_ended.connect(self._on_source_ended)
        self.pipeline.model_changed.connect(self._on_model_changed)
        self.pipeline.recording_changed.connect(self._on_recording_changed)
        self.pipeline.taught.connect(self._on_taught)
        self.pipeline.start()

        if source is not None:
            self.open(source)
        elif self.cameras:
            self.open(f"camera:{self.cameras[0]}")
        else:
            self.open(DEMO)
            self.say(
                "No camera found on this machine: showing the demo source (a shipped photo). "
                "Open a video or a folder of images to analyse your own faces."
            )

    # ---- layout ------------------------------------------------------------------------------
    def _banner(self) -> tuple[QFrame, QLabel]:
        """A bar above the view for what people must not miss (no camera, a failed source)."""
        frame = QFrame()
        frame.setStyleSheet("QFrame { background: #5a4a14; } QLabel { color: white; }")
        text = QLabel()
        text.setWordWrap(True)
        layout = QVBoxLayout(frame)
        layout.addWidget(text)  # the whole width: beside the buttons it wrapped a word a line
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for caption, slot in (("Open video…", self.open_video), ("Open folder…", self.open_folder),
                              ("Dismiss", lambda: frame.hide())):  # fmt: skip
            button = QPushButton(caption)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        frame.hide()
        return frame, text

    def _build_central(self) -> None:
        left = QWidget()
        box = QVBoxLayout(left)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.banner)
        box.addWidget(self.view, 1)
        side = QWidget()
        side_box = QVBoxLayout(side)
        side_box.addWidget(self.panel)
        side_box.addWidget(self.teacher)
        side_box.addWidget(QLabel("Emotion timeline, last 60 s (selected face)"))
        side_box.addWidget(self.chart, 1)
        splitter = QSplitter()
        splitter.setObjectName("view-and-panel")
        splitter.addWidget(left)
        splitter.addWidget(side)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 1)
        splitter.setSizes([840, 360])  # a fixed first layout, not one that depends on content
        self.splitter = splitter
        self.setCentralWidget(splitter)
        self.view.face_clicked.connect(self._select_at)

    def _action(self, text: str, shortcut: str, slot, checkable: bool = False) -> QAction:
        action = QAction(text, self)
        action.setShortcut(QKeySequence(shortcut))
        action.setCheckable(checkable)
        (action.toggled if checkable else action.triggered).connect(slot)
        return action

    def _build_actions(self) -> None:
        s = self.settings
        self.act_open_video = self._action("Open &video…", "Ctrl+O", self.open_video)
        self.act_open_folder = self._action("Open image &folder…", "Ctrl+Shift+O",
                                            self.open_folder)  # fmt: skip
        self.act_pause = self._action("&Pause", "Space", self.set_paused, checkable=True)
        self.act_snapshot = self._action("&Snapshot", "Ctrl+S", self.snapshot)
        self.act_record = self._action("&Record", "Ctrl+R", self.set_recording, checkable=True)
        self.act_landmarks = self._action("Show &landmarks", "L", self._landmarks, True)
        self.act_mirror = self._action("&Mirror view", "M", self._mirror, True)
        self.act_folder = self._action("Output &folder…", "", self.choose_folder)
        self.act_calibrate = self._action("Calibrate &neutral face (selected)", "N",
                                          self.calibrate)  # fmt: skip
        self.act_calibrate.setToolTip("the selected face holds a neutral expression for 1-2 s; "
                                      "its probabilities are corrected from then on")  # fmt: skip
        self.act_uncalibrate = self._action("&Clear profiles and calibrations", "Shift+N",
                                            self.pipeline.clear_profiles)  # fmt: skip
        self.act_teach = self._action("&Teach me (selected face)…", "T", self.teacher.start)
        self.act_blendshapes = self._action("&Blendshapes in recordings", "", self._blendshapes,
                                            True)  # fmt: skip
        self.act_quit = self._action("&Quit", "Ctrl+Q", self.close)
        self.act_landmarks.setChecked(s.landmarks)
        self.act_mirror.setChecked(s.mirror)
        self.act_blendshapes.setChecked(s.blendshapes)
        menus = {
            "&File": [self.act_open_video, self.act_open_folder, None, self.act_snapshot,
                      self.act_record, self.act_folder, None, self.act_quit],
            "&View": [self.act_pause, self.act_landmarks, self.act_mirror],
            "F&ace": [self.act_calibrate, self.act_teach, self.act_uncalibrate, None,
                      self.act_blendshapes],
        }  # fmt: skip
        for title, actions in menus.items():
            menu = self.menuBar().addMenu(title)
            for action in actions:
                menu.addSeparator() if action is None else menu.addAction(action)
        toolbar = QToolBar("Actions")
        toolbar.setObjectName("actions")
        for action in (self.act_open_video, self.act_open_folder, self.act_pause,
                       self.act_snapshot, self.act_record, self.act_calibrate):  # fmt: skip
            toolbar.addAction(action)
        self.addToolBar(toolbar)

    def _build_controls(self) -> None:
        s = self.settings
        form = QFormLayout()
        self.source_box = QComboBox()
        self.source_box.addItem("Demo (no camera)", DEMO)
        for index in self.cameras:
            self.source_box.addItem(f"Camera {index}", f"camera:{index}")
        self.source_box.activated.connect(
            lambda i: self.open(self.source_box.itemData(i))  # the user picked one
        )
        form.addRow("Source", self.source_box)

        self.model_box = QComboBox()
        for name in self.packages:
            self.model_box.addItem(name, name)
        wanted = s.model or default_name(self.models_dir)
        # a remembered package that is gone gives way to the default, not to the first listed
        for name in (wanted, default_name(self.models_dir)):
            if self.model_box.findData(name) >= 0:
                self._select_data(self.model_box, name)
                break
        notes = [f"skipped a model package: {line}" for line in self.skipped_packages]
        if not self.packages:
            notes.append(f"no usable model package in {self.models_dir}: nothing can be "
                         "recognised until one is installed")  # fmt: skip
        elif self.model_box.currentData() != wanted:
            notes.append(f"model package {wanted!r} is not installed or not usable; using "
                         f"{self.model_box.currentData()}")  # fmt: skip
        if notes:
            self.say("\n".join(notes))
        self.model_box.currentIndexChanged.connect(self._model_picked)
        form.addRow("Model", self.model_box)
        self.backend_box = QComboBox()
        self.device_box = QComboBox()
        self._fill_backends()
        self.backend_box.currentIndexChanged.connect(self._backend_picked)
        self.device_box.currentIndexChanged.connect(self._options_changed)
        form.addRow("Backend", self.backend_box)
        form.addRow("Device", self.device_box)

        self.detector_box = self._combo(DETECTORS, s.detector)
        self.detector_box.setToolTip("short: faces near the camera (fast); full: small faces too")
        form.addRow("Detector", self.detector_box)
        self.smoothing_box = self._combo(SMOOTHERS, s.smoothing)
        form.addRow("Smoothing", self.smoothing_box)
        self.threshold_box = QDoubleSpinBox()
        self.threshold_box.setRange(0.0, 1.0)
        self.threshold_box.setSingleStep(0.05)
        self.threshold_box.setValue(s.threshold)
        self.threshold_box.setToolTip("below this smoothed probability the label is 'uncertain'")
        self.threshold_box.valueChanged.connect(self._options_changed)
        form.addRow("Threshold", self.threshold_box)
        self.landmarks_box = self._check(self.act_landmarks)
        self.mirror_box = self._check(self.act_mirror)
        self.blendshapes_box = self._check(self.act_blendshapes)
        self.blendshapes_box.setToolTip("MediaPipe's 52 blendshape scores as bs_* columns of "
                                        "the recording's CSV (about 10 ms a face)")  # fmt: skip
        form.addRow(self.landmarks_box)
        form.addRow(self.mirror_box)
        form.addRow(self.blendshapes_box)
        for box in (self.detector_box, self.smoothing_box):
            box.currentIndexChanged.connect(self._options_changed)

        controls = QWidget()
        controls.setLayout(form)
        dock = QDockWidget("Controls")
        dock.setObjectName("controls")
        dock.setWidget(controls)
        dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

    @staticmethod
    def _combo(items, current: str) -> QComboBox:
        box = QComboBox()
        MainWindow._refill(box, items, current)
        return box

    @staticmethod
    def _select_data(box: QComboBox, data: str) -> None:
        index = box.findData(data)
        if index >= 0:
            box.setCurrentIndex(index)

    @staticmethod
    def _check(action: QAction) -> QCheckBox:
        """A checkbox that mirrors a checkable action (menu, shortcut and box stay in step)."""
        box = QCheckBox(action.text().replace("&", ""))
        box.setChecked(action.isChecked())
        box.toggled.connect(action.setChecked)
        action.toggled.connect(box.setChecked)
        return box

    def _build_status(self) -> None:
        self.source_label = QLabel()
        self.rate_label = QLabel()
        self.stage_label = QLabel()
        self.record_label = QLabel()
        self.record_label.setStyleSheet("color: #e03030; font-weight: bold;")
        for label in (self.source_label, self.rate_label, self.stage_label, self.record_label):
            self.statusBar().addPermanentWidget(label)

    # ---- options -----------------------------------------------------------------------------
    def recognizer_options(self) -> RecognizerOptions:
        s = self.settings
        package = self.packages.get(s.model)
        return RecognizerOptions(
            model=package.path if package else None,
            backend=s.backend,
            device=s.device,
            faces=FaceOptions(
                detector=s.detector, landmarks=s.landmarks, blendshapes=s.blendshapes
            ),
            tracker=TrackerOptions(smoothing=s.smoothing, threshold=s.threshold),
        )

    def _fill_backends(self) -> None:
        """The backends (and their devices) the chosen package can run on here."""
        package = self.packages.get(self.model_box.currentData())
        self._backends = backend_devices(package) if package else {"onnxruntime": ["cpu"]}
        self._refill(self.backend_box, self._backends, self.settings.backend)
        self._fill_devices()

    def _fill_devices(self) -> None:
        devices = self._backends.get(self.backend_box.currentData(), ["cpu"])
        self._refill(self.device_box, devices, self.settings.device)

    @staticmethod
    def _refill(box: QComboBox, items, current: str) -> None:
        """New items (quietly: no change signal), keeping `current` selected if it is one."""
        box.blockSignals(True)
        box.clear()
        for item in items:
            box.addItem(item, item)
        MainWindow._select_data(box, current)
        box.blockSignals(False)

    def _model_picked(self) -> None:
        self._fill_backends()
        self._options_changed()

    def _backend_picked(self) -> None:
        self._fill_devices()
        self._options_changed()

    def _options_changed(self) -> None:
        s = self.settings
        s.model = self.model_box.currentData() or ""
        s.backend = self.backend_box.currentData() or "onnxruntime"
        s.device = self.device_box.currentData() or "cpu"
        s.detector = self.detector_box.currentData()
        s.smoothing = self.smoothing_box.currentData()
        s.threshold = round(self.threshold_box.value(), 3)
        self.pipeline.set_options(self.recognizer_options())

    def _landmarks(self, on: bool) -> None:
        self.settings.landmarks = on
        self.pipeline.set_view(landmarks=on)
        self.pipeline.set_options(self.recognizer_options())  # the landmarker runs only if shown

    def _blendshapes(self, on: bool) -> None:
        self.settings.blendshapes = on
        self.pipeline.set_options(self.recognizer_options())

    def calibrate(self) -> None:
        """The selected face (the largest, or the one clicked) as its neutral face."""
        faces = self.current.result.faces if self.current else ()
        face = self.selected_face(faces)
        if face is None:
            self.statusBar().showMessage("no face to calibrate", 5000)
            return
        self.pipeline.calibrate(face.track_id)

    def _mirror(self, on: bool) -> None:
        self.settings.mirror = on
        self.pipeline.set_view(mirror=on)

    # ---- sources -----------------------------------------------------------------------------
    def open(self, spec: str) -> None:
        """Ask the pipeline for a source; the source list follows once it has opened."""
        self.opening.append(spec)
        self.pipeline.open_source(source_factory(spec))

    def open_video(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open a video", "", VIDEO_FILTER)
        if path:
            self.open(path)

    def open_folder(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Open a folder of images "
                                                f"({', '.join(IMAGE_SUFFIXES)})")  # fmt: skip
        if path:
            self.open(path)

    def say(self, message: str) -> None:
        """Something people must see: the banner above the view (until dismissed)."""
        self.banner_text.setText(message)
        self.banner.show()

    # ---- pipeline signals --------------------------------------------------------------------
    @Slot()
    def _on_shown(self) -> None:
        shown = self.pipeline.take()
        if shown is None:
            return
        self.current = shown
        faces = shown.result.faces
        face = self.selected_face(faces)
        t0 = time.perf_counter()
        self.view.show_frame(shown, face if face and len(faces) > 1 else None)
        draw_ms = (time.perf_counter() - t0) * 1e3  # the overlays are drawn for the view
        self.panel.set_labels(shown.labels)
        self.chart.set_labels(shown.labels)
        if self.timeline is None or self.timeline.labels != list(shown.labels):
            self.timeline = Timeline(shown.labels, 60.0)
        self.timeline.add(shown.result)
        self.panel.show_face(face)
        self.teacher.on_face(face)
        if self.teacher.track_id is not None and all(
            f.track_id != self.teacher.track_id for f in faces
        ):
            self.teacher.on_face_lost()
        if face is not None:
            self.chart.show_series(*self.timeline.series(face.track_id))
        for stage, ms in {**shown.result.timings_ms, "draw": draw_ms}.items():
            self.stage_ms.setdefault(stage, deque(maxlen=30)).append(ms)
        view_fps = self.view_rate.tick()
        self.frames_shown += 1
        now = time.monotonic()
        self.first_shown = self.first_shown or now
        self.last_shown = now
        if now - self.last_status >= STATUS_EVERY_S:
            self.last_status = now
            self._update_status(shown, view_fps)
        if self.on_frame is not None:
            self.on_frame(self.frames_shown)

    def selected_face(self, faces: tuple[FaceResult, ...]) -> FaceResult | None:
        """The clicked face while it stays in view, else the largest (faces come largest
        first)."""
        for face in faces:
            if face.track_id == self.selected_id:
                return face
        return faces[0] if faces else None

    def _select_at(self, x: float, y: float) -> None:
        if self.current is None:
            return
        for face in self.current.result.faces:
            fx, fy, fw, fh = face.box
            if fx <= x <= fx + fw and fy <= y <= fy + fh:
                self.selected_id = face.track_id
                return

    def _update_status(self, shown: Shown, view_fps: float) -> None:
        self.rate_label.setText(
            f"view {view_fps:.1f} fps · engine {shown.engine_fps:.1f} fps · dropped {shown.dropped}"
        )
        stages = [f"{k} {statistics.median(self.stage_ms[k]):.1f}" for k in STAGES
                  if k in self.stage_ms]  # fmt: skip
        self.stage_label.setText("ms: " + " · ".join(stages))
        if self.recording:
            seconds = int(time.monotonic() - self.recording_started)
            self.record_label.setText(f"● REC {seconds // 60:02d}:{seconds % 60:02d}")

    def mean_view_fps(self) -> float:
        """Frames painted per second from the first frame to the newest (start-up excluded)."""
        span = self.last_shown - self.first_shown
        return (self.frames_shown - 1) / span if span > 0 else 0.0

    def stage_medians(self) -> dict[str, float]:
        return {k: statistics.median(v) for k, v in self.stage_ms.items()}

    @Slot(str, str)
    def _on_event(self, kind: str, message: str) -> None:
        if kind == "error":
            self.say(message)
        self.statusBar().showMessage(message, 8000)

    @Slot(str)
    def _on_source_opened(self, name: str) -> None:
        self.source_spec = self.opening.popleft() if self.opening else self.source_spec
        if self.source_spec and self.source_box.findData(self.source_spec) < 0:
            self.source_box.addItem(Path(self.source_spec).name, self.source_spec)
        if self.source_spec:
            self._select_data(self.source_box, self.source_spec)
        self.source_label.setText(name)
        self.selected_id = None
        if self.timeline is not None:
            self.timeline.clear()

    @Slot(str)
    def _on_source_failed(self, message: str) -> None:
        if self.opening:
            self.opening.popleft()
        if self.source_spec:
            self._select_data(self.source_box, self.source_spec)  # the one still playing
        self.say(message)

    @Slot(str)
    def _on_source_ended(self, name: str) -> None:
        self.statusBar().showMessage(f"{name}: ended", 8000)  # a recording ends with it
        if self.current is None:
            self.view.show_message(f"{name} gave no frames")

    @Slot(str)
    def _on_model_changed(self, name: str) -> None:
        self.setWindowTitle(f"FER desktop: {name}")
        if name in self.packages:
            self.teacher.set_model(model_key(self.packages[name]))

    @Slot(int, str, object)
    def _on_taught(self, track_id: int, label: str, profile: Profile) -> None:
        self.teacher.on_taught(track_id, label, profile)

    @Slot(object)
    def _on_recording_changed(self, paths) -> None:
        self.recording = paths
        if paths is None:
            self.record_label.setText("")
            if self.act_record.isChecked():  # stopped by the pipeline (source end, write error)
                self.act_record.blockSignals(True)
                self.act_record.setChecked(False)
                self.act_record.blockSignals(False)
        else:
            self.recording_started = time.monotonic()
            self.record_label.setText("● REC 00:00")
            self.statusBar().showMessage(f"recording to {paths[0]} and {paths[1].name}", 8000)

    # ---- actions -----------------------------------------------------------------------------
    def set_paused(self, paused: bool) -> None:
        self.pipeline.set_paused(paused)
        self.statusBar().showMessage("paused" if paused else "resumed", 3000)

    def set_recording(self, on: bool) -> None:
        if on:
            self.pipeline.start_recording(self.settings.folder())
        else:
            self.pipeline.stop_recording()

    def choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Folder for snapshots and recordings", str(self.settings.folder())
        )
        if folder:
            self.settings.output_folder = folder
            self.statusBar().showMessage(f"snapshots and recordings go to {folder}", 5000)

    def snapshot(self) -> Path | None:
        """The shown frame with its overlays as a PNG in the output folder (written whole
        under a temporary name, then renamed)."""
        if self.current is None:
            self.statusBar().showMessage("nothing to save yet", 3000)
            return None
        name = f"fer-{time.strftime('%Y%m%d-%H%M%S')}-{self.current.result.index}.png"
        try:
            path = write_png(self.settings.folder() / name, self.current.picture)
        except OSError as error:
            self.say(f"snapshot not saved: {error}")
            return None
        self.statusBar().showMessage(f"saved {path}", 5000)
        return path

    def closeEvent(self, event) -> None:
        self.pipeline.stop()
        self.settings.geometry = bytes(self.saveGeometry().data())
        self.settings.window_state = bytes(self.saveState().data())
        self.settings.splitter = bytes(self.splitter.saveState().data())
        self.settings.save(self.store)
        super().closeEvent(event)


def run_for(window: MainWindow, frames: int, screenshot: str | None, done: Callable) -> None:
    """After `frames` frames are shown, or when the source ends: optionally save the window to
    `screenshot`, then call `done` (the `--frames` option: measurements and screenshots
    without a person)."""

    def finish(*_) -> None:
        if window.on_frame is None:
            return  # already finished
        window.on_frame = None
        if screenshot and window.current is not None:
            # the frame that counted is not painted yet, and the widgets it added (the
            # panel's bars, with the first frame) are not laid out: grab once it is on screen,
            # after that paint (grabbing inside it would paint recursively)
            window.view.painted.connect(
                lambda: QTimer.singleShot(0, shoot), Qt.ConnectionType.SingleShotConnection
            )
            window.view.update()  # a paint is due even when the source ended after its last
        else:
            shoot()

    def shoot() -> None:
        if screenshot:
            QGuiApplication.sendPostedEvents(None, QEvent.Type.LayoutRequest)  # any left
            window.grab().save(screenshot)
        QTimer.singleShot(0, done)

    window.on_frame = lambda count: finish() if count >= frames else None
    window.pipeline.source_ended.connect(finish)
    window.pipeline.source_failed.connect(finish)

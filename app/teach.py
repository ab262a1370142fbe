"""The side panel's personal profiles (`fer_core.profile`): the guided "teach me" flow for the
selected face, and the remembered profiles to read a face with.

The flow asks for each expression in turn ("show angry… hold it"): a short pause to get
there, then the engine takes the face's next frames as that expression (`Recognizer.teach`),
and the next one is asked once the engine says it is taught. Any one can be skipped or done
again; at the end the profile is saved under its name (the same name replaces the old one).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.profiles import ProfileStore
from fer_core.profile import ModelKey, Profile
from fer_core.results import FaceResult

GET_READY_MS = 1500  # time to change expression before the frames are taken
NONE = "(none: the model alone)"


@dataclass
class TeachingPlan:
    """Which expression is asked now; taught and skipped ones, in the order asked."""

    labels: tuple[str, ...]
    index: int = 0
    taught: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    @property
    def current(self) -> str | None:
        return self.labels[self.index] if self.index < len(self.labels) else None

    def advance(self, taught: bool) -> None:
        label = self.current
        if label is not None:
            (self.taught if taught else self.skipped).append(label)
            self.index += 1

    def redo(self) -> None:
        """Ask the last expression taught or skipped again (the current one, if none)."""
        if self.index > 0:
            self.index -= 1
            label = self.labels[self.index]
            for done in (self.taught, self.skipped):
                if label in done:
                    done.remove(label)


class TeachPanel(QGroupBox):
    def __init__(self, pipeline, store: ProfileStore, parent: QWidget | None = None):
        super().__init__("Personal profile", parent)
        self.pipeline, self.store = pipeline, store
        self.model: ModelKey | None = None
        self.face: FaceResult | None = None  # the selected face, as last shown
        self.plan: TeachingPlan | None = None
        self.track_id: int | None = None  # the face being taught
        self.asked: str | None = None  # the expression the engine is taking now
        self.timer = QTimer(self, singleShot=True, interval=GET_READY_MS)
        self.timer.timeout.connect(self._take)

        self.choice = QComboBox()
        self.use_button = QPushButton("Use")
        self.rename_button = QPushButton("Rename…")
        self.delete_button = QPushButton("Delete")
        self.reading = QLabel("")  # which profile the selected face is read with
        self.reading.setWordWrap(True)
        self.name = QLineEdit("Me")
        self.name.setPlaceholderText("profile name")
        self.start_button = QPushButton("Teach me…")
        self.skip_button = QPushButton("Skip")
        self.redo_button = QPushButton("Redo")
        self.stop_button = QPushButton("Stop")
        self.prompt = QLabel("Select a face, then teach the app its expressions.")
        self.prompt.setWordWrap(True)
        self.prompt.setStyleSheet("font-size: 14px;")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setFixedHeight(12)
        self.progress.setTextVisible(False)

        pick = QHBoxLayout()
        for widget in (self.choice, self.use_button, self.rename_button, self.delete_button):
            pick.addWidget(widget)
        pick.setStretch(0, 1)
        teach = QGridLayout()
        teach.addWidget(QLabel("Name"), 0, 0)
        teach.addWidget(self.name, 0, 1, 1, 2)
        teach.addWidget(self.start_button, 0, 3)
        for column, button in enumerate((self.skip_button, self.redo_button, self.stop_button)):
            teach.addWidget(button, 1, column + 1)
        layout = QVBoxLayout(self)
        layout.addLayout(pick)
        layout.addWidget(self.reading)
        layout.addLayout(teach)
        layout.addWidget(self.prompt)
        layout.addWidget(self.progress)

        self.use_button.clicked.connect(lambda: self.use(self.choice.currentData()))
        self.rename_button.clicked.connect(self._ask_rename)
        self.delete_button.clicked.connect(self._ask_delete)
        self.start_button.clicked.connect(self.start)
        self.skip_button.clicked.connect(self.skip)
        self.redo_button.clicked.connect(self.redo)
        self.stop_button.clicked.connect(lambda: self.stop("Stopped."))
        self._buttons()

    # ---- the remembered profiles -------------------------------------------------------------
    def set_model(self, model: ModelKey) -> None:
        """The model running now: profiles of other models are listed but cannot be used."""
        if self.plan is not None and model != self.model:
            self.stop("The model changed: teach again with this one.")
        self.model = model
        self.refresh()

    def refresh(self) -> None:
        chosen = self.choice.currentData()
        self.choice.clear()
        self.choice.addItem(NONE, None)
        for stored in self.store.list():
            profile = stored.profile
            if profile is None:
                text, tip, usable = f"{stored.name} (unreadable)", stored.problem, False
            elif self.model is not None and profile.model != self.model:
                text = f"{profile.name} (taught on {profile.model.package})"
                tip, usable = "taught on another model: teach it again with this one", False
            else:
                text, tip, usable = profile.name, ", ".join(profile.taught), True
            self.choice.addItem(text, profile.name if profile else None)
            item = self.choice.model().item(self.choice.count() - 1)
            item.setToolTip(tip)
            item.setEnabled(usable)
        index = self.choice.findData(chosen)
        self.choice.setCurrentIndex(max(index, 0))

    def profile(self, name: str) -> Profile | None:
        stored = self.store.find(name) if name else None
        return stored.profile if stored else None

    def use(self, name: str | None) -> None:
        """Read the selected face (or the largest) with the profile `name`; None: none."""
        track_id = self.face.track_id if self.face else None
        if name is None:
            self.pipeline.clear_profiles()
            return
        profile = self.profile(name)
        if profile is not None:
            self.pipeline.use_profile(profile, track_id)

    def rename(self, old: str, new: str) -> None:
        profile = self.profile(old)
        if profile is None or not new.strip():
            return
        self.store.save(replace(profile, name=new.strip()), replace_name=old)
        self.refresh()
        self.choice.setCurrentIndex(max(self.choice.findData(new.strip()), 0))

    def delete(self, name: str) -> None:
        self.store.delete(name)
        self.refresh()

    def _ask_rename(self) -> None:
        old = self.choice.currentData()
        if old:
            new, ok = QInputDialog.getText(self, "Rename profile", "New name", text=old)
            if ok:
                self.rename(old, new)

    def _ask_delete(self) -> None:
        name = self.choice.currentData()
        if name and QMessageBox.question(self, "Delete profile", f"Delete {name!r}?") == (
            QMessageBox.StandardButton.Yes
        ):
            self.delete(name)

    # ---- teaching ----------------------------------------------------------------------------
    def start(self, labels: tuple[str, ...] | None = None) -> None:
        """Teach the selected face every class of the model, in turn."""
        if self.face is None or self.model is None:
            self.prompt.setText("No face to teach: select one in the view first.")
            return
        self.track_id = self.face.track_id
        self.plan = TeachingPlan(tuple(labels or self.model.labels))
        self._ask()

    def skip(self) -> None:
        if self.plan is not None:
            self.plan.advance(taught=False)
            self._ask()

    def redo(self) -> None:
        if self.plan is not None:
            self.plan.redo()
            self._ask()

    def stop(self, message: str) -> None:
        self.timer.stop()
        self.plan = self.asked = None
        self.prompt.setText(message)
        self.progress.setValue(0)
        self._buttons()

    def _ask(self) -> None:
        """Ask for the plan's current expression, or finish."""
        plan = self.plan
        self.asked = None
        self.progress.setValue(0)
        if plan.current is None:
            taught = ", ".join(plan.taught) or "nothing"
            self.stop(f"Done: {self.name.text().strip() or 'Me'} knows {taught}.")
            return
        step = f"{plan.index + 1} of {len(plan.labels)}"
        self.prompt.setText(f"<b>Show {plan.current}</b>… ({step})")
        self.timer.start()
        self._buttons()

    def _take(self) -> None:
        if self.plan is None or self.plan.current is None:
            return
        self.asked = self.plan.current
        self.prompt.setText(f"<b>{self.asked}</b>: hold it…")
        self.pipeline.teach(self.track_id, self.asked, self.name.text().strip() or "Me")

    def on_face(self, face: FaceResult | None) -> None:
        """The selected face of the newest frame."""
        self.face = face
        if face is None:
            self.reading.setText("")
        else:
            read = f"profile {face.profile!r}" if face.profile else "the model alone"
            self.reading.setText(f"Face #{face.track_id} is read with {read}.")
        if self.plan is None or self.asked is None or face is None:
            return
        if face.track_id == self.track_id and face.teaching and face.teaching[0] == self.asked:
            self.progress.setValue(round(100 * face.teaching[1]))

    def on_taught(self, track_id: int, label: str, profile: Profile) -> None:
        """The engine finished taking `label` for face `track_id`."""
        if self.plan is None or track_id != self.track_id or label != self.asked:
            return
        self.store.save(replace(profile, name=self.name.text().strip() or "Me"))
        self.refresh()
        self.choice.setCurrentIndex(max(self.choice.findData(profile.name), 0))
        self.plan.advance(taught=True)
        self._ask()

    def on_face_lost(self) -> None:
        if self.plan is not None:
            self.stop("The face was lost: select it and press Teach me… again.")

    def _buttons(self) -> None:
        teaching = self.plan is not None
        for button in (self.skip_button, self.redo_button, self.stop_button):
            button.setEnabled(teaching)
        self.start_button.setEnabled(not teaching)
        self.name.setEnabled(not teaching)
        self.progress.setVisible(teaching)

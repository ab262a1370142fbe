"""What the app remembers between launches (QSettings: the user's config folder, or an INI
file given with `--settings`). One dataclass, read and written field by field, so a value
from an older or hand-edited file that does not fit falls back to its default."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

ORGANISATION, APPLICATION = "fer-desktop", "FER desktop"


def _default_folder() -> str:
    pictures = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.PicturesLocation)
    return str(Path(pictures or Path.home()) / "fer-desktop")


@dataclass
class AppSettings:
    model: str = ""  # a package name; "" is the default package
    backend: str = "onnxruntime"
    device: str = "cpu"
    detector: str = "full"
    smoothing: str = "ema"
    threshold: float = 0.4
    landmarks: bool = False
    mirror: bool = False
    blendshapes: bool = False  # MediaPipe's 52 scores in recordings' CSV
    output_folder: str = ""  # snapshots and recordings; "" is ~/Pictures/fer-desktop
    # the window's size and place, its docks and toolbar, the view / side panel split: as
    # Qt saves them (stored as Qt's byte arrays, readable by any Qt program)
    geometry: bytes = b""
    window_state: bytes = b""
    splitter: bytes = b""

    def folder(self) -> Path:
        return Path(self.output_folder or _default_folder())

    @classmethod
    def load(cls, store: QSettings) -> AppSettings:
        settings = cls()
        for f in fields(cls):
            default = getattr(settings, f.name)
            value = store.value(f.name, default)
            try:
                if isinstance(default, bool):  # INI files give "true"/"false" back as text
                    value = value if isinstance(value, bool) else str(value).lower() == "true"
                elif isinstance(default, bytes):
                    value = bytes(value.data()) if isinstance(value, QByteArray) else bytes(value)
                else:
                    value = type(default)(value)
            except (TypeError, ValueError):
                value = default
            setattr(settings, f.name, value)
        return settings

    def save(self, store: QSettings) -> None:
        for name, value in asdict(self).items():
            store.setValue(name, QByteArray(value) if isinstance(value, bytes) else value)
        store.sync()


def open_store(path: str | None = None) -> QSettings:
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORGANISATION, APPLICATION)

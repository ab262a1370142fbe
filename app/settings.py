"""What the app remembers between launches (QSettings: the user's config folder, or an INI
file given with `--settings`). One dataclass, read and written field by field, so a value
from an older or hand-edited file that does not fit falls back to its default.

Qt rewrites an INI file whole from the keys it understood, so `app.launch.check_settings`
refuses a `--settings` file holding any other line (a text file given by mistake would lose
them); a device or a FIFO (`--settings /dev/null`) is written through, never replaced by a file."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings, QStandardPaths

from fer_core.outputs import is_special, write_bytes

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
            if (expected := _valid(f.name, value)) is not None:
                # one line, the default for this key, the other keys as the user left them
                print(
                    f"warning: settings {store.fileName()}: {f.name}={value!r} is not valid "
                    f"(expected {expected}); using the default {default!r}",
                    file=sys.stderr,
                )
                value = default
            setattr(settings, f.name, value)
        return settings

    def save(self, store: QSettings) -> None:
        for name, value in asdict(self).items():
            store.setValue(name, QByteArray(value) if isinstance(value, bytes) else value)
        store.sync()


def _valid(name: str, value) -> str | None:
    """What a setting holding `value` was expected to be, or None when it is usable: a value
    the engine refuses would stop the app at every launch until the user found the file."""
    from fer_core.faces import DETECTORS
    from fer_core.track import SMOOTHERS

    choices = {"smoothing": SMOOTHERS, "detector": DETECTORS}
    if name in choices and value not in choices[name]:
        return f"one of {', '.join(choices[name])}"
    if name == "threshold" and not 0 <= value <= 1:  # NaN is not
        return "a number in [0, 1]"
    return None


def profiles_folder(store: QSettings) -> Path:
    """Where the personal profiles are kept: a `profiles` folder beside the settings file
    (a `--settings` device's private folder: profiles then last one launch)."""
    return Path(store.fileName()).parent / "profiles"


def open_store(path: str | None = None) -> QSettings:
    if path and is_special(Path(path)):
        return ThroughStore(path)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings(ORGANISATION, APPLICATION)


class ThroughStore(QSettings):
    """Settings given a device or a FIFO (`--settings /dev/null`, `/dev/stdout`): nothing is
    read from it (a FIFO would wait for a writer) and each `sync()` writes the INI text
    through to it, as `analyze` writes its outputs, never replacing the node. Qt keeps the
    INI file itself in a private temporary folder."""

    def __init__(self, path: str):
        folder = tempfile.TemporaryDirectory(prefix="fer-settings-")
        super().__init__(str(Path(folder.name) / "settings.ini"), QSettings.Format.IniFormat)
        self.folder, self.through = folder, Path(path)

    def sync(self) -> None:
        super().sync()
        ini = Path(self.fileName())
        try:
            write_bytes(self.through, ini.read_bytes() if ini.exists() else b"")
        except OSError as error:  # Qt's own stores say nothing when they cannot save
            print(f"note: --settings {error}", file=sys.stderr)

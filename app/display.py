"""Whether Qt can open a window here, said in one line before Qt tries (and aborts).

Three things stop the window on a fresh desktop: no display at all; `import cv2` (the
OpenCV build mediapipe depends on ships its own Qt) pointing `QT_QPA_PLATFORM_PLUGIN_PATH` at
OpenCV's plugins, which are not PySide6's; and system libraries that Qt's platform plugin
links against but the desktop lacks (`libxcb-cursor0`, `libxcb-icccm4`, `libxcb-keysyms1`
are not installed by default on Debian). The last is found with `ldd` on PySide6's own
plugin and answered with the Debian/Ubuntu packages that provide the missing files.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import re
import shutil
import subprocess
from pathlib import Path

# the shared libraries PySide6's xcb / wayland plugins and Qt itself load → Debian packages
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libwayland-client.so.0": "libwayland-client0",
    "libwayland-cursor.so.0": "libwayland-cursor0",
    "libwayland-egl.so.1": "libwayland-egl1",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libOpenGL.so.0": "libopengl0",
    "libGLX.so.0": "libglx0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
}
# Qt opens these with dlopen, so ldd does not list them; the xcb plugin refuses to start
# without libxcb-cursor (Qt 6.5+)
LOADED_AT_RUN_TIME = {"xcb": ("libxcb-cursor.so.0",)}
PLUGIN_FILES = {"xcb": "libqxcb.so", "wayland": "libqwayland.so"}
# what `import cv2` sets when the OpenCV build carries Qt: paths into its own folder
OPENCV_QT_VARIABLES = ("QT_QPA_PLATFORM_PLUGIN_PATH", "QT_QPA_FONTDIR")
NOT_FOUND = re.compile(r"^\s*(\S+) => not found", re.M)


def forget_opencv_qt() -> None:
    """Undo what `import cv2` did to Qt's environment, so PySide6 loads its own plugins."""
    import cv2

    opencv = str(Path(cv2.__file__).resolve().parent)
    for name in OPENCV_QT_VARIABLES:
        if os.environ.get(name, "").startswith(opencv):
            del os.environ[name]


def platform() -> str | None:
    """The platform plugin Qt will pick: QT_QPA_PLATFORM, else wayland or xcb by the session;
    None when there is no display at all."""
    chosen = os.environ.get("QT_QPA_PLATFORM", "").split(":")[0].split(";")[0]
    if chosen:
        return chosen
    if os.environ.get("WAYLAND_DISPLAY") and not os.environ.get("DISPLAY"):
        return "wayland"
    return "xcb" if os.environ.get("DISPLAY") else None


def missing_from_ldd(text: str) -> list[str]:
    """The library names `ldd` reported as not found, each once, in order."""
    return list(dict.fromkeys(NOT_FOUND.findall(text)))


def missing_libraries(name: str) -> list[str]:
    """The system libraries PySide6's `name` platform plugin needs and this machine lacks."""
    # found, not imported: this runs before Qt may be loaded
    spec = importlib.util.find_spec("PySide6")
    if spec is None or spec.origin is None:
        return []  # no PySide6: the import that follows says so
    plugin = Path(spec.origin).parent / "Qt" / "plugins" / "platforms" / PLUGIN_FILES[name]
    missing = []
    if plugin.is_file() and shutil.which("ldd"):
        result = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True)
        missing = missing_from_ldd(result.stdout)
    for library in LOADED_AT_RUN_TIME.get(name, ()):
        try:
            ctypes.CDLL(library)
        except OSError:
            missing.append(library)
    return missing


def install_hint(libraries: list[str]) -> str:
    packages = dict.fromkeys(DEBIAN_PACKAGES.get(lib, lib) for lib in libraries)
    unknown = [lib for lib in libraries if lib not in DEBIAN_PACKAGES]
    hint = f"sudo apt install {' '.join(packages)}"
    if unknown:
        hint += f" (for {', '.join(unknown)}: the package `apt-file search` names)"
    return hint


def problem() -> str | None:
    """One line saying why Qt cannot open a window here and what to do, or None."""
    name = platform()
    if name is None:
        return (
            "no display here (neither DISPLAY nor WAYLAND_DISPLAY is set). Run the window on a "
            "desktop, under `xvfb-run`, or with QT_QPA_PLATFORM=offscreen; for videos without a "
            "window use `python -m app analyze VIDEO --out A.mp4 --csv F.csv`"
        )
    if name not in PLUGIN_FILES:
        return None  # offscreen, minimal, vnc…: nothing beyond what Qt itself loads
    missing = missing_libraries(name)
    if not missing:
        return None
    return (
        f"Qt's {name} platform plugin cannot load: this desktop lacks {', '.join(missing)}; "
        f"install with `{install_hint(missing)}` (Debian/Ubuntu)"
    )

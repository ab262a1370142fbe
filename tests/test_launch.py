"""Starting the app: what stops Qt on a fresh desktop is said in one line with the packages
to install, OpenCV's Qt variables are undone, the help lists every command, the console
commands exist, and a source that gives no frame ends the launch with status 2 instead of a
window that waits forever."""

import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from app import display
from app.launch import main as launch_main
from tests.conftest import ROOT

LDD_OUTPUT = """\
\tlinux-vdso.so.1 (0x00007ffd8a5f2000)
\tlibQt6XcbQpa.so.6 => /venv/PySide6/Qt/lib/libQt6XcbQpa.so.6 (0x00007f5e6e800000)
\tlibxcb-icccm.so.4 => not found
\tlibxcb-keysyms.so.1 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb-cursor.so.0 => /lib/x86_64-linux-gnu/libxcb-cursor.so.0 (0x00007f5e6e7f0000)
"""


def test_missing_libraries_are_read_from_ldd_and_named_with_their_packages():
    missing = display.missing_from_ldd(LDD_OUTPUT)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    assert display.install_hint(missing) == "sudo apt install libxcb-icccm4 libxcb-keysyms1"
    assert "apt-file search" in display.install_hint(["libnew.so.1"])


def test_the_platform_follows_the_session(monkeypatch):
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):
        monkeypatch.delenv(name, raising=False)
    assert display.platform() is None
    assert "no display here" in display.problem()
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-0")
    assert display.platform() == "wayland"
    monkeypatch.setenv("DISPLAY", ":0")
    assert display.platform() == "xcb"
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    assert display.platform() == "offscreen" and display.problem() is None


def test_opencvs_qt_plugin_path_is_undone(monkeypatch):
    import cv2

    opencv = os.path.dirname(cv2.__file__)
    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", os.path.join(opencv, "qt", "plugins"))
    monkeypatch.setenv("QT_QPA_FONTDIR", "/usr/share/fonts")  # the user's own: kept
    display.forget_opencv_qt()
    assert "QT_QPA_PLATFORM_PLUGIN_PATH" not in os.environ
    assert os.environ["QT_QPA_FONTDIR"] == "/usr/share/fonts"


def test_help_lists_every_command_and_console_commands_are_installed():
    done = subprocess.run([sys.executable, "-m", "app", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0
    for verb in ("analyze", "benchmark", "cameras"):
        assert f"  {verb} " in done.stdout
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts == {"fer-desktop": "app.__main__:run", "fer-trainer": "trainer.cli:main"}
    installed = Path(sys.executable).parent / "fer-desktop"  # by `pip install -e .`
    done = subprocess.run([installed, "cameras", "--help"], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and "camera indices" in done.stdout


@pytest.mark.parametrize("source", ["undecodable", "99"])
def test_a_source_without_frames_ends_the_launch_with_one_line(tmp_path, capsys, source):
    if source == "undecodable":
        bad = tmp_path / "undecodable.mp4"
        bad.write_bytes(os.urandom(20_000))
        source = str(bad)
    started = time.monotonic()
    assert launch_main(["--source", source, "--frames", "20"]) == 2
    assert time.monotonic() - started < 30
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ")
    assert ("undecodable.mp4" in err[0]) or ("camera 99" in err[0])

"""The project's own rules: lint, one OpenCV, the dependencies the design names, and the
README's test command being the one CI runs."""

import importlib.metadata as md
import re
import subprocess
import sys

from conftest import ROOT


def test_ruff_is_clean():
    subprocess.run([sys.executable, "-m", "ruff", "check", str(ROOT)], check=True)


def test_exactly_one_opencv_distribution():
    installed = {d.metadata["Name"].lower() for d in md.distributions()}
    opencv = sorted(n for n in installed if n.startswith("opencv"))
    assert opencv == ["opencv-contrib-python"], opencv


def test_runtime_dependencies_import():
    import cv2
    import onnxruntime
    from mediapipe.tasks.python import vision
    from PySide6 import QtWidgets  # noqa: F401

    assert hasattr(cv2, "ximgproc")  # the contrib build
    assert hasattr(vision, "FaceLandmarker") and hasattr(vision, "FaceDetector")
    assert "CPUExecutionProvider" in onnxruntime.get_available_providers()


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    command = re.search(r"^TEST_COMMAND='(.+)'$", ci, re.M)
    assert command, ".ci/run must define TEST_COMMAND"
    assert command.group(1) in readme


def test_the_app_install_leaves_out_what_the_app_never_reads():
    """The wheel holds the packages' ONNX models and cards, not their torch weights or pictures
    (setuptools' exclude-package-data, matched per file under `assets/`)."""
    import fnmatch
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    excluded = config["exclude-package-data"]["assets"]
    assets = ROOT / "assets"
    files = [p.relative_to(assets).as_posix() for p in assets.rglob("*") if p.is_file()]
    left_out = {f for f in files if any(fnmatch.fnmatch(f, pattern) for pattern in excluded)}
    assert {f for f in files if f.endswith(("model.pt", ".png"))} == left_out
    assert any(f.endswith("model.onnx") for f in files)


def test_the_version_is_written_once():
    import tomllib

    import fer_core

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert fer_core.__version__ == version  # read from the installed package's metadata


def test_the_assets_are_found_as_installed_or_said_missing(monkeypatch):
    import types

    import pytest

    from fer_core.assets import asset_dir

    assert asset_dir("models") == ROOT / "assets" / "models"
    monkeypatch.setitem(sys.modules, "assets", types.SimpleNamespace(__path__=["/nowhere"]))
    with pytest.raises(FileNotFoundError, match=r"assets/demo: the `assets` folder is not inst"):
        asset_dir("demo")

"""What made a checkpoint or a package: the versions of the software that ran it and the commit
of the code, recorded in every checkpoint (one entry per session of a run, since a run may be
resumed elsewhere) and in every package card, so that a figure reproduced later can say whether
it ran under the same software."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# the distributions whose versions can move a figure: the training framework, the runtime the
# packages are scored with, the exporter, and the array and image code of the input path
DISTRIBUTIONS = ("torch", "onnxruntime", "onnx", "numpy", "opencv-contrib-python")
# of those, what a package's scores depend on (torch and onnx only made the file)
SCORING = ("python", "onnxruntime", "numpy", "opencv-contrib-python")


def versions() -> dict[str, str | None]:
    """Python's and each distribution's version (None: not installed)."""
    found: dict[str, str | None] = {"python": platform.python_version()}
    for name in DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


def git_state(root: Path = ROOT) -> dict[str, Any]:
    """The commit the code is at and whether tracked files differ from it (None for both where
    the code is not a git checkout, e.g. an installed wheel)."""

    def git(*args: str) -> str | None:
        try:
            done = subprocess.run(
                ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=20
            )
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if commit is None:
        return {"commit": None, "clean": None}
    changes = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "clean": None if changes is None else changes == ""}


def collect() -> dict[str, Any]:
    return {**versions(), **git_state()}


def differences(recorded: dict[str, Any], keys: tuple[str, ...] = SCORING) -> list[str]:
    """`name recorded → now` for each of `keys` whose version differs from this environment's
    (keys the record lacks are not compared)."""
    now = versions()
    return [
        f"{k} {recorded[k]} → {now.get(k)}"
        for k in keys
        if k in recorded and recorded[k] != now.get(k)
    ]

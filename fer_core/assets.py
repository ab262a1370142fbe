"""Where the data the engine ships with lies: the `assets` folder, installed next to `fer_core`
as a namespace package (pyproject's setuptools config), wherever the install put it."""

from __future__ import annotations

import importlib
from pathlib import Path


def asset_dir(name: str) -> Path:
    """The installed `assets/<name>` folder (its files are checked where they are read)."""
    try:
        folders = [Path(p) for p in importlib.import_module("assets").__path__]
    except ModuleNotFoundError:
        folders = []
    # `importlib.resources.files("assets")` says the same from Python 3.12 on; on 3.11 it fails
    # on the placeholder entry an editable install adds to the namespace's path
    for folder in folders:
        if folder.is_dir():
            return folder / name
    raise FileNotFoundError(
        f"assets/{name}: the `assets` folder is not installed next to fer_core; reinstall "
        "(`pip install .`, or `pip install -e .` in a checkout)"
    )

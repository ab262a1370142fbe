"""The engine of the recognizer: plain Python, Qt-free, and torch-optional.

`fer_core.models` holds the network definitions (torch, imported lazily); everything else
runs on numpy and onnxruntime alone.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("fer-desktop")  # pyproject.toml holds the one version number
except PackageNotFoundError:  # a checkout run without `pip install`
    __version__ = "0+unknown"

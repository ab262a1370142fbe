"""The engine of the recognizer: plain Python, Qt-free, and torch-optional.

`fer_core.models` holds the network definitions (torch, imported lazily); everything else
runs on numpy and onnxruntime alone.
"""

__version__ = "0.1.0"

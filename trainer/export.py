"""ONNX export of a model: eval mode, no auxiliary head, input `image` (N×C×H×W float32)
and output `logits` (N×classes), with a batch dimension that may vary."""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

OPSET = 18


def export_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int]) -> Path:
    """Write `model` to `path` atomically (a temp file in the same folder, then a rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    example = torch.randn(2, *input_shape)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's chatter about deprecated paths
            program = torch.onnx.export(
                model,
                (example,),
                input_names=["image"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            program.save(tmp, external_data=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    top1_agreement: float


def onnx_parity(model: nn.Module, onnx_path: str | Path, images: np.ndarray) -> Parity:
    """Compare onnxruntime (CPU) against torch eval-mode logits on a batch of inputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], {"image": images.astype(np.float32)})[0]
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(images.astype(np.float32))).numpy()
    return Parity(
        max_abs_diff=float(np.abs(got - want).max()),
        top1_agreement=float((got.argmax(1) == want.argmax(1)).mean()),
    )

"""Every family exports to ONNX (eval mode, no aux head) and onnxruntime matches torch."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
from conftest import calibrate_bn

from fer_core.models import create_model, get_spec
from trainer.export.package import export_onnx, onnx_parity

FAMILIES = [
    "autofernet",
    "zennet-m-sa",
    "zennet-r-sa",
    "vgg-fer",
    pytest.param("poster-v2", marks=pytest.mark.slow),
]


@pytest.mark.slow
@pytest.mark.parametrize("name", FAMILIES)
def test_onnx_matches_torch(name, tmp_path):
    spec = get_spec(name)
    shape = (spec.channels, *spec.input_size)
    model = calibrate_bn(create_model(name), shape, batch_size=4 if spec.family == "poster" else 8)
    path = export_onnx(model, tmp_path / f"{name}.onnx", shape)

    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == ["logits"]
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file behind

    rng = np.random.default_rng(1)
    for batch in (1, 3):  # the batch dimension is dynamic: one face or several per frame
        images = rng.random((batch, *shape), dtype=np.float32)
        parity = onnx_parity(model, path, images)
        assert parity.max_abs_diff <= 1e-4, parity
        assert parity.top1_agreement == 1.0


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("name", ["autofernet", "vgg-fer"])
def test_onnx_parity_on_real_fer2013_faces(name, tmp_path, fer2013_faces):
    spec = get_spec(name)
    h, w = spec.input_size
    faces = fer2013_faces[:, :, (48 - h) // 2 : (48 + h) // 2, (48 - w) // 2 : (48 + w) // 2]
    model = calibrate_bn(create_model(name), (1, h, w))
    path = export_onnx(model, tmp_path / "model.onnx", (1, h, w))
    parity = onnx_parity(model, path, np.ascontiguousarray(faces))
    assert parity.max_abs_diff <= 1e-4, parity


@pytest.mark.slow
def test_an_exported_model_runs_without_torch(tmp_path):
    model = calibrate_bn(create_model("zennet-r-sa"), (3, 64, 64))
    path = export_onnx(model, tmp_path / "model.onnx", (3, 224, 224))
    code = (
        "import sys; sys.modules['torch'] = None\n"  # any torch import would now fail
        "import numpy as np, onnxruntime as ort, fer_core\n"
        f"s = ort.InferenceSession({str(path)!r}, providers=['CPUExecutionProvider'])\n"
        "out = s.run(['logits'], {'image': np.zeros((2, 3, 224, 224), np.float32)})[0]\n"
        "assert out.shape == (2, 7), out.shape\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

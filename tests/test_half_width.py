"""Weights stored at half width (issue 33, a light clone): `store_half` keeps a model's float32
tensors as float16 behind Cast nodes, so onnxruntime computes in float32 as before from a file
half the size; `python -m trainer store-fp16` does it to a package in place, its card measured
again. The models are built here, with onnx's helpers."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from fer_core.zoo import load_package, open_session, sha256
from tests.conftest import fer2013_rows, write_fer2013_csv
from trainer.export.half_width import FP16_PARITY_TOLERANCE, MIN_ELEMENTS, store_half, stored_as

LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


def face_model(path, hidden=64, scale=0.02, seed=0):
    """A classifier of 48×48 grey faces: flatten, a 2304×`hidden` layer (weight-heavy), ReLU,
    `hidden`×7, with a reshape whose shape is an int64 initializer and biases too small to be
    halved; input `image`, output `logits`, as an export writes them."""
    rng = np.random.default_rng(seed)
    weights = {
        "w1": (rng.standard_normal((48 * 48, hidden)) * scale).astype(np.float32),
        "b1": (rng.standard_normal(hidden) * 0.1).astype(np.float32),
        "w2": (rng.standard_normal((hidden, 7)) * 0.3).astype(np.float32),
        "b2": np.zeros(7, np.float32),
        "shape": np.array([-1, 48 * 48], np.int64),
    }
    nodes = [
        helper.make_node("Reshape", ["image", "shape"], ["flat"]),
        helper.make_node("MatMul", ["flat", "w1"], ["h"]),
        helper.make_node("Add", ["h", "b1"], ["hb"]),
        helper.make_node("Relu", ["hb"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["o"]),
        helper.make_node("Add", ["o", "b2"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "face",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 48, 48])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 7])],
        [numpy_helper.from_array(v, k) for k, v in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def run(path, images):
    return open_session(path, threads=1).run(["logits"], {"image": images})[0]


def faces(n=16, seed=1):
    return np.random.default_rng(seed).random((n, 1, 48, 48), dtype=np.float32)


def test_halved_weights_halve_the_file_and_keep_the_outputs(tmp_path):
    source = face_model(tmp_path / "model.onnx")
    before = run(source, faces())
    result = store_half(source, tmp_path / "half.onnx")
    after = run(tmp_path / "half.onnx", faces())
    assert result.halved == 2 and not result.already  # w1 and w2; the biases stay
    assert result.bytes_after < 0.52 * result.bytes_before
    assert (tmp_path / "half.onnx").stat().st_size == result.bytes_after
    assert not np.array_equal(before, after)  # the weights really are rounded
    assert np.abs(before - after).max() <= FP16_PARITY_TOLERANCE / 10
    assert (before.argmax(1) == after.argmax(1)).all()
    assert stored_as(source) == "float32" and stored_as(tmp_path / "half.onnx") == "float16"


def test_inputs_outputs_opset_and_small_or_integer_tensors_are_kept(tmp_path):
    source = face_model(tmp_path / "model.onnx")
    store_half(source, tmp_path / "half.onnx")
    model = onnx.load(str(tmp_path / "half.onnx"))
    onnx.checker.check_model(model, full_check=True)
    graph = model.graph
    for value in (*graph.input, *graph.output):
        assert value.type.tensor_type.elem_type == TensorProto.FLOAT
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 18)]
    kinds = {t.name: t.data_type for t in graph.initializer}
    assert kinds == {"w1__fp16": TensorProto.FLOAT16, "w2__fp16": TensorProto.FLOAT16,
                     "b1": TensorProto.FLOAT, "b2": TensorProto.FLOAT,
                     "shape": TensorProto.INT64}  # fmt: skip
    assert 64 * 7 >= MIN_ELEMENTS > 64  # w2 halved, b1 kept: the threshold in between
    casts = [n for n in graph.node if n.op_type == "Cast"]
    assert [(n.input[0], n.output[0]) for n in casts] == [("w1__fp16", "w1"), ("w2__fp16", "w2")]
    assert all(helper.get_attribute_value(n.attribute[0]) == TensorProto.FLOAT for n in casts)
    assert list(graph.node[:2]) == casts  # before their consumers


def test_a_weight_beyond_float16_is_refused_in_one_line(tmp_path):
    source = face_model(tmp_path / "model.onnx")
    model = onnx.load(str(source))
    w1 = next(t for t in model.graph.initializer if t.name == "w1")
    values = numpy_helper.to_array(w1).copy()
    values[3, 5] = -1.0e5
    w1.CopyFrom(numpy_helper.from_array(values, "w1"))
    onnx.save(model, str(source))
    with pytest.raises(ValueError) as caught:
        store_half(source, tmp_path / "half.onnx")
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{source}: weight 'w1' holds -100000")
    assert "±65504" in message and "--weights fp32" in message
    assert not (tmp_path / "half.onnx").exists() and not list(tmp_path.glob(".*.tmp"))


def test_a_file_stored_so_already_is_left_alone(tmp_path):
    path = face_model(tmp_path / "model.onnx")
    store_half(path, path)  # in place
    digest, mtime = sha256(path), path.stat().st_mtime_ns
    again = store_half(path, path)
    assert again.already and again.halved == 0 and "already" in again.summary()
    assert sha256(path) == digest and path.stat().st_mtime_ns == mtime


# ------------------------------------------------------------------ a package, in place


@pytest.fixture
def fer2013(tmp_path_factory):
    path = tmp_path_factory.mktemp("fer2013") / "fer2013.csv"
    return write_fer2013_csv(path, fer2013_rows({"Training": 14, "PublicTest": 42,
                                                 "PrivateTest": 35}))  # fmt: skip


def make_package(folder, metrics=("fer2013/val", "fer2013/test"), chain=None):
    folder.mkdir()
    model = face_model(folder / "model.onnx")
    figure = {"split": "?", "n": 0, "top1": 0.0, "top2": 0.0, "macro_f1": 0.0}
    card = {
        "format": "fer-model-package/1",
        "name": folder.name,
        "family": "test",
        "labels": LABELS,
        "input_size": [48, 48],
        "channels": 1,
        "scale": 255.0,
        "mean": [0.0],
        "std": [1.0],
        "crop": {"framing": "fer2013", "fraction": 1.0},
        "tta": "none",
        "train": {"dataset": "fer2013", "command": "python -m trainer train --model x"},
        "sha256": {"model.onnx": sha256(model)},
        "extra": {"parity": {"max_abs_diff": 1e-6, "top1_agreement": 1.0}},
        "metrics": {key: dict(figure) for key in metrics},
    }
    if chain:
        card["train"]["chain"] = chain
    (folder / "card.json").write_text(json.dumps(card, indent=2))
    return folder


@pytest.mark.slow
def test_store_fp16_rewrites_a_package_in_place(tmp_path, fer2013, capsys):
    from trainer.cli import main
    from trainer.data import read_dataset
    from trainer.evaluation.evaluate import evaluate, load_predictor

    package = make_package(tmp_path / "tiny", chain=["python -m trainer search x"])
    old = (package / "model.onnx").stat().st_size
    data = ["--dataset", "fer2013", "--data", str(fer2013)]
    assert main(["store-fp16", str(package), *data, "--threads", "1"]) == 0
    assert "2 weight tensors stored as float16" in capsys.readouterr().out
    card = json.loads((package / "card.json").read_text())
    # the card vouches for the new file: load_package checks its sha256
    shipped = load_package(package).model_file("fp32")
    assert card["sha256"]["model.onnx"] == sha256(shipped) and stored_as(shipped) == "float16"
    assert shipped.stat().st_size < 0.52 * old
    weights = card["extra"]["weights"]
    assert (weights["stored"], weights["computed"]) == ("float16", "float32")
    assert weights["bytes"] == {"float32": old, "float16": shipped.stat().st_size}
    assert [(a["split"], a["n"]) for a in weights["agreement_with_float32"]] == [
        ("val (PublicTest)", 42), ("test (PrivateTest)", 35)]  # fmt: skip
    assert all(a["top1_agreement"] == 1.0 for a in weights["agreement_with_float32"])
    assert all(0 < a["max_abs_prob_diff"] < 1e-2 for a in weights["agreement_with_float32"])
    assert weights["float32_parity"]["max_abs_diff"] == 1e-6 and "parity" not in card["extra"]
    # the card's metrics are the shipped file's, as evaluate measures them
    dataset = read_dataset("fer2013", fer2013)
    for split in ("val", "test"):
        scored = evaluate(load_predictor(package), dataset, split).metrics
        assert card["metrics"][f"fer2013/{split}"]["top1"] == round(scored.top1, 6)
        assert card["metrics"][f"fer2013/{split}"]["n"] == scored.n
    command = f"python -m trainer store-fp16 {package} {' '.join(data)} --threads 1"
    assert card["train"]["chain"] == ["python -m trainer search x", command]

    # a second run reports and leaves the package alone, before reading any data
    before = {p.name: p.read_bytes() for p in package.iterdir()}
    assert main(["store-fp16", str(package), "--dataset", "fer2013", "--data", "nowhere"]) == 0
    assert "already" in capsys.readouterr().out
    assert {p.name: p.read_bytes() for p in package.iterdir()} == before


@pytest.mark.slow
def test_store_fp16_refuses_bad_input_in_one_line(tmp_path, fer2013, capsys):
    from trainer.cli import main

    data = ["--dataset", "fer2013", "--data", str(fer2013)]
    # a card with a transfer figure whose dataset is not given: it would no longer be the file's
    package = make_package(tmp_path / "ck", metrics=("fer2013/val", "fer2013/test", "ckplus/all"))
    before = (package / "card.json").read_bytes()
    assert main(["store-fp16", str(package), *data]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "give --transfer ckplus=PATH" in err[0], err
    assert (package / "card.json").read_bytes() == before
    assert stored_as(package / "model.onnx") == "float32"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging

    assert main(["store-fp16", str(tmp_path / "none"), *data]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a model package" in err[0]

    (package / "model.onnx").write_bytes(b"altered")
    assert main(["store-fp16", str(package), *data]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "sha256 differs from the card's" in err[0]

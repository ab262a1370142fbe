"""Metrics on a known confusion matrix, evaluation of checkpoints and packages alike, and the
model package an export writes (parity, int8, card, checksums)."""

import json

import numpy as np
import pytest
import torch

from fer_core.zoo import PackageError, load_package
from trainer.data import read_dataset
from trainer.engine.metrics import compute, from_confusion
from trainer.evaluation.evaluate import evaluate, load_predictor, write_report
from trainer.export.half_width import FP16_PARITY_TOLERANCE


def test_metrics_on_a_known_confusion_matrix():
    # rows = true class; 3 classes, 10 samples
    confusion = np.array([[3, 1, 0], [0, 4, 1], [0, 0, 1]])
    top1, macro_f1, recall = from_confusion(confusion, ["a", "b", "c"])
    assert top1 == pytest.approx(8 / 10)
    assert recall == {"a": 0.75, "b": 0.8, "c": 1.0}
    # precision a=1, b=0.8, c=0.5 → F1 a=6/7, b=0.8, c=2/3
    assert macro_f1 == pytest.approx((6 / 7 + 0.8 + 2 / 3) / 3)


def test_compute_top1_top2_and_confusion_from_logits():
    logits = np.array([[3, 2, 0], [0, 1, 3], [1, 3, 2], [2, 0, 1]], dtype=np.float32)
    targets = np.array([0, 1, 2, 1])
    m = compute(logits, targets, ["a", "b", "c"])
    assert m.top1 == pytest.approx(1 / 4)  # only the first is right
    assert m.top2 == pytest.approx(3 / 4)  # the second's 2nd choice is c, the 3rd's is c
    assert m.confusion == [[1, 0, 0], [1, 0, 1], [0, 1, 0]]


@pytest.fixture(scope="module")
def package(tiny_run, tiny_fer2013, tmp_path_factory):
    from trainer.export.package import export_package

    out, _ = tiny_run
    dataset = read_dataset("fer2013", tiny_fer2013)
    target = tmp_path_factory.mktemp("models") / "tiny-vgg"
    # the tiny set's validation split is too small to hold int8 to 0.5 points; speed still counts
    result = export_package(
        out / "best.pt", target, dataset, calibration_images=64, int8_tolerance=100.0
    )
    return result, dataset


@pytest.mark.slow
def test_package_files_card_and_parity(package):
    result, _ = package
    names = {p.name for p in result.path.iterdir()}
    assert names == {
        "model.onnx",
        "model.int8.onnx",
        "card.json",
        "curves.png",
        "confusion-val.png",
        "confusion-test.png",
    }
    card = json.loads((result.path / "card.json").read_text())
    for key in (
        "name",
        "family",
        "labels",
        "input_size",
        "channels",
        "scale",
        "mean",
        "std",
        "crop",
        "params",
        "macs",
        "train",
        "metrics",
        "sha256",
    ):
        assert key in card
    assert card["input_size"] == [40, 40] and card["channels"] == 1 and card["family"] == "vgg"
    assert card["train"]["command"] == "trainer.engine.loop.train() called from Python"
    assert card["train"]["epochs"] == 3 and card["train"]["seed"] == 0
    assert result.float32_parity.max_abs_diff <= 1e-4  # the graph, before its weights halve
    assert result.parity.max_abs_diff <= FP16_PARITY_TOLERANCE  # model.onnx as shipped
    weights = card["extra"]["weights"]
    assert (weights["stored"], weights["computed"]) == ("float16", "float32")
    assert [(a["split"], a["n"]) for a in weights["agreement_with_float32"]] == [
        ("val (PublicTest)", 70), ("test (PrivateTest)", 70)]  # fmt: skip
    assert weights["bytes"]["float16"] < 0.55 * weights["bytes"]["float32"]
    assert weights["bytes"]["float16"] == (result.path / "model.onnx").stat().st_size
    assert 0.0 <= result.int8_agreement <= 1.0
    assert set(card["metrics"]) == {
        "fer2013/val",
        "fer2013/test",
        "fer2013/val/int8",
        "fer2013/test/int8",
    }
    assert card["metrics"]["fer2013/test"]["split"] == "test (PrivateTest)"
    assert card["extra"]["int8"]["shipped"] and "faster a face" in card["extra"]["int8"]["why"]
    package = load_package(result.path)
    package.model_file("fp32")  # checksums verify
    package.model_file("int8")


def test_package_reproduces_its_card_and_matches_the_checkpoint(package, tiny_run, tmp_path):
    result, dataset = package
    card = json.loads((result.path / "card.json").read_text())
    onnx = evaluate(load_predictor(result.path), dataset, "PrivateTest")
    assert onnx.metrics.top1 == pytest.approx(card["metrics"]["fer2013/test"]["top1"], abs=1e-6)
    checkpoint_eval = evaluate(load_predictor(tiny_run[0] / "best.pt"), dataset, "test")
    # model.onnx stores its weights as float16: a face whose logits nearly tie may move (one
    # face moved changes two cells); test_ensemble checks full-width packages exactly
    moved = np.abs(np.array(onnx.metrics.confusion) - checkpoint_eval.metrics.confusion).sum()
    assert moved <= 2
    files = write_report(onnx, tmp_path)
    assert json.loads(files["json"].read_text())["split"] == "test (PrivateTest)"
    assert files["confusion"].read_bytes()[:4] == b"\x89PNG"


def test_checkpoints_and_cards_record_the_software_that_made_them(package, tmp_path):
    """Provenance: each training session's versions and commit in the checkpoint, the export's
    in the card; `evaluate` warns when it reproduces a card figure under other versions."""
    import platform
    import shutil
    from importlib import metadata

    from trainer.evaluation.evaluate import software_warning

    result, dataset = package
    record = json.loads((result.path / "card.json").read_text())["train"]["provenance"]
    (session,) = record["training"]
    assert session["from_epoch"] == 1 and session["torch"] == metadata.version("torch")
    assert session["python"] == platform.python_version() and "clean" in session
    exported = record["export"]
    assert exported["onnx_opset"] >= 17 and exported["onnxruntime"]
    assert len(exported["commit"] or "0" * 40) == 40
    onnx = evaluate(load_predictor(result.path), dataset, "PrivateTest")
    assert software_warning(onnx) is None  # the same software as the export

    copy = tmp_path / "older"
    shutil.copytree(result.path, copy)
    card = json.loads((copy / "card.json").read_text())
    card["train"]["provenance"]["export"]["onnxruntime"] = "0.1.0"
    (copy / "card.json").write_text(json.dumps(card))
    again = evaluate(load_predictor(copy), dataset, "PrivateTest")
    warning = software_warning(again)
    assert warning.startswith(f"warning: {copy}/card.json measured fer2013/test under other")
    assert "onnxruntime 0.1.0 → " in warning


def test_altered_package_is_refused(package, tmp_path):
    import shutil

    result, _ = package
    copy = shutil.copytree(result.path, tmp_path / "copy")
    with open(copy / "model.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(PackageError, match="sha256"):
        load_package(copy).model_file("fp32")
    (copy / "card.json").write_text('{"name": "x",\n "labels": }')
    with pytest.raises(PackageError, match="line 2"):
        load_package(copy)


def test_int8_ships_only_close_to_fp32_and_faster():
    from trainer.export.package import judge_int8

    kept = judge_int8(0.700, 0.696, 2.6, 0.9, 0.5, "val")
    assert kept.ships and "within 0.5 points of fp32 on val (-0.40) and 2.9× faster" in kept.why
    lossy = judge_int8(0.700, 0.690, 2.6, 0.9, 0.5, "val")
    assert not lossy.ships and "loses 1.00 points of top-1 on val (more than 0.5)" in lossy.why
    slow = judge_int8(0.530, 0.530, 2.6, 9.6, 0.5, "val")
    assert not slow.ships and "9.60 ms a face, no faster than fp32's 2.60 ms" in slow.why


@pytest.mark.slow
def test_export_over_an_earlier_package_replaces_its_files(package, tiny_run, tmp_path):
    """Re-exporting into a copy of the package with an int8 model the judge leaves out: the
    files are the new export's, the earlier int8 model is gone (its card would not vouch for
    it), the card says why and keeps the int8 figures measured, no staging is left."""
    import shutil

    from trainer.export.package import export_package

    result, dataset = package
    copy = shutil.copytree(result.path, tmp_path / "copy")
    # a tolerance no int8 model can meet (it would have to beat fp32 by 100 points); the default
    # 512 calibration faces, of a 336-face training split, come in batches of any count
    again = export_package(tiny_run[0] / "best.pt", copy, dataset, int8_tolerance=-100.0)
    assert {p.name for p in copy.iterdir()} == {
        "model.onnx",
        "card.json",
        "curves.png",
        "confusion-val.png",
        "confusion-test.png",
    }
    assert [p.name for p in tmp_path.iterdir()] == ["copy"]
    card = json.loads((copy / "card.json").read_text())
    assert card["format"] == "fer-model-package/1"
    assert not load_package(copy).has("int8") and "model.int8.onnx" not in card["sha256"]
    assert not any(key.endswith("/int8") for key in card["metrics"])
    int8 = card["extra"]["int8"]
    assert not int8["shipped"] and int8["why"].startswith("left out: it loses")
    assert set(int8["top1_measured"]) == {"fer2013/val/int8", "fer2013/test/int8"}
    assert card["extra"]["latency_ms"]["int8"] is None and int8["latency_ms_measured"] > 0
    assert again.int8_agreement is not None
    load_package(copy).model_file("fp32")  # the card's checksum is the new file's


def test_evaluation_maps_classes_by_name(tiny_run, tmp_path):
    """A FER2013 model scored on a CK+-style set: contempt samples are left out and counted."""
    from trainer.data.core import Dataset, Split
    from trainer.data.labels import CKPLUS

    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (14, 48, 48), dtype=np.uint8)
    targets = np.arange(14) % 7
    ck = Dataset("ckplus", CKPLUS, {"all": Split("all", targets, images=images)}, test="all")
    result = evaluate(load_predictor(tiny_run[0] / "best.pt"), ck)
    assert result.left_out == 2  # the two contempt images
    assert result.metrics.n == 12
    assert result.metrics.labels[0] == "angry"


def test_tta_views_average():
    from trainer.engine.views import View, inputs

    images = torch.randint(0, 255, (2, 1, 48, 48), dtype=torch.uint8)
    for tta, views in (("none", 1), ("flip", 2), ("tencrop", 10)):
        batch = inputs(View(size=40, crop=40 / 48, tta=tta), images)
        assert len(batch) == views and batch[0].shape == (2, 1, 40, 40)
    centre = inputs(View(size=40, crop=40 / 48), images)[0]
    assert torch.allclose(centre, images[..., 4:44, 4:44].float() / 255, atol=1e-5)


@pytest.mark.slow
def test_cli_evaluate_and_saliency(package, tiny_run, tiny_fer2013, tmp_path, capsys):
    from trainer.cli import main

    result, _ = package
    data = ["--dataset", "fer2013", "--data", str(tiny_fer2013)]
    assert main(["evaluate", str(result.path), *data, "--split", "PublicTest", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["split"] == "val (PublicTest)" and report["backend"] == "onnxruntime"
    card = json.loads((result.path / "card.json").read_text())
    assert report["metrics"]["top1"] == pytest.approx(card["metrics"]["fer2013/val"]["top1"])
    out = tmp_path / "saliency.png"
    args = ["saliency", str(tiny_run[0] / "best.pt"), *data, "--index", "0", "3", "--out", str(out)]
    assert main(args) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert main(["evaluate", str(tmp_path / "nothing"), *data]) == 2
    assert "not a model package" in capsys.readouterr().err


@pytest.mark.slow
def test_export_scores_direct_transfer_into_the_card(tiny_run, tiny_fer2013, tmp_path):
    from trainer.data import Dataset, Split
    from trainer.data import labels as L
    from trainer.export.package import export_package

    rng = np.random.default_rng(0)
    targets = np.arange(14) % 7  # CK+ order: contempt's faces are left out
    ck = Dataset(
        "ckplus",
        L.CKPLUS,
        {"all": Split("all", targets, images=rng.integers(0, 256, (14, 48, 48), np.uint8))},
    )
    dataset = read_dataset("fer2013", tiny_fer2013)
    out = tmp_path / "tiny"
    result = export_package(tiny_run[0] / "best.pt", out, dataset, int8=False, transfer=[ck])
    scored = result.card["metrics"]["ckplus/all"]
    assert scored["n"] == 12 and scored["transfer"] == "direct: never trained on"
    assert (out / "confusion-ckplus-all.png").is_file()
    again = evaluate(load_predictor(out), ck, "all")
    assert again.metrics.top1 == pytest.approx(scored["top1"], abs=1e-6)

    # `evaluate --record` writes the same entry into an existing package's card
    from trainer.export.package import record_transfer

    card_path = out / "card.json"
    card = json.loads(card_path.read_text())
    del card["metrics"]["ckplus/all"]
    card_path.write_text(json.dumps(card))
    assert record_transfer(out, again) == "ckplus/all"
    assert json.loads(card_path.read_text())["metrics"]["ckplus/all"] == scored
    own = evaluate(load_predictor(out), dataset, "test")
    with pytest.raises(ValueError, match="trained on fer2013, so its fer2013 figure is no"):
        record_transfer(out, own)


def test_saliency_is_normalised_over_the_whole_map(tiny_run):
    from trainer.engine import checkpoint
    from trainer.evaluation.saliency import saliency

    model, state = checkpoint.load_model(tiny_run[0] / "best.pt")
    images = torch.randint(0, 255, (3, 1, 48, 48), dtype=torch.uint8)
    maps, predicted = saliency(model, images, state.view)
    assert maps.shape == (3, 40, 40) and predicted.shape == (3,)
    for m in maps:  # global min-max: exactly 0 and 1 somewhere, not per row
        assert m.min() == 0.0 and m.max() == pytest.approx(1.0)
        assert (m.max(1) < 1.0).any()

"""The torch backend: a package exported with its torch weights (model.pt, checksummed) runs in
torch with onnxruntime's logits, and every way it cannot run is named."""

import json
import shutil
import sys

import numpy as np
import pytest
import torch

from fer_core.classify import Classifier, backend_devices
from fer_core.zoo import PackageError, load_package, sha256

CUDA = torch.cuda.is_available()


@pytest.fixture(scope="module")
def package(tiny_run, tiny_fer2013, tmp_path_factory):
    """The tiny run exported through the CLI with --torch-weights (fp32 ONNX only, for speed;
    its weights full width, so that torch and onnxruntime compute the same network to 1e-4)."""
    from trainer.cli import main

    target = tmp_path_factory.mktemp("models") / "tiny-vgg-torch"
    data = ["--dataset", "fer2013", "--data", str(tiny_fer2013)]
    export = ["export", str(tiny_run[0] / "best.pt"), "--out", str(target), *data, "--no-int8",
              "--weights", "fp32"]  # fmt: skip
    resumed = "python -m trainer train --resume --out r --device cuda"
    assert main([*export, "--torch-weights", "--step", resumed]) == 0
    return target


@pytest.fixture
def faces(package):
    h, w = load_package(package).card.input_size
    return np.random.default_rng(0).integers(0, 255, (5, h, w), dtype=np.uint8)


def altered(package, folder, drop=(), **card_changes):
    """A copy of `package` without the files in `drop`, its card updated with `card_changes`."""
    copy = shutil.copytree(package, folder)
    for name in drop:
        (copy / name).unlink()
    card = json.loads((copy / "card.json").read_text())
    (copy / "card.json").write_text(json.dumps({**card, **card_changes}))
    return load_package(copy)


@pytest.mark.slow
def test_export_writes_checksummed_torch_weights(package, tiny_run, tmp_path):
    from trainer.engine import checkpoint

    loaded = load_package(package)
    path = loaded.model_file("torch")  # verifies the sha256 the card holds
    assert loaded.card.sha256["model.pt"] == sha256(path)
    assert loaded.card.architecture == {"model": "vgg-fer-s", "overrides": {"num_classes": 7}}
    assert loaded.card.extra["torch_dtype"] == "float32"
    # the chain: the steps given with --step, then the export's own command
    resumed, export = loaded.card.train["chain"]
    assert resumed.endswith("--device cuda") and export.startswith("python -m trainer export ")
    state = torch.load(path, weights_only=True)
    want, _ = checkpoint.load_model(tiny_run[0] / "best.pt")
    assert state.keys() == want.state_dict().keys()
    assert all(torch.equal(state[k], v) for k, v in want.state_dict().items())
    copy = altered(package, tmp_path / "copy")
    with open(copy.path / "model.pt", "ab") as f:
        f.write(b"\0")
    with pytest.raises(PackageError, match="sha256"):
        Classifier(copy, backend="torch")


def test_torch_logits_equal_onnxruntime_logits(package, faces):
    onnx = Classifier(package, threads=1)
    torch_cpu = Classifier(package, backend="torch", threads=1)
    assert torch_cpu.device == "cpu"
    want = onnx.logits(faces)
    got = torch_cpu.logits(faces)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.abs(got - want).max() <= 1e-4


@pytest.mark.skipif(not CUDA, reason="no CUDA GPU")
def test_torch_on_cuda_agrees_with_onnxruntime(package, faces):
    want = Classifier(package).logits(faces)
    got = Classifier(package, backend="torch", device="cuda").logits(faces)
    assert np.abs(got - want).max() <= 1e-2  # TF32 convolutions on recent GPUs


def test_float16_weights_are_widened(package, faces, tmp_path, monkeypatch, tiny_run):
    from trainer.engine import checkpoint
    from trainer.export import package as export

    monkeypatch.setattr(export, "FILE_LIMIT", 0)
    model, _ = checkpoint.load_model(tiny_run[0] / "best.pt")
    weights = tmp_path / "model.pt"
    assert export.save_torch_weights(model, weights) == "float16"
    floats = [v for v in torch.load(weights, weights_only=True).values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
    card = load_package(package).card
    half = altered(
        package,
        tmp_path / "half",
        sha256={**card.sha256, "model.pt": sha256(weights)},
        extra={**card.extra, "torch_dtype": "float16"},
    )
    shutil.copyfile(weights, half.path / "model.pt")
    got = Classifier(half, backend="torch").logits(faces)
    want = Classifier(package).logits(faces)
    assert got.dtype == np.float32
    assert np.abs(got - want).max() <= 1e-2 * np.abs(want).max()


def test_torch_backend_problems_are_named(package, tmp_path, monkeypatch):
    no_weights = altered(package, tmp_path / "no-weights", drop=["model.pt"])
    with pytest.raises(ValueError, match=r"no-weights: no model.pt.*--torch-weights.*onnxruntime"):
        Classifier(no_weights, backend="torch")
    no_arch = altered(package, tmp_path / "no-arch", architecture={})
    with pytest.raises(ValueError, match="no architecture"):
        Classifier(no_arch, backend="torch")
    with pytest.raises(ValueError, match="precision 'int8': the torch backend runs fp32 only"):
        Classifier(package, backend="torch", precision="int8")
    with pytest.raises(ValueError, match="onnxruntime runs on the CPU here; use the torch"):
        Classifier(package, device="cuda")
    with pytest.raises(ValueError, match="precision 'torch': onnxruntime runs fp32 or int8"):
        Classifier(package, precision="torch")
    monkeypatch.setitem(sys.modules, "torch", None)  # as in the end-user install
    with pytest.raises(ValueError, match=r"needs torch: pip install -e '\.\[train\]'"):
        Classifier(package, backend="torch")


@pytest.mark.skipif(CUDA, reason="CUDA is available here")
def test_cuda_without_a_gpu_is_named(package):
    with pytest.raises(ValueError, match="device 'cuda': torch sees no CUDA GPU"):
        Classifier(package, backend="torch", device="cuda")


def test_backend_devices_list_torch_only_where_it_can_run(package, tmp_path, monkeypatch):
    torch_devices = ["cpu", "cuda"] if CUDA else ["cpu"]
    assert backend_devices(load_package(package)) == {
        "onnxruntime": ["cpu"],
        "torch": torch_devices,
    }
    no_weights = altered(package, tmp_path / "no-weights", drop=["model.pt"])
    assert backend_devices(no_weights) == {"onnxruntime": ["cpu"]}
    monkeypatch.setitem(sys.modules, "torch", None)
    assert backend_devices(load_package(package)) == {"onnxruntime": ["cpu"]}


@pytest.mark.slow
def test_a_package_with_torch_weights_is_an_ensemble_member(
    package, tiny_run, tiny_fer2013, tmp_path
):
    """Shipped packages keep `model.pt`, not their training checkpoints: an ensemble of the
    package and its own checkpoint exports, and scores as the model alone."""
    from trainer.data import read_dataset
    from trainer.evaluation.evaluate import evaluate, load_predictor
    from trainer.methods.ensemble import ensemble, export_ensemble

    dataset = read_dataset("fer2013", tiny_fer2013)
    members = [package, tiny_run[0] / "best.pt"]
    result = ensemble(members, dataset, select="all")
    exported = export_ensemble(result, members, tmp_path / "ens", dataset, weights="fp32")
    assert exported.parity.max_abs_diff <= 1e-4
    card = json.loads((tmp_path / "ens" / "card.json").read_text())
    assert card["architecture"]["ensemble"][0]["arch"] == load_package(package).card.architecture
    alone = evaluate(load_predictor(package), dataset, "test").metrics
    scored = evaluate(load_predictor(tmp_path / "ens"), dataset, "test").metrics
    assert scored.confusion == alone.confusion

    no_weights = altered(package, tmp_path / "no-weights", drop=["model.pt"]).path
    with pytest.raises(ValueError, match=r"no-weights: no model.pt.*ensemble needs.*weights"):
        export_ensemble(result, [no_weights, members[1]], tmp_path / "ens2", dataset)


@pytest.mark.slow
def test_a_package_with_torch_weights_starts_fine_tuning_and_kfold(package, tmp_path):
    """What survives of a run is its package: `--init` and `kfold` start from its model.pt, and
    k-fold keeps the views its card records (`train.views`)."""
    from trainer.data import Dataset, Split
    from trainer.data import labels as L
    from trainer.engine import checkpoint
    from trainer.engine.networks import init_from
    from trainer.engine.recipes import get_recipe
    from trainer.methods.kfold import kfold

    card = load_package(package).card
    model, _ = checkpoint.load_model(package)
    fresh = checkpoint.build_model(card.architecture)
    assert init_from(fresh, package, list(card.labels)) == []
    for key, value in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[key], value)

    rng = np.random.default_rng(0)
    targets = np.repeat(np.arange(7), 4)
    groups = np.array([f"S{i % 4}" for i in range(len(targets))])
    images = rng.integers(0, 256, (len(targets), 48, 48), dtype=np.uint8)
    ck = Dataset("ckplus", L.CKPLUS, {"all": Split("all", targets, images=images, groups=groups)})
    recipe = get_recipe("ckplus-finetune").override(epochs=1, batch_size=16)
    result = kfold(package, ck, k=2, recipe=recipe, out_dir=tmp_path / "kf", device="cpu")
    assert len(result.folds) == 2
    fold = checkpoint.load(tmp_path / "kf" / "fold-01" / "last.pt")
    assert fold.init == str(package) and fold.labels == list(L.CKPLUS)
    assert fold.recipe.train_size == card.train["views"]["train_size"]

    old = altered(
        package, tmp_path / "old", train={k: v for k, v in card.train.items() if k != "views"}
    )
    with pytest.raises(ValueError, match=r"no train\.views"):
        kfold(old.path, ck, k=2, recipe=recipe, out_dir=tmp_path / "kf2", device="cpu")

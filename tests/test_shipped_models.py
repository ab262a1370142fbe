"""The model packages in assets/models: complete cards, intact files, a default, and — on the
real FER2013 — the PrivateTest top-1 each card states, reproduced from the package alone."""

import json

import pytest

from fer_core.zoo import MODELS_DIR, default_package, list_packages
from tests.conftest import FER2013_CSV, SHARED_DATA

CKPLUS_DIR = SHARED_DATA / "ckplus" / "CK+48"

PACKAGES = list_packages()


def test_a_default_package_is_shipped():
    assert PACKAGES, f"no model package in {MODELS_DIR}"
    assert default_package().name in {p.name for p in PACKAGES}


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_package_is_complete_and_intact(package):
    card = package.card
    # how it was trained: its own run, or, for an ensemble, each member's
    if card.family == "ensemble":
        assert card.train["command"].startswith("python -m trainer ensemble")
        runs = card.train["member_train"]
        assert len(runs) == len(card.train["members"]) >= 2
    else:
        runs = [card.train]
    for run in runs:
        assert run["command"].startswith("python -m trainer train")
        assert {"epochs", "seed", "wall_seconds"} <= set(run)
    assert {"fer2013/val", "fer2013/test"} <= set(card.metrics)
    assert card.metrics["fer2013/test"]["split"] == "test (PrivateTest)"
    for split in ("fer2013/val", "fer2013/test"):
        assert {"top1", "macro_f1", "n"} <= set(card.metrics[split])
    assert card.params > 0 and card.macs > 0
    assert card.extra["latency_ms"]["threads"] == 1 and card.extra["latency_ms"]["fp32"] > 0
    for precision in ("fp32", "int8", "torch"):
        if package.has(precision):
            path = package.model_file(precision)  # checks the sha256
            assert path.stat().st_size < 50 * 1024 * 1024


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_card_top1_reproduces_on_real_private_test(package):
    if not FER2013_CSV.is_file():
        pytest.skip(f"real FER2013 not found at {FER2013_CSV}")
    from trainer.data import read_dataset
    from trainer.evaluation.evaluate import evaluate, load_predictor

    dataset = read_dataset("fer2013", FER2013_CSV)
    result = evaluate(load_predictor(package.path), dataset, "PrivateTest")
    card = json.loads((package.path / "card.json").read_text())
    assert result.metrics.n == 3589
    assert result.metrics.top1 == pytest.approx(card["metrics"]["fer2013/test"]["top1"], abs=1e-6)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_card_reports_ckplus_as_transfer_or_from_subject_folds(package):
    """Where users are: every card says how the model does on posed faces from another lab,
    as a direct transfer or, for a model that trained on CK+, from subject-independent folds."""
    card = package.card
    trained_on_ckplus = "ckplus" in card.train["dataset"].split("+")
    if trained_on_ckplus:
        assert "ckplus/all" not in card.metrics
        kfold = card.extra["kfold"]
        assert kfold["protocol"] == "subject" and 0 < kfold["mean_top1"] <= 1
    else:
        assert card.metrics["ckplus/all"]["transfer"] == "direct: never trained on"


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.name)
def test_card_ckplus_transfer_reproduces(package):
    if "ckplus/all" not in package.card.metrics:
        pytest.skip(f"{package.name} trained on CK+: its figure comes from k-fold runs")
    if not CKPLUS_DIR.is_dir():
        pytest.skip(f"real CK+48 not found at {CKPLUS_DIR}")
    from trainer.data import read_dataset
    from trainer.evaluation.evaluate import evaluate, load_predictor

    result = evaluate(load_predictor(package.path), read_dataset("ckplus", CKPLUS_DIR), "all")
    assert result.metrics.top1 == pytest.approx(
        package.card.metrics["ckplus/all"]["top1"], abs=1e-6
    )


@pytest.mark.slow
@pytest.mark.data
def test_real_fer2013_splits():
    if not FER2013_CSV.is_file():
        pytest.skip(f"real FER2013 not found at {FER2013_CSV}")
    from trainer.data import read_dataset

    dataset = read_dataset("fer2013", FER2013_CSV)
    assert {k: len(v) for k, v in dataset.splits.items()} == {
        "train": 28709, "val": 3589, "test": 3589}  # fmt: skip
    assert list(dataset.counts("train").values()) == [3995, 436, 4097, 7215, 4830, 3171, 4965]
    assert list(dataset.counts("test").values()) == [491, 55, 528, 879, 594, 416, 626]

"""k-fold fine-tuning: subject folds, the paper's CK+ folds, and a tiny end-to-end run that
fine-tunes a FER2013-style checkpoint on a CK+-style set and resumes without retraining."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from trainer.data import Dataset, Split
from trainer.data import labels as L
from trainer.methods.kfold import (
    PAPER_CLASSES,
    PAPER_COUNTS,
    PAPER_TEST,
    paper_folds,
    subject_folds,
)

CKPLUS_DIR = SHARED_DATA / "ckplus" / "CK+48"


def _paper_targets(labels: tuple[str, ...]) -> np.ndarray:
    """Targets with CK+48's real class counts, classes in the dataset's label order (as
    `read_ckplus` returns them: class by class)."""
    count = dict(zip(PAPER_CLASSES, PAPER_COUNTS, strict=True))
    return np.concatenate([np.full(count[L.canonical(n)], i) for i, n in enumerate(labels)])


def _assert_subject_folds(groups: np.ndarray, folds: list[np.ndarray], k: int) -> None:
    assert len(folds) == k
    joined = np.concatenate(folds)
    assert sorted(joined.tolist()) == list(range(len(groups)))  # every index exactly once
    subjects = [set(groups[f].tolist()) for f in folds]
    for a in range(k):
        for b in range(a + 1, k):
            assert not subjects[a] & subjects[b]


def test_subject_folds_partition_by_subject():
    rng = np.random.default_rng(1)
    groups = np.repeat([f"S{i:03d}" for i in range(40)], rng.integers(1, 30, 40))
    groups = groups[rng.permutation(len(groups))]
    folds = subject_folds(groups, 10, seed=3)
    _assert_subject_folds(groups, folds, 10)
    sizes = [len(f) for f in folds]
    assert max(sizes) - min(sizes) <= 29  # within one subject's size of each other
    again = subject_folds(groups, 10, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(folds, again, strict=True))
    with pytest.raises(ValueError, match="number of subjects"):
        subject_folds(groups, 41)


def test_paper_folds_reproduce_the_class_slices():
    labels = L.CKPLUS  # angry, contempt, disgust, …: not the paper's order, matched by name
    targets = _paper_targets(labels)
    folds = paper_folds(targets, labels)
    assert len(folds) == 10
    per_class = dict(zip(PAPER_CLASSES, PAPER_TEST, strict=True))
    for f, test in enumerate(folds, 1):
        assert len(test) == 99 and len(set(test.tolist())) == 99
        classes, n = np.unique(targets[test], return_counts=True)
        counts = {L.canonical(labels[c]): int(m) for c, m in zip(classes, n, strict=True)}
        if f == 9:  # the paper's fear slice runs past its 75 images into the first happy ones
            assert counts == {**per_class, "fear": 3, "happy": 27}
        else:
            assert counts == per_class
    start = {n: int(np.flatnonzero(targets == labels.index(n))[0]) for n in labels}
    fold1_anger = folds[0][targets[folds[0]] == labels.index("angry")]
    assert fold1_anger.tolist() == list(range(start["angry"], start["angry"] + 12))
    last_contempt = folds[9][targets[folds[9]] == labels.index("contempt")]
    assert last_contempt.tolist() == list(range(start["contempt"] + 48, start["contempt"] + 54))
    with pytest.raises(ValueError, match="981 images"):
        paper_folds(targets[1:], labels)


def test_finetune_recipe_keeps_the_checkpoint_views():
    from dataclasses import asdict

    from trainer.engine.recipes import get_recipe
    from trainer.methods.kfold import finetune_recipe

    base = get_recipe("ckplus-finetune")
    vgg = finetune_recipe(base, asdict(get_recipe("vgg")))
    assert (vgg.train_size, vgg.eval_size, vgg.eval_tta) == (40, 40, "tencrop")
    assert vgg.train_crop == pytest.approx(40 / 48)  # one random crop at the ten crops' scale
    assert (vgg.lr, vgg.epochs, vgg.tencrop_train) == (base.lr, 60, False)


def _random_split(name: str, n_per_class: int, classes: int, seed: int, groups=None) -> Split:
    rng = np.random.default_rng(seed)
    targets = np.repeat(np.arange(classes), n_per_class)
    images = rng.integers(0, 256, (len(targets), 48, 48), dtype=np.uint8)
    return Split(name, targets, images=images, groups=groups)


def _fer(train: int, val: int, seed: int) -> Dataset:
    """FER2013-labelled random faces: `train` and `val` per class."""
    splits = {
        "train": _random_split("train", train, 7, seed),
        "val": _random_split("val", val, 7, seed + 1),
    }
    return Dataset("fer2013", L.FER2013, splits, train="train", val="val")


def _ck() -> Dataset:
    """4 subjects × 7 classes × 2 images, labels in CK+ order (contempt instead of neutral)."""
    groups = np.array([f"S{s:03d}" for _ in range(7) for s in range(4) for _ in range(2)])
    return Dataset("ckplus", L.CKPLUS, {"all": _random_split("all", 8, 7, 2, groups)})


@pytest.fixture(scope="module")
def fer_checkpoint(tmp_path_factory):
    """A FER2013-labelled vgg-fer-s checkpoint after one epoch on random faces."""
    from trainer.engine.loop import TrainConfig, train
    from trainer.engine.recipes import Recipe

    fer = _fer(train=4, val=2, seed=0)
    recipe = Recipe(name="tiny", description="", epochs=1, batch_size=16, lr=0.01)
    out = tmp_path_factory.mktemp("fer")
    train(
        TrainConfig(
            model="vgg-fer-s", dataset="fer2013", data="", out=str(out), recipe=recipe, device="cpu"
        ),
        dataset=fer,
    )
    return out / "last.pt"


@pytest.mark.slow
def test_kfold_end_to_end_and_resume(fer_checkpoint, tmp_path):
    from trainer.engine.checkpoint import load
    from trainer.engine.recipes import get_recipe
    from trainer.methods.kfold import kfold

    ck = _ck()
    recipe = get_recipe("ckplus-finetune").override(epochs=1, batch_size=16)
    out = tmp_path / "kfold"
    result = kfold(fer_checkpoint, ck, k=2, recipe=recipe, out_dir=out, device="cpu")

    assert len(result.folds) == 2 and result.protocol == "subject"
    assert sum(f.n for f in result.folds) == 56
    assert all(0.0 <= f.top1 <= 1.0 and f.epochs == 1 for f in result.folds)
    assert result.mean_top1 == pytest.approx(np.mean([f.top1 for f in result.folds]))
    written = json.loads((out / "kfold.json").read_text())
    assert written["mean_top1"] == result.mean_top1 and len(written["folds"]) == 2

    source, fold = load(fer_checkpoint), load(out / "fold-01" / "last.pt")
    assert fold.arch["model"] == source.arch["model"] == "vgg-fer-s"
    assert fold.labels == list(L.CKPLUS) and fold.init == str(fer_checkpoint)
    assert fold.recipe.train_size == source.recipe.train_size  # the checkpoint's view

    last = out / "fold-01" / "last.pt"
    mtime = last.stat().st_mtime_ns
    again = kfold(fer_checkpoint, ck, k=2, recipe=recipe, out_dir=out, device="cpu")
    assert last.stat().st_mtime_ns == mtime  # finished folds are not retrained
    assert [f.top1 for f in again.folds] == [f.top1 for f in result.folds]
    with pytest.raises(ValueError, match="different"):
        kfold(fer_checkpoint, ck, k=2, recipe=recipe, out_dir=out, seed=1, device="cpu")


@pytest.mark.slow
def test_kfold_into_fer2013_trains_each_fold_in_its_labels_beside_its_faces(
    fer_checkpoint, tmp_path
):
    from trainer.engine.checkpoint import load
    from trainer.engine.recipes import get_recipe
    from trainer.methods.kfold import kfold

    ck = _ck()
    fer = _fer(train=3, val=1, seed=5)
    recipe = get_recipe("ckplus-finetune").override(epochs=1, batch_size=16)
    out = tmp_path / "kfold"
    result = kfold(fer_checkpoint, ck, k=2, recipe=recipe, out_dir=out, device="cpu", into=fer,
                   repeat=2)  # fmt: skip

    # the held-out folds leave contempt out (FER2013 lacks it): 6 classes × 8 images
    assert sum(f.n for f in result.folds) == 48
    fold = load(out / "fold-01" / "last.pt")
    assert fold.labels == list(L.FER2013)  # neutral kept for the shipped model's label set
    assert fold.data.name == "fer2013+ckplus"
    held = result.folds[0].n
    other_folds = 48 - held  # CK+ faces of the six shared classes in the other fold
    assert fold.data.fingerprint["train"] == 21 + 2 * other_folds
    plan = json.loads((out / "folds.json").read_text())
    assert plan["into"] == {"dataset": "fer2013", "repeat": 2}
    with pytest.raises(ValueError, match="different into"):
        kfold(fer_checkpoint, ck, k=2, recipe=recipe, out_dir=out, device="cpu", into=fer)

    # a package of a model trained on CK+ carries the folds' figure, never a "transfer" one
    from trainer.export.package import export_package

    fold_model = out / "fold-01" / "last.pt"
    with pytest.raises(ValueError, match="is no transfer; score it on held-out subjects"):
        export_package(fold_model, tmp_path / "p", fer, int8=False, transfer=[ck])
    package = export_package(fold_model, tmp_path / "p", fer, int8=False, kfold=out / "kfold.json")
    card = json.loads((package.path / "card.json").read_text())
    assert card["extra"]["kfold"]["mean_top1"] == pytest.approx(result.mean_top1, abs=1e-6)
    assert card["extra"]["kfold"]["into"] == {"dataset": "fer2013", "repeat": 2}
    assert card["crop"]["framing"] == "fer2013"  # framed as the mix's base
    with pytest.raises(ValueError, match=r"expected the kfold\.json"):
        export_package(fold_model, tmp_path / "q", fer, int8=False, kfold=out / "folds.json")


def test_kfold_verb_refuses_view_overrides(fer_checkpoint, tmp_path, capsys):
    from trainer.cli import main

    rc = main(
        [
            "kfold",
            str(fer_checkpoint),
            "--data",
            str(tmp_path),
            "--out",
            str(tmp_path / "o"),
            "--train-size",
            "44",
        ]
    )
    assert rc == 2 and "--train-size" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.data
def test_real_ckplus_folds():
    if not CKPLUS_DIR.is_dir():
        pytest.skip(f"real CK+48 not found at {CKPLUS_DIR}")
    from trainer.data.folders import read_ckplus

    ck = read_ckplus(CKPLUS_DIR)
    split = ck["all"]
    assert len(split) == 981
    _assert_subject_folds(split.groups, subject_folds(split.groups, 10, seed=0), 10)
    folds = paper_folds(split.targets, ck.labels)
    assert [len(f) for f in folds[:9]] == [99] * 9

"""Ensembles (Auto-FERNet): logits averaged across members whose labels come in different
orders, members chosen on validation only, and the chosen ensemble exported as one package
that scores what the ensemble scored."""

import json
from dataclasses import replace

import numpy as np
import pytest

from tests.conftest import permuted_clone
from trainer.cli import main
from trainer.data import read_dataset
from trainer.engine import checkpoint
from trainer.evaluation.evaluate import evaluate, load_predictor
from trainer.methods.ensemble import combine, reorder, select_members


def test_logits_are_averaged_by_label_name():
    a = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 3.0]])  # labels happy, sad, neutral
    b_labels = ["neutral", "happy", "sad"]
    b = np.array([[1.0, 0.0, 4.0], [-2.0, 2.0, 0.0]])  # columns in b_labels order
    labels = ["happy", "sad", "neutral"]
    b_aligned = reorder(b, b_labels, labels)
    assert b_aligned.tolist() == [[0.0, 4.0, 1.0], [2.0, 0.0, -2.0]]
    assert combine([a, b_aligned], "logits").tolist() == [[1.0, 2.0, 0.0], [1.0, 0.5, 0.5]]
    probs = np.exp(combine([a, b_aligned], "probs"))
    softmax = lambda x: np.exp(x) / np.exp(x).sum(1, keepdims=True)  # noqa: E731
    assert np.allclose(probs, (softmax(a) + softmax(b_aligned)) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="cannot be mapped"):
        reorder(b, ["neutral", "happy", "contempt"], labels)


def test_greedy_selection_stops_when_validation_stops_improving():
    targets = np.array([0, 1, 2, 0])
    good = np.eye(3)[[0, 1, 2, 1]]  # 3 of 4 right
    fixes_last = np.eye(3)[[1, 2, 2, 0]] * 2  # right on the 2 samples good gets wrong or not
    noise = np.eye(3)[[2, 2, 0, 2]] * 5  # always wrong, and loud
    chosen = select_members([noise, good, fixes_last], targets, "logits")
    assert chosen[0][0] == 1  # the best single member first
    assert 0 not in [i for i, _ in chosen]  # the loud wrong one never helps
    assert [s for _, s in chosen] == sorted(s for _, s in chosen)
    assert len(select_members([noise, good, fixes_last], targets, "logits", "all")) == 3


@pytest.mark.slow
def test_ensemble_of_a_model_and_its_relabelled_twin_exports_one_package(
    tiny_run, tiny_fer2013, tmp_path, capsys
):
    """A member whose outputs are listed in reverse order is the same model: the ensemble of
    both must score exactly as the model alone, in `ensemble` and in the exported package."""
    run, _ = tiny_run
    twin = permuted_clone(run / "last.pt", tmp_path / "twin.pt", [6, 5, 4, 3, 2, 1, 0])
    out, report = tmp_path / "ens", tmp_path / "report"
    members = [str(run / "last.pt"), str(twin)]
    data = ["--dataset", "fer2013", "--data", str(tiny_fer2013)]
    # full-width weights: the package must score exactly as the model (float16-stored weights
    # may move a face whose logits tie, tests/test_half_width.py)
    assert main(["ensemble", *members, *data, "--select", "all", "--out", str(out),
                 "--report", str(report), "--weights", "fp32"]) == 0  # fmt: skip
    printed = capsys.readouterr().out
    assert "ensemble of 2 (mean of logits)" in printed
    summary = json.loads((report / "ensemble.json").read_text())
    single = summary["candidates"][0]
    assert summary["candidates"][1]["test_top1"] == single["test_top1"]
    assert summary["test"]["metrics"]["top1"] == pytest.approx(single["test_top1"])
    assert (report / "test" / "confusion.png").is_file()

    card = json.loads((out / "card.json").read_text())
    assert card["family"] == "ensemble" and card["labels"][0] == "angry"
    assert card["input_size"] == [48, 48] and card["crop"]["fraction"] == 1.0
    assert len(card["architecture"]["ensemble"]) == 2
    assert card["train"]["selected_on"].startswith("val (PublicTest)")
    # each member's training record (command, epochs, seed, wall time) travels into the card
    original, permuted = card["train"]["member_train"]
    assert original == permuted and original["epochs"] == 3
    assert original["command"] == checkpoint.load(run / "last.pt").command
    assert card["extra"]["parity"]["max_abs_diff"] <= 1e-4
    assert card["extra"]["weights"] == {"stored": "float32", "computed": "float32"}
    dataset = read_dataset("fer2013", tiny_fer2013)
    alone = evaluate(load_predictor(run / "last.pt"), dataset, "test").metrics
    package = evaluate(load_predictor(out), dataset, "test").metrics
    assert package.top1 == pytest.approx(alone.top1) and package.confusion == alone.confusion
    assert card["metrics"]["fer2013/test"]["top1"] == pytest.approx(alone.top1, abs=1e-6)


def test_ensemble_needs_two_members_with_the_same_classes(tiny_run, tiny_fer2013, tmp_path):
    run, _ = tiny_run
    data = ["--dataset", "fer2013", "--data", str(tiny_fer2013)]
    assert main(["ensemble", str(run / "last.pt"), *data]) == 2
    state = checkpoint.load(run / "last.pt")
    state.labels = [*state.labels[:6], "contempt"]
    checkpoint.save(tmp_path / "other.pt", state)
    with pytest.raises(ValueError, match="ensemble members need the same classes"):
        from trainer.methods.ensemble import ensemble

        ensemble([run / "last.pt", tmp_path / "other.pt"], read_dataset("fer2013", tiny_fer2013))


@pytest.mark.slow
def test_exported_graph_reproduces_each_members_own_view(tiny_run, tiny_fer2013, tmp_path):
    """Members fed through ten crops and through a flip, inside the one ONNX graph, score what
    the members scored when each was run on its own."""
    from trainer.methods.ensemble import ensemble, export_ensemble

    run, _ = tiny_run
    members = []
    for tta in ("tencrop", "flip"):
        state = checkpoint.load(run / "last.pt")
        state = replace(state, view=replace(state.view, tta=tta))
        members.append(checkpoint.save(tmp_path / f"{tta}.pt", state))
    dataset = read_dataset("fer2013", tiny_fer2013)
    result = ensemble(members, dataset, select="all", mode="probs")
    package = export_ensemble(result, members, tmp_path / "ens", dataset, weights="fp32")
    assert package.parity.max_abs_diff <= 1e-4
    scored = evaluate(load_predictor(tmp_path / "ens"), dataset, "test").metrics
    assert scored.confusion == result.test.metrics.confusion


@pytest.mark.slow
def test_tta_gives_every_member_the_same_views_in_scoring_and_in_the_package(
    tiny_run, tiny_fer2013, tmp_path
):
    """`--tta tencrop` overrides each member's own views: the candidates are scored in ten
    crops (as `evaluate --tta tencrop` scores the member alone) and the package holds them."""
    from trainer.methods.ensemble import ensemble, export_ensemble

    run, _ = tiny_run
    members = [run / "last.pt", run / "best.pt"]
    assert checkpoint.load(members[0]).view.tta != "tencrop"
    dataset = read_dataset("fer2013", tiny_fer2013)
    result = ensemble(members, dataset, select="all", tta="tencrop")
    alone = evaluate(load_predictor(members[0]), dataset, "test", tta="tencrop").metrics
    assert result.candidates[0].test_top1 == pytest.approx(alone.top1)
    assert {c.view.tta for c in result.candidates} == {"tencrop"}
    assert result.test.tta == "tencrop"
    package = export_ensemble(result, members, tmp_path / "ens", dataset, weights="fp32")
    views = [m["view"]["tta"] for m in package.card["architecture"]["ensemble"]]
    assert views == ["tencrop", "tencrop"]
    scored = evaluate(load_predictor(tmp_path / "ens"), dataset, "test").metrics
    assert scored.confusion == result.test.metrics.confusion

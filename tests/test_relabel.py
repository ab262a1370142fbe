"""Relabel training (Auto-FERNet): the rule on hand-made logits, the recipe that continues a
snapshot, and a fine-tune that counts its flips per epoch and class pair."""

import csv
import math

import pytest
import torch

from fer_core.view import InputView
from trainer.cli import main
from trainer.data.labels import FER2013
from trainer.engine import checkpoint
from trainer.engine.checkpoint import Checkpoint
from trainer.engine.recipes import get_recipe
from trainer.methods.fes import FES, compute_fes
from trainer.methods.relabel import Flips, RelabelRule, relabel_recipe, rule_for


def snapshot_at(epoch: int) -> Checkpoint:
    """An Auto-FERNet run's checkpoint after `epoch` + 1 epochs (no weights needed here)."""
    recipe = get_recipe("autofernet")
    return Checkpoint({}, [], InputView(48), {}, recipe=recipe, epoch=epoch)


ANGRY, DISGUST, FEAR, HAPPY, SAD, SURPRISE, NEUTRAL = range(7)


def published_fes() -> FES:
    """Auto-FERNet's FES matrix (FER2013 order) for the pairs the tests use; the rest 0.01."""
    fes = compute_fes(torch.zeros(1, 7).numpy(), FER2013)
    m = fes.matrix + 0.01 * (1 - fes.matrix)
    for (a, b), v in {
        (SAD, NEUTRAL): 0.13839,
        (DISGUST, FEAR): 0.00952,
        (HAPPY, SAD): 0.02575,
    }.items():
        m[a, b] = m[b, a] = v
    return FES(FER2013, m, 35887)


def logits_with(probs: dict[int, float]) -> torch.Tensor:
    """One row of logits whose softmax has the given class probabilities (rest shared)."""
    rest = (1 - sum(probs.values())) / (7 - len(probs))
    p = torch.full((7,), rest)
    for k, v in probs.items():
        p[k] = v
    return p.log()[None]


def rule(fes: bool = True) -> RelabelRule:
    matrix = tuple(map(tuple, published_fes().matrix.tolist())) if fes else None
    return RelabelRule(0.2, 0.03, matrix)


@pytest.mark.parametrize(
    "probs, label, with_fes, softmax_only",
    [
        ({NEUTRAL: 0.45, SAD: 0.35}, SAD, NEUTRAL, NEUTRAL),  # gap 0.10, FES 0.138: flips
        ({FEAR: 0.45, DISGUST: 0.35}, DISGUST, DISGUST, FEAR),  # FES 0.0095 < 0.03: kept
        ({NEUTRAL: 0.60, SAD: 0.30}, SAD, SAD, SAD),  # gap 0.30 ≥ τ_r: kept by both rules
        ({SAD: 0.50, NEUTRAL: 0.40}, SAD, SAD, SAD),  # already the top class
        ({SAD: 0.45, HAPPY: 0.40}, HAPPY, HAPPY, SAD),  # FES 0.026 < 0.03
    ],
)
def test_rule_on_hand_made_logits(probs, label, with_fes, softmax_only):
    logits, y = logits_with(probs), torch.tensor([label])
    assert rule(fes=True).apply(logits, y).item() == with_fes
    assert rule(fes=False).apply(logits, y).item() == softmax_only
    assert y.item() == label  # the dataset's label is never rewritten


def test_rule_is_applied_per_sample_in_a_batch():
    logits = torch.cat([logits_with({NEUTRAL: 0.45, SAD: 0.35}), logits_with({FEAR: 0.9})])
    y = torch.tensor([SAD, FEAR])
    assert rule().apply(logits, y).tolist() == [NEUTRAL, FEAR]


def test_flips_are_counted_by_pair_and_epoch():
    flips = Flips(list(FER2013))
    flips.start_epoch()
    flips.add(torch.tensor([SAD, SAD, FEAR]), torch.tensor([NEUTRAL, SAD, SURPRISE]))
    flips.start_epoch()
    flips.add(torch.tensor([SAD]), torch.tensor([NEUTRAL]))
    assert flips.per_epoch() == [2, 1] and flips.seen == [3, 1]
    assert flips.total()[SAD, NEUTRAL] == 2 and flips.total()[FEAR, SURPRISE] == 1
    assert "sad→neutral 2" in flips.summary()


def test_fes_is_taken_in_the_model_label_order(tmp_path):
    path = tmp_path / "FES.json"
    path.write_text(
        '{"labels": ["Anger", "sadness", "neutral"], '
        '"matrix": [[1, 0.05, 0.06], [0.05, 1, 0.14], [0.06, 0.14, 1]]}'
    )
    r = rule_for(["neutral", "sad", "angry", "contempt"], path)
    assert r.fes[0][1] == 0.14 and r.fes[2][0] == 0.06 and r.fes[3][:3] == (0, 0, 0)


def test_recipe_continues_the_snapshot_run():
    """From Auto-FERNet's 600-epoch recipe at epoch 117, the default learning rate is the
    schedule's value there, 0.02272721 (the Auto-FERNet relabel script's default), and drop-path
    goes on ramping from 0.2·117/600."""
    snapshot = snapshot_at(116)
    recipe = relabel_recipe(snapshot, epochs=100)
    assert recipe.lr == pytest.approx(0.02272721, abs=2e-6)
    assert recipe.epochs == 100 and recipe.schedule == "cosine" and recipe.warmup_epochs == 0
    assert recipe.drop_path_at(0) == pytest.approx(0.2 * 117 / 600)
    assert recipe.drop_path_at(99) == pytest.approx(0.2 * 216 / 600)
    assert relabel_recipe(snapshot, lr=1e-3).lr == 1e-3
    assert math.isclose(recipe.aux_weight, 0.4) and recipe.mixup == 0


@pytest.mark.slow
def test_relabel_fine_tune_logs_flips(tiny_run, tiny_fer2013, tmp_path):
    run, _ = tiny_run
    fes = tmp_path / "FES.json"
    fes.write_text(
        '{"labels": ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"], '
        '"matrix": ' + str([[1.0 if i == j else 0.5 for j in range(7)] for i in range(7)]) + "}"
    )
    out = tmp_path / "relabel"
    flags = ["--dataset", "fer2013", "--data", str(tiny_fer2013), "--out", str(out)]
    tiny = ["--epochs", "2", "--batch-size", "32", "--relabel-threshold", "0.9", "--lr", "0.01"]
    assert main(["relabel", str(run / "last.pt"), *flags, "--fes", str(fes), *tiny]) == 0
    rows = list(csv.DictReader((out / "flips.csv").open()))
    totals = {int(r["epoch"]): int(r["count"]) for r in rows if r["from"] == "all"}
    assert totals[1] == 0  # the first epoch trains on the plain labels
    assert totals[2] > 0  # a threshold of 0.9 on a barely trained model flips labels
    assert all(r["from"] != r["to"] for r in rows if r["from"] != "all")
    assert (out / "flips.png").read_bytes()[:4] == b"\x89PNG"
    state = checkpoint.load(out / "last.pt")
    assert state.recipe.name == "relabel" and state.init == str(run / "last.pt")
    assert state.callbacks["relabel"]["flips"]["counts"][1] != [[0] * 7] * 7
    assert state.callbacks["relabel"]["rule"]["relabel_threshold"] == 0.9


@pytest.mark.slow
def test_the_control_is_the_same_fine_tune_without_the_rule(tiny_run, tiny_fer2013, tmp_path):
    """`relabel --no-relabel` against `relabel --no-fes` (which flips most labels at τ_r 0.9):
    the first epoch, before the rule starts, is the same to the last digit; then they part."""
    run, _ = tiny_run
    tiny = ["--epochs", "2", "--batch-size", "32", "--relabel-threshold", "0.9", "--lr", "0.01"]
    rows = {}
    for name, rule in (("relabel", "--no-fes"), ("control", "--no-relabel")):
        out = tmp_path / name
        flags = ["--dataset", "fer2013", "--data", str(tiny_fer2013), "--out", str(out)]
        assert main(["relabel", str(run / "last.pt"), *flags, rule, *tiny]) == 0
        rows[name] = list(csv.DictReader((out / "metrics.csv").open()))
    assert not (tmp_path / "control" / "flips.csv").exists()
    state = checkpoint.load(tmp_path / "control" / "last.pt")
    assert state.recipe.name == "relabel-control" and "relabel" not in state.callbacks
    first = [{k: v for k, v in r[0].items() if k not in ("images_per_s", "seconds")}
             for r in rows.values()]  # fmt: skip
    assert first[0] == first[1]
    assert rows["relabel"][1]["train_loss"] != rows["control"][1]["train_loss"]


def test_relabel_refuses_mixup(tiny_run, tiny_fer2013, tmp_path, capsys):
    run, _ = tiny_run
    flags = ["--dataset", "fer2013", "--data", str(tiny_fer2013), "--out", str(tmp_path / "r")]
    mixup = ["--no-fes", "--mixup", "0.2", "--lr", "0.01"]
    assert main(["relabel", str(run / "last.pt"), *flags, *mixup]) == 2
    assert "relabel training needs hard labels: mixup must be 0" in capsys.readouterr().err


def test_a_run_down_snapshot_needs_an_explicit_lr():
    snapshot = snapshot_at(599)
    with pytest.raises(ValueError, match="schedule has run down"):
        relabel_recipe(snapshot)
    assert relabel_recipe(snapshot, lr=0.001).lr == 0.001

"""The training engine's contracts beyond learning: runs that are extended and refuse silent
changes on resume, distillation from a teacher, soft targets, seeded subsets, checkpoints that
cannot run code, and the loss that stops a run when it stops being a number."""

import pickle
import shutil
from dataclasses import replace

import pytest
import torch

from tests.conftest import permuted_clone, tiny_recipe
from trainer.cli import main
from trainer.data import read_dataset
from trainer.engine import checkpoint


@pytest.fixture
def flags(tiny_fer2013):
    return ["--dataset", "fer2013", "--data", str(tiny_fer2013), "--threads", "1"]


TINY = ["--recipe", "cpu-fast", "--batch-size", "32", "--lr", "0.02", "--warmup-epochs", "0"]


@pytest.mark.slow
def test_a_finished_run_is_extended_by_a_larger_epochs(tiny_run, flags, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    assert main(["train", "--resume", "--out", str(run), *flags, "--epochs", "4"]) == 0
    state = checkpoint.load(run / "last.pt")
    assert state.epoch + 1 == 4 == state.recipe.epochs and len(state.history) == 4
    assert set(state.callbacks) == {"snapshots"}  # the run's own callbacks came back


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        (["--lr", "0.5"], "--lr"),
        (["--seed", "3"], "--seed"),
        (["--teacher", "x.pt"], "--teacher"),
        (["--epochs", "2"], "--epochs 2"),
    ],
)
def test_a_resume_refuses_what_it_would_ignore(tiny_run, flags, given, refused, capsys):
    assert main(["train", "--resume", "--out", str(tiny_run[0]), *flags, *given]) == 2
    err = capsys.readouterr().err.strip()
    assert refused in err and len(err.splitlines()) == 1


def test_a_resume_to_fewer_epochs_than_the_runs_own_is_refused(tiny_run, flags, tmp_path,
                                                               capsys):  # fmt: skip
    """Issue 31: `--resume --epochs 1` on a run at epoch 1 of 4 ran "epochs 2–1 of 1"."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run[0], run)
    state = checkpoint.load(run / "last.pt")
    done = state.epoch + 1
    checkpoint.save(run / "last.pt", replace(state, recipe=state.recipe.override(epochs=done + 3)))
    assert main(["train", "--resume", "--out", str(run), *flags, "--epochs", str(done + 1)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"error: --epochs {done + 1}: {run / 'last.pt'} is a run of {done + 3} epochs ({done} "
        f"trained); resume without --epochs to finish it, or give more than {done + 3} to "
        "extend it"
    ]


@pytest.mark.slow
def test_distillation_from_a_package_of_another_label_order(tiny_run, flags, tmp_path):
    """The teacher's classes are matched by name: a teacher whose outputs are listed in reverse
    order teaches the same thing; the checkpoint and card record it."""
    teacher = permuted_clone(tiny_run[0] / "best.pt", tmp_path / "teacher.pt", range(6, -1, -1))
    out = tmp_path / "student"
    argv = ["train", "--model", "vgg-fer-s", *flags, *TINY, "--epochs", "1", "--out", str(out)]
    assert main([*argv, "--teacher", str(teacher), "--kd-weight", "2"]) == 0
    state = checkpoint.load(out / "last.pt")
    assert state.callbacks["distill"] == {"teachers": [str(teacher)]}
    assert state.recipe.kd_weight == 2


def test_distillation_term_is_zero_when_student_matches_teacher():
    from trainer.engine.step import Batch
    from trainer.methods.distill import Distill

    d = Distill(["t.pt"])
    logits = torch.randn(5, 7)
    batch = Batch(torch.zeros(5, 1, 4, 4), torch.zeros(5, 1, 4, 4), torch.zeros(5), logits, 0, 0)
    batch.extras["teacher"] = logits.clone()
    assert float(d.extra_loss(batch, logits)) == pytest.approx(0.0, abs=1e-6)
    batch.extras["teacher"] = -logits
    assert float(d.extra_loss(batch, logits)) > 0.1


@pytest.mark.slow
def test_stored_teacher_views_score_each_face_once_as_evaluate_would(
    tiny_run, tiny_fer2013, tmp_path, capsys
):
    """`kd_views="stored"`: each teacher scores every training face once, as `evaluate` does
    (its own views; an ONNX-only package serves), in the student's class order; the teachers
    are averaged and each step looks its rows up by position. Teaching from the batch needs
    torch weights."""
    from trainer.engine.loop import Run, TrainConfig
    from trainer.engine.step import Batch
    from trainer.evaluation.evaluate import load_predictor, predict
    from trainer.export.package import export_package
    from trainer.methods.distill import Distill

    torch.set_num_threads(1)
    best = tiny_run[0] / "best.pt"
    dataset = read_dataset("fer2013", tiny_fer2013)
    # float32 weights: the stored scores are compared with the checkpoint's to 1e-4
    onnx_only = export_package(
        best, tmp_path / "onnx-only", dataset, int8=False, weights="fp32"
    ).path
    reversed_twin = permuted_clone(best, tmp_path / "twin.pt", range(6, -1, -1))
    recipe = tiny_recipe(epochs=1, kd_views="stored")
    config = TrainConfig("vgg-fer-s", "fer2013", str(tiny_fer2013), str(tmp_path / "s"), recipe)
    distill = Distill([str(onnx_only), str(reversed_twin)])
    Run(config, [distill]).fit()
    assert checkpoint.load(tmp_path / "s" / "last.pt").recipe.kd_views == "stored"
    expected = predict(load_predictor(best), dataset, "train").logits
    assert torch.allclose(distill.stored, torch.as_tensor(expected), atol=1e-4)
    index = torch.tensor([4, 0, 4])
    batch = Batch(torch.zeros(3, 1, 40, 40), torch.zeros(3, 1, 40, 40), index, None, index, 0)
    distill.on_batch(None, batch)
    assert torch.equal(batch.extras["teacher"], distill.stored[index])

    data = ["--dataset", "fer2013", "--data", str(tiny_fer2013)]
    argv = ["train", "--model", "vgg-fer-s", *data, *TINY, "--epochs", "1", "--teacher"]
    argv += [str(onnx_only), "--out", str(tmp_path / "b")]
    assert main(argv) == 2
    assert "--kd-views stored takes any package" in capsys.readouterr().err


@pytest.mark.slow
def test_stored_teacher_scores_are_cached_for_a_resume(
    tiny_run, tiny_fer2013, tmp_path, monkeypatch
):
    """A resume takes the stored scores from the run folder while the teacher and the training
    faces are the same; a changed teacher, or a damaged cache, is scored again."""
    from trainer.engine.loop import Run, TrainConfig
    from trainer.methods import distill as kd

    torch.set_num_threads(1)
    teacher = tmp_path / "teacher.pt"
    shutil.copy(tiny_run[0] / "best.pt", teacher)
    out = tmp_path / "s"
    config = TrainConfig("vgg-fer-s", "fer2013", str(tiny_fer2013), str(out),
                         tiny_recipe(epochs=1, kd_views="stored"))  # fmt: skip
    first = kd.Distill([str(teacher)])
    Run(config, [first]).fit()
    assert (out / kd.STORED_CACHE).is_file()

    scored = []
    real = kd.stored_logits
    monkeypatch.setattr(kd, "stored_logits", lambda s, run: scored.append(s) or real(s, run))
    again = kd.Distill([str(teacher)])
    Run(replace(config, epochs=2), [again], resume=True).fit()
    assert scored == [] and torch.equal(again.stored, first.stored)

    permuted_clone(tiny_run[0] / "best.pt", teacher, range(6, -1, -1))  # same classes, new file
    changed = kd.Distill([str(teacher)])
    Run(replace(config, epochs=3), [changed], resume=True).fit()
    assert scored == [str(teacher)]
    assert torch.allclose(changed.stored, first.stored, atol=1e-4)  # matched by name: same scores

    (out / kd.STORED_CACHE).write_bytes(b"not a checkpoint")  # a damaged cache is scored again
    Run(replace(config, epochs=4), [kd.Distill([str(teacher)])], resume=True).fit()
    assert scored == [str(teacher)] * 2


@pytest.mark.parametrize(
    ("given", "refused"),
    [
        (["--kd-views", "cached"], "--kd-views: invalid choice: 'cached'"),
        (["--mixup", "0.2"], "mixup"),
    ],
)
def test_stored_teacher_views_refuse_what_they_cannot_follow(
    tiny_run, flags, tmp_path, capsys, given, refused
):
    argv = ["train", "--model", "vgg-fer-s", *flags, *TINY, "--epochs", "1", "--kd-views", "stored"]
    teacher = ["--teacher", str(tiny_run[0] / "best.pt")]
    assert main([*argv, *given, *teacher, "--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert refused in err and len(err.splitlines()) == 1


def test_a_teacher_must_know_every_class(tiny_run, flags, tmp_path, capsys):
    teacher = checkpoint.load(tiny_run[0] / "best.pt")
    teacher.labels = [*teacher.labels[:6], "contempt"]
    checkpoint.save(tmp_path / "t.pt", teacher)
    argv = ["train", "--model", "vgg-fer-s", *flags, *TINY, "--epochs", "1"]
    assert main([*argv, "--out", str(tmp_path / "s"), "--teacher", str(tmp_path / "t.pt")]) == 2
    assert "has no class neutral" in capsys.readouterr().err


@pytest.mark.slow
def test_soft_targets_train_and_max_images_subsets(tiny_fer2013, tmp_path):
    """A split with vote distributions trains on them; --max-images keeps a seeded subset."""
    import numpy as np

    from trainer.data import read_dataset
    from trainer.engine.loop import TrainConfig, train

    data = read_dataset("fer2013", tiny_fer2013)
    train_split = data["train"]
    train_split.soft = np.full((len(train_split), 7), 1 / 7, np.float32)
    train_split.soft[np.arange(len(train_split)), train_split.targets] += 0.5
    train_split.soft /= train_split.soft.sum(1, keepdims=True)
    config = TrainConfig(
        "vgg-fer-s", "fer2013", str(tiny_fer2013), str(tmp_path / "soft"),
        tiny_recipe(epochs=1), max_images=100,
    )  # fmt: skip
    result = train(config, dataset=data)
    assert result.history[0].train_loss > 0
    state = checkpoint.load(tmp_path / "soft" / "last.pt")
    assert state.data.max_images == 100 and state.data.fingerprint["train"] == 336


def test_checkpoints_cannot_run_code(tmp_path, capsys):
    class Payload:
        def __reduce__(self):
            return (print, ("code ran",))

    bad = tmp_path / "bad.pt"
    torch.save({"format": checkpoint.FORMAT, "arch": Payload()}, bad)
    with pytest.raises(ValueError, match="not a readable trainer checkpoint"):
        checkpoint.load(bad)
    bad.write_bytes(pickle.dumps({"x": Payload()}))
    with pytest.raises(ValueError, match="not a readable trainer checkpoint"):
        checkpoint.load(bad)
    assert "code ran" not in capsys.readouterr().out


def test_a_non_finite_loss_stops_the_run(flags, tmp_path, capsys):
    out = tmp_path / "nan"
    argv = ["train", "--model", "vgg-fer-s", *flags, *TINY, "--epochs", "2", "--out", str(out)]
    assert main([*argv, "--lr", "1e12"]) == 2
    err = capsys.readouterr().err
    assert "the training loss became" in err and "lower --lr" in err
    assert not (out / "best.pt").exists()


def test_a_recipe_refuses_a_text_field_it_does_not_know():
    from trainer.engine.recipes import get_recipe

    with pytest.raises(ValueError, match="--schedule 'linear': expected one of cosine, "):
        get_recipe("cpu-fast").override(schedule="linear")

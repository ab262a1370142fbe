"""The training loop: it learns, writes its run folder, snapshots, and resumes bit for bit
after being killed mid-run."""

import csv
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from tests.conftest import ROOT, tiny_recipe
from trainer.data import read_dataset
from trainer.engine import checkpoint
from trainer.engine.loop import TrainConfig, train
from trainer.engine.recipes import RECIPES
from trainer.engine.step import Plateau, lr_at
from trainer.evaluation.evaluate import evaluate, load_predictor
from trainer.methods import standard_callbacks


def test_run_learns_and_writes_its_folder(tiny_run):
    out, result = tiny_run
    assert {"last.pt", "best.pt", "metrics.csv", "curves.png"} <= {p.name for p in out.iterdir()}
    assert result.best_val_top1 > 0.6  # 7 classes: chance is 0.14
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    state = checkpoint.load(out / "last.pt")
    assert state.labels == ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
    assert state.arch["model"] == "vgg-fer-s" and state.resumable
    assert not checkpoint.load(out / "best.pt").resumable  # weights only: half the size
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_snapshots_key_on_clean_training_accuracy(tiny_run, tiny_fer2013):
    """Each snapshot is the first epoch whose training faces, read without augmentation, reach
    its level (`train-clean.csv`), never overwritten later; the figure is what `evaluate` says
    of the same weights on the training split (336 faces here: all of them, under the sample)."""
    out, _ = tiny_run
    rows = list(csv.DictReader((out / "train-clean.csv").open()))
    clean = {int(r["epoch"]): float(r["train_clean_top1"]) for r in rows}
    assert sorted(clean) == [1, 2, 3]
    dataset = read_dataset("fer2013", tiny_fer2013)
    final = evaluate(load_predictor(out / "last.pt"), dataset, "train").metrics.top1
    assert clean[3] == pytest.approx(final, abs=1.5 / 336)  # at most a face read differently
    taken = []
    for threshold in (85, 90):
        reached = [e for e, top1 in sorted(clean.items()) if 100 * top1 >= threshold]
        path = out / f"snapshot-{threshold}.pt"
        assert path.exists() == bool(reached)
        if reached:
            assert checkpoint.load(path).epoch + 1 == reached[0]
            taken.append(threshold)
    assert taken, "the tiny run fits its faces: at least one snapshot is taken"
    assert checkpoint.load(out / "last.pt").callbacks["snapshots"]["taken"] == taken


def test_snapshots_from_a_run_before_clean_accuracy_resume():
    """A checkpoint written before the clean figure was measured holds only the levels taken."""
    from trainer.methods import resumed_callbacks

    (snapshots,) = [cb for cb in resumed_callbacks({"snapshots": {"taken": [85]}}) if cb.key]
    assert snapshots.taken == [85] and snapshots.rows == []


def test_curves_draw_what_the_other_callbacks_measure(tiny_run, tmp_path):
    """curves.png comes last, so it draws this epoch's clean training and watched test figures
    beside the run's own; a line given to it changes the picture."""
    from trainer.evaluation.plots import Curves, training_curves
    from trainer.methods import resumed_callbacks

    out, result = tiny_run
    assert isinstance(standard_callbacks(watch_test=True)[-1], Curves)
    state = checkpoint.load(out / "last.pt")
    assert isinstance(resumed_callbacks(state.callbacks)[-1], Curves)
    (snapshots,) = [cb for cb in resumed_callbacks(state.callbacks) if cb.key]
    rows = csv.DictReader((out / "train-clean.csv").open())
    expected = [(int(r["epoch"]), float(r["train_clean_top1"])) for r in rows]
    assert snapshots.curves() == {"train (clean sample)": expected}
    plain = training_curves(result.history, tmp_path / "plain.png").read_bytes()
    drawn = training_curves(result.history, tmp_path / "more.png", snapshots.curves())
    assert drawn.read_bytes()[:4] == b"\x89PNG" and drawn.read_bytes() != plain


def test_existing_run_is_not_overwritten(tiny_run, tiny_fer2013):
    out, _ = tiny_run
    config = TrainConfig("vgg-fer-s", "fer2013", str(tiny_fer2013), str(out), tiny_recipe())
    with pytest.raises(ValueError, match="--resume"):
        train(config)


def _cli_run_after_its_first_checkpoint(tiny_fer2013, out, epochs: int) -> subprocess.Popen:
    """A tiny `python -m trainer train` in a subprocess, returned once it wrote last.pt."""
    data = ["--dataset", "fer2013", "--data", str(tiny_fer2013)]
    recipe = ["--recipe", "cpu-fast", "--batch-size", "32", "--lr", "0.02", "--warmup-epochs", "0"]
    flags = ["--model", "vgg-fer-s", *data, *recipe, "--epochs", str(epochs), "--threads", "1"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "trainer", "train", *flags, "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not (out / "last.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "the run never wrote a checkpoint"
        time.sleep(0.02)
    return proc


@pytest.mark.slow
def test_killed_run_resumes_bit_for_bit(tiny_fer2013, tmp_path):
    """Kill a CLI run (SIGKILL) after its first epoch, resume it, and compare with a run that
    was never interrupted: same weights, same validation scores."""
    torch.set_num_threads(1)
    killed = tmp_path / "killed"
    proc = _cli_run_after_its_first_checkpoint(tiny_fer2013, killed, epochs=3)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    done = checkpoint.load(killed / "last.pt").epoch + 1
    assert done < 3, "the run finished before it could be interrupted"

    resumed = train(
        TrainConfig("vgg-fer-s", "fer2013", str(tiny_fer2013), str(killed), tiny_recipe()),
        standard_callbacks(),
        resume=True,
    )
    straight = train(
        TrainConfig(
            "vgg-fer-s", "fer2013", str(tiny_fer2013), str(tmp_path / "straight"), tiny_recipe()
        ),
        standard_callbacks(),
    )
    a = checkpoint.load(killed / "last.pt").model
    b = checkpoint.load(tmp_path / "straight" / "last.pt").model
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [r.val_top1 for r in resumed.history] == [r.val_top1 for r in straight.history]


@pytest.mark.slow
def test_sigterm_ends_a_run_with_one_line_and_its_checkpoints_whole(tiny_fer2013, tmp_path):
    """`kill`, `timeout` or a scheduler stop a run as Ctrl-C does: status 2, one line."""
    out = tmp_path / "stopped"
    proc = _cli_run_after_its_first_checkpoint(tiny_fer2013, out, epochs=50)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    # (the progress bar may leave its last frame on the same line)
    assert err.rstrip().endswith("continue with --resume") and "Traceback" not in err
    assert "interrupted: files written so far are complete" in err
    assert checkpoint.load(out / "last.pt").epoch + 1 < 50


def test_learning_rate_schedules():
    cosine = RECIPES["cpu-fast"].override(epochs=10, warmup_epochs=1, lr=0.1)
    assert lr_at(cosine, 0.5, Plateau()) == pytest.approx(0.05)  # half-way through warm-up
    assert lr_at(cosine, 1.0, Plateau()) == pytest.approx(0.1)
    assert lr_at(cosine, 10.0, Plateau()) == pytest.approx(0.0, abs=1e-12)
    exponential = RECIPES["poster"]
    assert lr_at(exponential, 2.7, Plateau()) == pytest.approx(3.5e-5 * 0.98**2)
    plateau = Plateau()
    for value in (0.5, 0.4, 0.4, 0.4):  # no improvement for 3 epochs with patience 2
        plateau.update(value, factor=0.75, patience=2)
    assert lr_at(RECIPES["vgg"], 5, plateau) == pytest.approx(0.01 * 0.75)


@pytest.mark.slow
def test_every_recipe_trains_a_step():
    """Each paper recipe's options (aux head, SAM, mixup, ten crops, plateau) run one step."""
    from fer_core.models import create_model
    from trainer.engine.augment import Augment
    from trainer.engine.step import Batch, Precision, Step, make_optimizer, soft_targets

    torch.manual_seed(0)
    for name, model_name in (
        ("autofernet", "autofernet"),
        ("zennet", "zennet-r-sa"),
        ("poster", "vgg-fer-s"),
        ("vgg", "vgg-fer-s"),
    ):
        recipe = RECIPES[name]
        model = create_model(model_name).train()
        size = 48 if model_name == "autofernet" else 40
        if model_name == "zennet-r-sa":
            size = 32
        x = Augment(size)(
            torch.randint(0, 255, (4, 1, 48, 48), dtype=torch.uint8),
            torch.Generator().manual_seed(0),
        )
        if model_name == "zennet-r-sa":
            x = x.expand(-1, 3, -1, -1)
        before = [p.detach().clone() for p in model.parameters()]
        cpu = torch.device("cpu")
        step = Step(model, make_optimizer(model, recipe), recipe, cpu, Precision(None, False, ""))
        y = torch.tensor([0, 1, 2, 3])
        targets = soft_targets(y, 7, recipe.label_smoothing)
        loss, logits = step(Batch(x, x, y, targets, torch.arange(4), 0))
        assert logits.shape == (4, 7) and loss > 0
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_architecture_files_are_models(tmp_path):
    """--model may be a genotype or structure file; the checkpoint keeps its text."""
    from fer_core.models.genotype import AUTO_FERNET
    from fer_core.models.structure import ZENNET_R, Structure
    from fer_core.models.syntax import ArchitectureSyntaxError
    from trainer.engine.networks import describe_architecture

    genotype = tmp_path / "searched.genotype"
    genotype.write_text(AUTO_FERNET.to_text())
    arch = describe_architecture(str(genotype), 8)
    assert arch["model"] == "autofernet" and arch["overrides"]["num_classes"] == 8
    assert checkpoint.build_model(arch)(torch.zeros(1, 1, 48, 48))[0].shape[-1] == 8
    structure = tmp_path / "searched.txt"
    structure.write_text(ZENNET_R)
    arch = describe_architecture(str(structure), 7)
    assert arch["overrides"]["structure"] == Structure.parse(ZENNET_R).to_text()
    structure.write_text("SuperConvK3BNRELU(3,8,2,1)SuperBogus(8,8,1,1)")
    with pytest.raises(ArchitectureSyntaxError, match=r"searched\.txt"):
        describe_architecture(str(structure), 7)


@pytest.mark.slow
def test_image_folder_dataset_trains_streamed_or_in_memory(tmp_path, monkeypatch):
    """A dataset of image files trains both ways: decoded once into memory, or decoded per
    batch by DataLoader workers when it would not fit (forced here with a zero limit)."""
    import cv2
    import numpy as np

    import trainer.engine.batches as batches_module

    rng = np.random.default_rng(0)
    for split, n in (("train", 4), ("val", 2)):
        for label in ("happy", "sad", "neutral"):
            folder = tmp_path / "faces" / split / label
            folder.mkdir(parents=True)
            for i in range(n):
                cv2.imwrite(str(folder / f"{i}.png"), rng.integers(0, 255, (60, 60, 3), np.uint8))
    torch.set_num_threads(1)
    results = []
    for limit in (1 << 40, 0):
        monkeypatch.setattr(batches_module, "STREAM_ABOVE_BYTES", limit)
        config = TrainConfig(
            "vgg-fer-s",
            "folder",
            str(tmp_path / "faces"),
            str(tmp_path / f"run-{limit}"),
            tiny_recipe(epochs=1, batch_size=4),
        )
        results.append(train(config))
    for result in results:
        assert len(result.history) == 1 and 0 <= result.best_val_top1 <= 1
        assert checkpoint.load(result.out / "last.pt").labels == ["happy", "neutral", "sad"]


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_its_training_batch(name):
    """Each recipe's augmentation (AutoAugment and PCA lighting for ZenNet, ten crops for VGG,
    mixup) yields normalised inputs and soft targets of the right shapes, deterministically."""
    import numpy as np

    from trainer.data import Split
    from trainer.engine.batches import Batches, augment_for, make_batch
    from trainer.engine.views import View

    recipe = RECIPES[name]
    size = recipe.train_size or 32
    view = View(size=size, channels=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    images = torch.randint(0, 255, (6, 1, 48, 48), dtype=torch.uint8)
    split = Split("train", np.arange(6) % 7, images=images[:, 0].numpy())
    data = Batches(split, 48, 1, torch.device("cpu"), 7)

    def batch():
        torch.manual_seed(0)  # AutoAugment draws from the global RNG
        gen, rng = torch.Generator().manual_seed(1), np.random.default_rng(1)
        b = make_batch(
            images, torch.arange(6), data, recipe, view, augment_for(recipe, size), gen, rng, 0
        )
        return b.x, b.y, b.targets

    x, y, targets = batch()
    crops = 10 if recipe.tencrop_train else 1
    assert x.shape == (6 * crops, 3, size, size) and y.shape == (6 * crops,)
    assert targets.shape == (6 * crops, 7)
    assert torch.allclose(targets.sum(1), torch.ones(6 * crops))
    assert torch.equal(x, batch()[0])


def test_stronger_augmentation_does_what_its_settings_say():
    """Shear slants a vertical bar, a view stretched wider than tall narrows it, blur spreads
    an edge (σ 0 leaves it), gamma moves mid-grey either way, noise adds variance; the same
    generator seed repeats all."""
    from trainer.engine.augment import Augment, gaussian_blur, warp

    bar = torch.zeros(1, 1, 48, 48, dtype=torch.uint8)
    bar[..., 20:28] = 255
    n = torch.ones(1)
    straight = warp(bar, 48, 1.0)[0, 0]
    slanted = warp(bar, 48, 1.0, skew=(torch.tan(torch.deg2rad(20 * n)), n))[0, 0]
    narrow = warp(bar, 48, 1.0, skew=(0 * n, 1.5 * n))[0, 0]
    assert torch.equal(straight[0], straight[-1]) and not torch.allclose(slanted[0], slanted[-1])
    assert narrow.sum() < straight.sum() - 48  # fewer columns covered

    edge = straight.expand(2, 1, 48, 48).clone()
    blurred = gaussian_blur(edge, torch.tensor([0.0, 1.5]))
    assert torch.allclose(blurred[0], edge[0], atol=1e-6)
    assert 0 < blurred[1, 0, 24, 19] < 1
    assert torch.allclose(blurred[1].sum(), edge[1].sum(), rtol=1e-3)

    grey = torch.full((64, 1, 48, 48), 128, dtype=torch.uint8)
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    dark = Augment(48, gamma=0.5)(grey, gen())
    assert dark.amin() < 128 / 255 < dark.amax()  # e^±0.5 either way
    noisy = Augment(48, noise=0.1)(grey, gen())
    assert noisy.std() > 0.01 and torch.equal(noisy, Augment(48, noise=0.1)(grey, gen()))


@pytest.mark.slow
def test_model_options_reach_the_builder_and_the_checkpoint(tiny_fer2013, tmp_path, capsys):
    from trainer.cli import main

    torch.set_num_threads(1)
    flags = ["--dataset", "fer2013", "--data", str(tiny_fer2013), "--recipe", "cpu-fast",
             "--epochs", "1", "--batch-size", "64"]  # fmt: skip
    small = ["--model-option", "layers=3", "--model-option", "channels=4"]
    assert (
        main(["train", "--model", "autofernet", *small, *flags, "--out", str(tmp_path / "a")]) == 0
    )
    arch = checkpoint.load(tmp_path / "a" / "last.pt").arch
    assert arch["overrides"]["layers"] == 3 and arch["overrides"]["channels"] == 4
    # 3 cells of 4 channels: the auxiliary head (0.4M) is most of what is left of 2.6M
    assert sum(p.numel() for p in checkpoint.build_model(arch).parameters()) < 500_000
    bad = ["--model-option", "depth=3"]
    assert main(["train", "--model", "vgg-fer-s", *bad, *flags, "--out", str(tmp_path / "b")]) == 2
    assert "model 'vgg-fer-s' with options" in capsys.readouterr().err


@pytest.mark.slow
def test_watch_test_records_the_test_split_without_choosing_on_it(tiny_fer2013, tmp_path):
    """`--watch-test`: the test split's top-1 after every epoch in test-watch.csv (mirror view),
    kept across a resume; best.pt is still chosen on validation alone."""
    from trainer.cli import main
    from trainer.evaluation.watch import TestWatch

    torch.set_num_threads(1)
    out = tmp_path / "watched"
    data = ["--dataset", "fer2013", "--data", str(tiny_fer2013)]
    flags = [*data, "--recipe", "cpu-fast", "--batch-size", "32", "--max-images", "96"]
    assert main(["train", "--model", "vgg-fer-s", *flags, "--epochs", "1", "--watch-test",
                 "--out", str(out)]) == 0  # fmt: skip
    assert main(["train", "--resume", *data, "--epochs", "2", "--out", str(out)]) == 0
    rows = list(csv.DictReader((out / "test-watch.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    state = checkpoint.load(out / "last.pt")
    watch = TestWatch.from_state(state.callbacks["test_watch"])
    assert [r["test_top1"] for r in watch.rows] == [float(r["test_top1"]) for r in rows]
    history = state.history
    assert state.best["epoch"] == max(history, key=lambda r: r.val_top1).epoch
    # each session of the run says what software ran it
    assert [s["from_epoch"] for s in state.provenance] == [1, 2]


def test_the_exponential_decay_and_the_gamma_augmentation_are_two_fields():
    """One `gamma` field once served both: POSTER V2's ×0.98 per epoch also drew its faces'
    gamma from e^±0.98. A checkpoint of that time resumes as it trained."""
    from dataclasses import asdict

    from trainer.engine.recipes import Recipe, get_recipe

    poster = get_recipe("poster")
    assert poster.lr_decay == 0.98 and poster.gamma == 0.0
    assert lr_at(poster, 2.5, Plateau()) == pytest.approx(poster.lr * 0.98**2)
    old = {k: v for k, v in asdict(poster).items() if k != "lr_decay"} | {"gamma": 0.98}
    resumed = Recipe.from_dict(old)
    assert resumed.lr_decay == 0.98 and resumed.gamma == 0.98

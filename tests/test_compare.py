"""`python -m trainer compare`: runs side by side from their metrics.csv, seeds folded."""

from trainer.cli import main
from trainer.engine.checkpoint import EpochRow
from trainer.engine.loop import write_metrics
from trainer.evaluation.compare import group_runs


def _run(folder, val_top1):
    folder.mkdir()
    history = [
        EpochRow(epoch=i + 1, lr=0.01, train_loss=1.0, train_top1=v - 0.05, val_loss=1.0,
                 val_top1=v, val_macro_f1=v, images_per_s=100.0, seconds=60.0)
        for i, v in enumerate(val_top1)
    ]  # fmt: skip
    write_metrics(folder / "metrics.csv", history)
    return str(folder)


def test_seeds_fold_into_one_row_with_their_range(tmp_path, capsys):
    a0 = _run(tmp_path / "probe-s0", [0.30, 0.40, 0.50])
    a1 = _run(tmp_path / "probe-s1", [0.32, 0.46, 0.44])
    b = _run(tmp_path / "other", [0.2, 0.3])
    groups = group_runs([a0, b, a1])
    assert [(g.name, len(g.runs), g.epochs) for g in groups] == [("probe", 2, 3), ("other", 1, 2)]
    assert groups[0].final("val_top1") == [0.50, 0.44]
    assert groups[0].best_val() == [0.50, 0.46]
    assert main(["compare", a0, a1, b, "--plot", str(tmp_path / "curves.png")]) == 0
    out = capsys.readouterr().out
    assert "47.0 (44.0–50.0)" in out and "48.0 (46.0–50.0)" in out  # last, best
    assert (tmp_path / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert len(group_runs([a0, a1], by_seed=False)) == 2


def test_a_run_that_is_not_one_is_named(tmp_path, capsys):
    assert main(["compare", str(tmp_path)]) == 2
    assert "no metrics.csv; expected a run folder written by `train`" in capsys.readouterr().err
    bad = _run(tmp_path / "bad", [0.3])
    text = (tmp_path / "bad" / "metrics.csv").read_text().replace("0.3,", "n/a,", 1)
    (tmp_path / "bad" / "metrics.csv").write_text(text)
    assert main(["compare", bad]) == 2
    assert "metrics.csv: line 2: expected numbers in every column" in capsys.readouterr().err


def test_a_one_epoch_run_has_visible_training_curves(tmp_path, monkeypatch):
    """One epoch is one point a series: drawn as a line alone, curves.png was blank."""
    from trainer.evaluation import plots

    drawn = []
    monkeypatch.setattr(plots, "_save", lambda plt, fig, path: drawn.append(fig))
    row = EpochRow(epoch=1, lr=0.01, train_loss=1.2, train_top1=0.3, val_loss=1.1,
                   val_top1=0.35, val_macro_f1=0.3, images_per_s=100.0, seconds=60.0)  # fmt: skip
    plots.training_curves([row], tmp_path / "curves.png")
    lines = [line for ax in drawn[0].axes for line in ax.lines]
    assert len(lines) == 4
    assert all(line.get_marker() not in (None, "", " ", "None") for line in lines)
    assert all(line.get_markersize() > 0 for line in lines)

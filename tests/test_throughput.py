import json
import math

import pytest
import torch

from trainer.cli import main
from trainer.throughput import (
    DEFAULT_MODELS,
    PerImage,
    per_image_transform,
    synthetic_data,
    throughput,
)


def test_both_paths_train_and_report_positive_rates():
    threads = torch.get_num_threads()
    row = throughput("vgg-fer-s", batch_size=8, seconds=0.2, device="cpu", threads=1, workers=0)
    assert torch.get_num_threads() == threads  # restored
    assert (row.model, row.recipe, row.device, row.threads, row.workers, row.batch_size) == (
        "vgg-fer-s",
        "vgg",
        "cpu",
        1,
        0,
        8,
    )
    assert row.input == "1×40×40"
    for rate in (row.project_img_s, row.baseline_img_s, row.speedup):
        assert rate > 0 and math.isfinite(rate)
    assert row.speedup == pytest.approx(row.project_img_s / row.baseline_img_s)


@pytest.mark.parametrize("name", DEFAULT_MODELS)
def test_baseline_feeds_what_the_project_path_feeds(name):
    from fer_core.models import get_spec
    from trainer.recipes import FAMILY_RECIPE, get_recipe
    from trainer.train import view_of

    recipe = get_recipe(FAMILY_RECIPE[get_spec(name).family])
    view = view_of({"model": name}, recipe)
    size = recipe.train_size or view.size
    images, labels = synthetic_data(4)
    mode = "L" if view.channels == 1 else "RGB"
    x, y = PerImage(images, labels, per_image_transform(recipe, view, size), mode)[0]
    assert x.shape == (view.channels, size, size) and x.dtype == torch.float32
    assert y == labels[0]


def test_cli_json(capsys):
    argv = [
        "throughput",
        "vgg-fer-s",
        "--batch-size",
        "8",
        "--seconds",
        "0.1",
        "--threads",
        "1",
        "--workers",
        "1",
        "--device",
        "cpu",
        "--json",
    ]
    assert main(argv) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["model"] == "vgg-fer-s" and row["workers"] == 1 and row["batch_size"] == 8
    assert row["project_img_s"] > 0 and row["baseline_img_s"] > 0

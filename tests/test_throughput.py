import json
import math

import pytest
import torch

from trainer.cli import main
from trainer.measure.throughput import (
    DEFAULT_MODELS,
    PerImage,
    per_image_transform,
    synthetic_data,
    throughput,
)


def test_both_paths_train_and_report_positive_rates():
    threads = torch.get_num_threads()
    row = throughput(
        "vgg-fer-s", batch_size=8, seconds=0.2, device="cpu", threads=1, workers=0, baseline=True
    )
    assert torch.get_num_threads() == threads  # restored
    assert (row.name, row.recipe, row.device, row.threads, row.workers, row.batch_size) == (
        "vgg-fer-s",
        "vgg",
        "cpu",
        1,
        0,
        8,
    )
    assert row.input == "1×40×40"
    for rate in (row.images_per_s, row.baseline_img_s, row.speedup):
        assert rate > 0 and math.isfinite(rate)
    assert row.speedup == pytest.approx(row.images_per_s / row.baseline_img_s)


def test_precision_is_said_and_bf16_is_chosen_only_where_native():
    from trainer.engine.step import cpu_has_bf16

    row = throughput("vgg-fer-s", batch_size=8, seconds=0.1, device="cpu", precision="fp32")
    assert row.precision.startswith("fp32 (asked for)") and row.baseline_img_s is None
    auto = throughput("vgg-fer-s", batch_size=8, seconds=0.1, device="cpu").precision
    assert auto.startswith("bf16" if cpu_has_bf16() else "fp32")
    forced = throughput("vgg-fer-s", batch_size=8, seconds=0.1, device="cpu", precision="bf16")
    assert forced.precision.startswith("bf16") and "channels-last" in forced.precision
    assert ("emulated" in forced.precision) != cpu_has_bf16()


def test_networks_with_dilated_depthwise_convolutions_train_fp32_on_a_cpu():
    """torch 2.14's oneDNN gives NaN bf16 weight gradients for these layers on a CPU (seen on
    an AVX512-BF16 CPU: Auto-FERNet at L3 C4 went NaN in its first step), so bf16 is never used
    for them there, even when asked for; a network without them keeps bf16."""
    from fer_core.models import create_model
    from trainer.engine.recipes import get_recipe
    from trainer.engine.step import Precision, has_dilated_depthwise

    recipe, cpu = get_recipe("cpu-fast"), torch.device("cpu")
    afn, vgg = create_model("autofernet", layers=3, channels=4), create_model("vgg-fer-s")
    assert has_dilated_depthwise(afn) and not has_dilated_depthwise(vgg)
    for wanted in ("auto", "bf16"):
        chosen = Precision.choose(recipe, cpu, wanted, afn)
        assert chosen.dtype is None and "dilated depthwise" in chosen.describe()
    assert Precision.choose(recipe, cpu, "bf16", vgg).dtype is torch.bfloat16
    row = throughput("autofernet", batch_size=4, seconds=0.1, device="cpu", precision="bf16")
    assert row.precision.startswith("fp32 (CPU bf16 gives NaN")


@pytest.mark.parametrize("name", DEFAULT_MODELS)
def test_baseline_feeds_what_the_project_path_feeds(name):
    from fer_core.models import get_spec
    from trainer.engine.networks import view_of
    from trainer.engine.recipes import FAMILY_RECIPE, get_recipe

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
    assert row["name"] == "vgg-fer-s" and row["images_per_s"] > 0 and row["batch_size"] == 8
    assert row["baseline_img_s"] is None  # the baseline is timed only with --baseline

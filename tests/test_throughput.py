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


@pytest.mark.slow
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


@pytest.mark.slow
def test_precision_is_said_and_bf16_is_chosen_only_where_native():
    from trainer.engine.step import cpu_has_bf16

    row = throughput("vgg-fer-s", batch_size=8, seconds=0.1, device="cpu", precision="fp32")
    assert row.precision.startswith("fp32 (asked for)") and row.baseline_img_s is None
    auto = throughput("vgg-fer-s", batch_size=8, seconds=0.1, device="cpu").precision
    assert auto.startswith("bf16" if cpu_has_bf16() else "fp32")
    forced = throughput("vgg-fer-s", batch_size=8, seconds=0.1, device="cpu", precision="bf16")
    assert forced.precision.startswith("bf16") and "channels-last" in forced.precision
    assert ("emulated" in forced.precision) != cpu_has_bf16()


@pytest.mark.slow
def test_dilated_depthwise_convolutions_alone_run_fp32_in_cpu_bf16():
    """torch 2.14's oneDNN gives NaN bf16 weight gradients for these layers on a CPU (seen on
    an AVX512-BF16 CPU: Auto-FERNet at L3 C4 went NaN in its first step), so in CPU bf16 they
    alone compute in fp32; a network without them is left as it is."""
    from fer_core.models import create_model
    from trainer.engine.recipes import get_recipe
    from trainer.engine.step import Fp32Conv2d, Precision, has_dilated_depthwise

    recipe, cpu = get_recipe("cpu-fast"), torch.device("cpu")
    afn, vgg = create_model("autofernet", layers=3, channels=4), create_model("vgg-fer-s")
    assert has_dilated_depthwise(afn) and not has_dilated_depthwise(vgg)
    chosen = Precision.choose(recipe, cpu, "bf16", afn)
    assert chosen.dtype is torch.bfloat16 and chosen.fp32_dilated
    assert "dilated depthwise convolutions in fp32" in chosen.describe()
    keys = list(afn.state_dict())
    chosen.model(afn)
    assert list(afn.state_dict()) == keys  # checkpoints load either way
    assert sum(isinstance(m, Fp32Conv2d) for m in afn.modules()) == 4
    assert not Precision.choose(recipe, cpu, "bf16", vgg).fp32_dilated
    assert not Precision.choose(recipe, cpu, "fp32", afn).fp32_dilated
    row = throughput("autofernet", batch_size=4, seconds=0.1, device="cpu", precision="bf16")
    assert row.precision.startswith("bf16") and "in fp32" in row.precision


def test_bf16_gradients_with_fp32_dilated_convolutions_match_fp32():
    """The shapes that gave NaN: every gradient is finite, and the dilated convolutions' weight
    gradients point where fp32's do (cosine ≥ 0.97; measured 0.987–0.998, the rest of the
    network being bf16)."""
    import copy

    import torch.nn.functional as F

    from fer_core.models import create_model
    from trainer.engine.recipes import get_recipe
    from trainer.engine.step import Precision

    torch.manual_seed(0)
    net = create_model("autofernet", layers=3, channels=4).train()
    x, y = torch.randn(32, 1, 44, 44), torch.randint(0, 7, (32,))
    recipe, cpu = get_recipe("cpu-fast"), torch.device("cpu")

    def gradients(wanted: str) -> dict[str, torch.Tensor]:
        model = copy.deepcopy(net)
        precision = Precision.choose(recipe, cpu, wanted, model)
        model = precision.model(model)
        with precision.autocast(cpu):
            out = model(precision.input(x))
        F.cross_entropy((out[0] if isinstance(out, tuple) else out).float(), y).backward()
        return {n: p.grad for n, p in model.named_parameters() if p.grad is not None}

    bf16, fp32 = gradients("bf16"), gradients("fp32")
    assert all(torch.isfinite(g).all() for g in bf16.values())
    dilated = [
        n + ".weight"
        for n, m in net.named_modules()
        if isinstance(m, torch.nn.Conv2d) and m.groups > 1 and max(m.dilation) > 1
    ]
    for name in dilated:
        cosine = F.cosine_similarity(bf16[name].flatten(), fp32[name].flatten(), 0)
        assert cosine >= 0.97, name


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

"""Zen-NAS: the Zen-score, the budget check, the mutation rule and a tiny evolution (with
resume). Small inputs (32 px, small batches) keep every test to a few seconds on 2 cores."""

import argparse
import csv
import itertools
import json
import math
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from fer_core.models import create_model
from fer_core.models.structure import INIT_M, INIT_R, ZENNET_M, Structure
from fer_core.models.zennet import ResidualUnit, ShuffleAttention, ZenNet
from trainer.cli import main
from trainer.search import zen
from trainer.search.evolution import (
    SPACES,
    Budget,
    check_budget,
    count_layers,
    mutate,
    narrowest,
    split_blocks,
)
from trainer.search.zen import (
    ZenSearchConfig,
    add_arguments,
    config_from_args,
    score_network,
    search,
    shortcut_note,
    zen_score,
)


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _widen(text):
    """INIT_M with every residual block and the final conv's input twice as wide."""
    for old, new in (
        ("(8,32,2,8,1)", "(8,64,2,16,1)"),
        ("(32,48,2,32,1)", "(64,96,2,64,1)"),
        ("(48,96,2,48,1)", "(96,192,2,96,1)"),
        ("(96,128,2,96,1)", "(192,256,2,192,1)"),
        ("(128,2048,", "(256,2048,"),
    ):
        text = text.replace(old, new)
    return text


WIDE_M = _widen(INIT_M)
DEEP_M = INIT_M.replace("(32,48,2,32,1)", "(32,48,2,32,3)").replace(
    "(48,96,2,48,1)", "(48,96,2,48,3)"
)


# --------------------------------------------------------------------------- Zen-score


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_zen_score_is_deterministic_under_a_seed(variant):
    kwargs = {"resolution": 32, "in_chans": 1, "batch_size": 8, "variant": variant}
    a = zen_score(INIT_M, seed=0, **kwargs)
    assert math.isfinite(a)
    assert zen_score(INIT_M, seed=0, **kwargs) == a
    assert zen_score(INIT_M, seed=1, **kwargs) != a


def test_repeats_average_and_variants_share_delta():
    code = zen.zen_score_details(INIT_R, 32, 1, batch_size=4, repeats=2, variant="code")
    paper = zen.zen_score_details(INIT_R, 32, 1, batch_size=4, repeats=2, variant="paper")
    assert len(code.repeats) == 2 and code.score == pytest.approx(sum(code.repeats) / 2)
    assert code.repeats[0] != code.repeats[1]  # fresh weights and inputs per repeat
    assert code.log_delta == paper.log_delta  # same draws; only σ differs
    # running_var after two passes at momentum 0.1 is 0.81 + 0.19·(batch var): smaller
    assert paper.log_bn[0] > code.log_bn[0]


@pytest.mark.parametrize("variant", ["code", "paper"])
def test_wider_or_deeper_scores_higher(variant):
    scores = {
        name: zen_score(text, 32, 1, batch_size=8, variant=variant)
        for name, text in (("base", INIT_M), ("wide", WIDE_M), ("deep", DEEP_M))
    }
    assert scores["wide"] > scores["base"] + 2
    assert scores["deep"] > scores["base"] + 2


def test_score_network_is_plain_and_default_unchanged():
    plain = score_network(INIT_M, in_chans=1)
    units = [m for m in plain.modules() if isinstance(m, ResidualUnit)]
    assert units and all(u.shortcut is None for u in units)
    assert not any(isinstance(m, ShuffleAttention) for m in plain.modules())
    unit = units[0].eval()
    x = torch.randn(2, 8, 16, 16)
    with torch.no_grad():
        assert torch.equal(unit(x), torch.relu(unit.body(x)))
    # the default network keeps its shortcuts, SA and state-dict keys
    default = ZenNet(INIT_M, in_chans=1)
    explicit = ZenNet(INIT_M, in_chans=1, shortcut="project")
    assert list(default.state_dict()) == list(explicit.state_dict())
    assert any(".shortcut." in k for k in default.state_dict())
    assert not any(".shortcut." in k for k in ZenNet(INIT_M, shortcut="none").state_dict())


# --------------------------------------------------------------------------- budget


@pytest.mark.slow
def test_budget_rejects_with_the_right_reason():
    base = {"resolution": 32, "in_chans": 1, "num_classes": 7}
    ok, reason, figures = check_budget(INIT_M, Budget(1e6, 50e6, 14, None, **base))
    assert ok and reason is None
    assert figures["layers"] == 6 and figures["latency_ms"] is None
    model = create_model("zennet-m-sa", structure=INIT_M, in_chans=1)
    assert figures["params"] == sum(p.numel() for p in model.parameters())
    assert 0 < figures["macs"] < 50e6

    assert check_budget(INIT_M, Budget(max_layers=5, **base))[:2] == (False, "layers")
    # INIT_M's stem has 8 channels, its first bottleneck 8: under a floor of 16, rejected
    assert narrowest(Structure.parse(INIT_M)) == 8
    assert check_budget(INIT_M, Budget(min_width=16, **base))[:2] == (False, "width")
    assert check_budget(INIT_M, Budget(min_width=8, **base)).ok
    assert check_budget(INIT_M, Budget(max_params=figures["params"] - 1, **base))[:2] == (
        False,
        "params",
    )
    assert check_budget(INIT_M, Budget(max_macs=figures["macs"] - 1, **base))[:2] == (
        False,
        "macs",
    )
    ok, reason, timed = check_budget(INIT_M, Budget(max_latency_ms=1e-6, **base))
    assert (ok, reason) == (False, "latency") and timed["latency_ms"] > 0
    assert check_budget(INIT_M, Budget(max_latency_ms=1e4, **base)).ok
    # ZenNet-M has 14 layers: at the default limit, not over it
    assert count_layers(Structure.parse(ZENNET_M)) == 14
    # the network is counted as it will be trained: without INIT_M's projection shortcuts
    plain = check_budget(INIT_M, Budget(options=(("shortcut", "identity"),), **base)).figures
    projections = sum(
        m.weight.numel() + m.bias.numel()
        for name, m in model.named_modules()
        if ".shortcut." in name and isinstance(m, torch.nn.Conv2d)
    )
    assert 0 < plain["params"] < figures["params"] - projections


def test_a_bad_builder_option_fails_before_the_search(tmp_path):
    with pytest.raises(ValueError, match="--model-option: shortcut 'skip': expected one of"):
        search(_tiny(tmp_path / "run", model_options={"shortcut": "skip"}))
    with pytest.raises(ValueError, match=r"--model-option: .*unexpected keyword argument 'depth'"):
        search(_tiny(tmp_path / "run", model_options={"depth": 3}))


# --------------------------------------------------------------------------- mutation


def _check_chain(structure, in_chans):
    blocks = structure.blocks
    assert Structure.parse(structure.to_text()) == structure
    assert blocks[0].c_in == in_chans
    for a, b in itertools.pairwise(blocks):
        assert b.c_in == a.c_out
    for b in blocks:
        assert b.layers < 6
        assert b.c_out % 8 == 0 and b.c_out >= 8
        if b.kind != "conv":
            assert b.bottleneck % 8 == 0 and b.bottleneck >= 8


@pytest.mark.parametrize("space", ["idw", "idw-mb", "xxbl", "xxbl-rn"])
def test_mutation_rules(space):
    init = Structure.parse(SPACES[space].init).with_in_chans(1)
    stride_product = math.prod(b.stride for b in init.blocks)
    rng = np.random.default_rng(0)
    names = Counter()
    for _ in range(40):
        s = init
        for _ in range(8):
            s = mutate(s, rng, space)
            _check_chain(s, 1)
            stem, last = s.blocks[0], s.blocks[-1]
            # the stem changes its width only
            stem_fields = (stem.name, stem.stride, stem.layers)
            assert stem_fields == ("SuperConvK3BNRELU", init.blocks[0].stride, 1)
            assert last.name == "SuperConvK1BNRELU" and last.layers == 1
            if SPACES[space].fixed_last:  # IDW_fixfc: the final 1×1 conv keeps its width
                assert last.c_out == 2048
            if SPACES[space].tied_bottleneck:
                assert all(b.bottleneck == b.c_out for b in s.blocks[1:-1])
            assert math.prod(b.stride for b in s.blocks) == stride_product
            middle = s.blocks[1:-1]
            assert all(b.name in SPACES[space].block_names for b in middle)
            names.update(b.name for b in middle)
    assert len(names) > 4  # block types are redrawn within the family


def test_mutations_stay_within_the_grammar():
    """A final 1×1 conv already near the grammar's widest (16,384) is never grown past it: the
    child must parse (a search over a MAC budget grew one to 18,360 and stopped)."""
    wide = Structure.parse(
        "SuperConvK3BNRELU(1,32,1,1)SuperResK3K3(32,32,2,32,1)SuperConvK1BNRELU(32,16000,1,1)"
    )
    rng = np.random.default_rng(0)
    widths = {mutate(wide, rng, "xxbl").blocks[-1].c_out for _ in range(200)}
    assert max(widths) == 16384 and min(widths) < 16000


def test_tied_space_keeps_identity_shortcuts():
    """In the IDW space a block whose bottleneck differs from its output has no unit of equal
    input and output shape, so MobileNetV2's identity rule leaves it plain; tied, only each
    block's first unit goes without a shortcut."""
    untied = Structure.parse(
        "SuperConvK3BNRELU(1,16,2,1)SuperResIDWE4K3(16,24,2,32,3)SuperConvK1BNRELU(24,64,1,1)"
    )
    tied = SPACES["idw-mb"].conform(untied)
    assert tied.blocks[1].bottleneck == 24 and tied.blocks[0] == untied.blocks[0]

    def shortcuts(structure):
        net = ZenNet(structure, shortcut="identity", sum_relu=False)
        return [u.shortcut is not None for u in net.modules() if isinstance(u, ResidualUnit)]

    assert shortcuts(untied) == [False] * 6
    assert shortcuts(tied) == [False] + [True] * 5
    config = ZenSearchConfig(out="unused", space="idw-mb")
    assert all(b.bottleneck == b.c_out for b in config.initial_structure().blocks[1:-1])
    identity = {"shortcut": "identity"}
    assert shortcut_note(replace(config, model_options=identity)) is None
    assert "--space idw-mb" in shortcut_note(ZenSearchConfig(out="u", model_options=identity))
    assert shortcut_note(ZenSearchConfig(out="u")) is None


def test_xxbl_final_conv_may_change_width():
    rng = np.random.default_rng(1)
    widths = {mutate(INIT_R, rng, "xxbl").blocks[-1].c_out for _ in range(200)}
    assert len(widths) > 1


def test_split_blocks_with_six_or_more_sublayers():
    s = Structure.parse(
        "SuperConvK3BNRELU(1,8,2,1)SuperResIDWE2K5(8,32,2,16,7)SuperResK3K3(32,40,2,16,12)"
        "SuperConvK1BNRELU(40,64,1,1)"
    )
    blocks = split_blocks(s.blocks)
    assert [(b.c_in, b.c_out, b.stride, b.layers) for b in blocks] == [
        (1, 8, 2, 1),
        (8, 32, 2, 3),
        (32, 32, 1, 4),
        (32, 40, 2, 3),
        (40, 40, 1, 3),
        (40, 40, 1, 3),
        (40, 40, 1, 3),
        (40, 64, 1, 1),
    ]
    assert sum(b.layers for b in blocks) == count_layers(s)
    assert Structure.parse(Structure(tuple(blocks)).to_text()).blocks == tuple(blocks)


# --------------------------------------------------------------------------- evolution


def _tiny(out, **changes):
    values = {
        "out": out,
        "population": 6,
        "iterations": 15,
        "resolution": 32,
        "score_batch": 4,
        "max_params": 1e6,
        "max_macs": 12e6,
        "checkpoint_every": 4,
        "seed": 3,
        **changes,
    }
    return ZenSearchConfig(**values)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("zen") / "run"
    return search(_tiny(out))


def _comparable(out):
    summary = json.loads((out / "search.json").read_text())
    for key in ("wall_s", "config"):
        summary.pop(key)
    return summary, (out / "search.csv").read_text()


@pytest.mark.slow
def test_tiny_search_writes_a_trainable_structure(tiny_run):
    out = tiny_run.out
    for name in ("structure.txt", "search.json", "search.csv", "progress.png", zen.STATE_FILE):
        assert (out / name).is_file(), name
    text = (out / "structure.txt").read_text().strip()
    assert text == tiny_run.structure
    model = create_model("zennet-m-sa", structure=text, in_chans=1).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 32, 32)).shape == (1, 7)
    summary = json.loads((out / "search.json").read_text())
    assert summary["structure"] == text and summary["score"] == tiny_run.score
    assert summary["score"] == max(m["score"] for m in summary["population"])
    assert len(summary["population"]) <= 6
    assert summary["params"] <= 1e6 and summary["macs"] <= 12e6 and summary["layers"] <= 14
    assert summary["scored"] + sum(summary["rejections"].values()) == 15
    rows = list(csv.DictReader((out / "search.csv").open()))
    assert [int(r["iteration"]) for r in rows] == list(range(1, 16))
    assert all(bool(r["score"]) != bool(r["rejected"]) for r in rows)
    parents = [r["parent"] for r in rows]
    assert parents[0] == "init" and any(p != "init" for p in parents)  # members evolve too
    assert summary["rejections"]  # the budget bites at this size
    # the score recomputed outside the search agrees
    assert zen_score(text, 32, 1, batch_size=4, seed=3) == tiny_run.score
    with pytest.raises(FileExistsError, match="--resume"):
        search(_tiny(out))


@pytest.mark.slow
@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_resume_reaches_the_uninterrupted_result(tiny_run, tmp_path, monkeypatch, interrupt):
    out = tmp_path / "run"
    real = zen.zen_score
    calls = {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 7:
            raise interrupt("stop")
        return real(*args, **kwargs)

    monkeypatch.setattr(zen, "zen_score", failing)
    with pytest.raises(interrupt):
        search(_tiny(out))
    monkeypatch.setattr(zen, "zen_score", real)
    state = json.loads((out / zen.STATE_FILE).read_text())
    assert 0 < state["iteration"] < 15
    result = search(_tiny(out), resume=True)
    assert result.structure == tiny_run.structure and result.score == tiny_run.score
    assert _comparable(out) == _comparable(tiny_run.out)
    with pytest.raises(ValueError, match="population"):
        search(_tiny(out, population=7), resume=True)


# --------------------------------------------------------------------------- CLI hooks


def test_a_search_resumes_from_the_command_line_with_its_own_seed_and_threads(tmp_path):
    """`search --resume --out DIR` alone continues: flags left out keep the stored values
    (a default of 0 threads used to replace the stored 1 and be refused)."""
    out = str(tmp_path / "zen")
    tiny = ["--population", "6", "--resolution", "32", "--score-batch", "4", "--max-macs", "12e6"]
    first = ["search", "--method", "zen", "--out", out, "--iterations", "4", *tiny]
    assert main([*first, "--seed", "3", "--threads", "1"]) == 0
    assert main(["search", "--method", "zen", "--resume", "--out", out, "--iterations", "6"]) == 0
    summary = json.loads((tmp_path / "zen" / "search.json").read_text())
    assert summary["iterations"] == 6
    assert (summary["config"]["seed"], summary["config"]["threads"]) == (3, 1)


def test_cli_hooks_build_the_config(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser.add_argument_group("zen"))
    for flag, dest in (("--out", "out"), ("--seed", "seed"), ("--threads", "threads")):
        parser.add_argument(flag, dest=dest, default=None)
    parser.add_argument("--resume", action="store_true")
    init = tmp_path / "init.txt"
    init.write_text(INIT_R + "\n")
    args = parser.parse_args(
        ["--out", str(tmp_path / "o"), "--space", "xxbl", "--init", str(init), "--max-params",
         "0", "--max-latency-ms", "4", "--score-variant", "paper", "--in-chans", "3",
         "--min-width", "32",
         "--model-option", "shortcut=identity", "--model-option", "sum_relu=False"]
    )  # fmt: skip
    config, resume = config_from_args(args)
    assert not resume
    assert config.space == "xxbl" and config.init == INIT_R and config.variant == "paper"
    assert config.max_params is None and config.max_latency_ms == 4.0 and config.in_chans == 3
    assert config.min_width == 32 and config.budget().min_width == 32
    assert (config.population, config.iterations, config.max_layers) == (64, 1000, 14)
    assert config.model_options == {"shortcut": "identity", "sum_relu": False}
    assert config.budget().options == (("shortcut", "identity"), ("sum_relu", False))
    bare, _ = config_from_args(parser.parse_args([]))
    assert bare == ZenSearchConfig(out="runs/zen-idw")

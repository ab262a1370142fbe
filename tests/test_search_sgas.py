"""SGAS search: edge scores and greedy decisions on hand-made α, the schedule, a tiny end-to-end
search on a FER2013-format file (Training split only), and exact resume."""

import argparse
import csv
import json

import pytest
import torch

from fer_core.models.genotype import PRIMITIVES, Genotype
from tests.conftest import fer2013_rows, write_fer2013_csv
from trainer.search.sgas import (
    Decision,
    SearchState,
    SGASConfig,
    add_arguments,
    config_from_args,
    decide,
    edge_probs,
    edge_scores,
    genotype_edges,
    make_genotype,
    search,
)
from trainer.search.supernet import EDGES, NUM_EDGES, NUM_OPS, PRUNED, UNDECIDED, node_edges

SEP3 = PRIMITIVES.index("sep_conv_3x3")
CONV1 = PRIMITIVES.index("conv_1x1")
UNDECIDED_ALL = (UNDECIDED,) * NUM_EDGES


@pytest.fixture
def cpu_small():
    """One thread and the native kernels: on these tiny tensors oneDNN's setup dominates."""
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    yield
    torch.set_num_threads(threads)
    torch.backends.mkldnn.enabled = mkldnn


def confident(alpha, edge, op, strength=6.0):
    alpha[edge] = 0.0
    alpha[edge, op] = strength
    return alpha


# ------------------------------------------------------------------ scoring and decisions


def test_edge_probs_renormalise_over_non_none_ops():
    alpha = torch.randn(NUM_EDGES, NUM_OPS)
    p, pt = edge_probs(alpha)
    assert torch.allclose(p.sum(-1), torch.ones(NUM_EDGES, dtype=p.dtype))
    assert pt.shape == (NUM_EDGES, NUM_OPS - 1)
    assert torch.allclose(pt, p[:, 1:] / p[:, 1:].sum(-1, keepdim=True))


def test_confident_edge_wins_and_is_fixed_to_its_op():
    alpha = 0.01 * torch.randn(NUM_EDGES, NUM_OPS, generator=torch.Generator().manual_seed(0))
    confident(alpha, 6, SEP3)
    scores = edge_scores(alpha, range(NUM_EDGES))
    assert max(scores, key=scores.get) == 6
    assert scores[6] == pytest.approx(1.0)
    status, (edge, op, score) = decide(alpha, UNDECIDED_ALL)
    assert (edge, op, score) == (6, "sep_conv_3x3", pytest.approx(1.0))
    assert status[6] == SEP3
    assert sum(s != UNDECIDED for s in status) == 1  # node 2 has one fixed edge: no pruning


def test_mass_on_none_loses_importance():
    alpha = torch.zeros(NUM_EDGES, NUM_OPS)
    confident(alpha, 0, PRIMITIVES.index("none"), 8.0)  # EI ≈ 0
    scores = edge_scores(alpha, range(NUM_EDGES))
    assert scores[0] == pytest.approx(0.0)


def test_second_fixed_edge_prunes_the_nodes_other_inputs():
    alpha = torch.zeros(NUM_EDGES, NUM_OPS)
    status = list(UNDECIDED_ALL)
    status[9] = CONV1  # node 3 already has one fixed input (from c_{k-2})
    confident(alpha, 9, CONV1, 9.0)  # decided: must never be chosen again
    confident(alpha, 12, SEP3)
    status, (edge, op, _) = decide(alpha, status)
    assert (edge, op) == (12, "sep_conv_3x3")
    node3 = node_edges(3)
    assert [status[e] for e in node3] == [CONV1, PRUNED, PRUNED, SEP3, PRUNED]
    assert all(status[e] == UNDECIDED for e in range(NUM_EDGES) if e not in node3)


def test_decided_edges_are_never_chosen_again():
    alpha = torch.zeros(NUM_EDGES, NUM_OPS)
    status = list(UNDECIDED_ALL)
    for e in (0, 1):  # node 0 done
        status[e] = SEP3
        confident(alpha, e, SEP3, 10.0)
    confident(alpha, 4, CONV1, 2.0)
    new, (edge, op, _) = decide(alpha, status)
    assert (edge, op) == (4, "conv_1x1")
    assert new[:2] == (SEP3, SEP3)


def test_greedy_decisions_end_with_two_inputs_per_node():
    gen = torch.Generator().manual_seed(1)
    status, seen = UNDECIDED_ALL, []
    while True:
        alpha = torch.randn(NUM_EDGES, NUM_OPS, generator=gen)
        status, choice = decide(alpha, status)
        if choice is None:
            break
        assert choice[0] not in seen
        seen.append(choice[0])
    assert len(seen) == 8  # one decision per fixed edge; the rest are pruned on the way
    for node in range(4):
        states = [status[e] for e in node_edges(node)]
        assert sum(s > PRUNED for s in states) == 2
        assert sum(s == PRUNED for s in states) == len(states) - 2
    edges, notes = genotype_edges(alpha, status)
    assert notes == [] and len(edges) == 8
    assert all(op != "none" for op, _ in edges)


def test_criterion_2_prefers_the_stable_edge():
    alpha = torch.zeros(NUM_EDGES, NUM_OPS)
    for e in (0, 1):  # identical now: same importance and certainty
        alpha[e, SEP3], alpha[e, CONV1] = 3.0, 2.0
    # edge 2 stays uniform (lowest certainty); history: edge 0 used to prefer conv_1x1
    past = alpha.clone()
    past[0, SEP3], past[0, CONV1] = 0.0, 4.0
    history = [edge_probs(past)[1]] * 4
    status = [UNDECIDED if e < 3 else PRUNED for e in range(NUM_EDGES)]
    one = edge_scores(alpha, [0, 1, 2], criterion=1)
    assert one[0] == pytest.approx(one[1]) and one[2] == pytest.approx(0.0)
    two = edge_scores(alpha, [0, 1, 2], criterion=2, history=history)
    assert two[1] == pytest.approx(1.0) and two[0] == pytest.approx(0.0)
    assert decide(alpha, status, criterion=1)[1][0] == 0  # tie → lowest index
    assert decide(alpha, status, criterion=2, history=history)[1][0] == 1
    # only the last `window` epochs count: with an old unstable past outside it, edge 0 is fine
    stable = [edge_probs(alpha)[1]] * 2
    assert edge_scores(alpha, [0, 1], 2, history + stable, window=2)[0] == pytest.approx(1.0)


def test_cut_short_genotype_is_completed_by_p():
    alpha = torch.zeros(NUM_EDGES, NUM_OPS)
    status = list(UNDECIDED_ALL)
    status[0], status[1] = SEP3, CONV1
    confident(alpha, 4, PRIMITIVES.index("ghost"))
    confident(alpha, 3, PRIMITIVES.index("dil_conv_5x5"), 4.0)
    genotype, notes = make_genotype(
        {"normal": alpha, "reduce": alpha}, {"normal": status, "reduce": status}
    )
    assert genotype.normal[:4] == (
        ("sep_conv_3x3", 0),
        ("conv_1x1", 1),
        ("dil_conv_5x5", 1),
        ("ghost", 2),
    )
    assert len(notes) == 6  # nodes 1–3 of both cells
    assert Genotype.parse(genotype.to_text()) == genotype


def test_schedule_and_flags():
    config = SGASConfig("fer2013", "x", "y")
    assert config.planned_epochs() == 50  # 9 + 5·8 + 1
    decision_epochs = [e for e in range(1, 46) if config.is_decision_epoch(e)]
    assert decision_epochs == [10, 15, 20, 25, 30, 35, 40, 45]
    assert SGASConfig("fer2013", "x", "y", epochs=7).planned_epochs() == 7

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--criterion", "2", "--batch-increase", "4", "--lr", "0.01"])
    args.dataset, args.data, args.out, args.seed, args.device = "fer2013", "d", "o", None, None
    config = config_from_args(args)
    assert (config.criterion, config.batch_increase, config.lr) == (2, 4, 0.01)
    assert config.batch_size == 24 and config.seed == 0 and config.device == "auto"


def test_search_state_round_trips_through_a_safe_load(tmp_path):
    state = SearchState(
        status={"normal": (SEP3, *UNDECIDED_ALL[1:]), "reduce": UNDECIDED_ALL},
        history={"normal": [torch.rand(NUM_EDGES, NUM_OPS - 1)], "reduce": []},
        frozen={c: torch.randn(NUM_EDGES, NUM_OPS) for c in ("normal", "reduce")},
        batch_size=12,
        rows=[{"epoch": 1, "lr": 0.02, "decisions": "normal e0=sep_conv_3x3"}],
        decisions=[Decision(1, "normal", 0, 0, 0, "sep_conv_3x3", 0.5)],
        epoch=1,
    )
    torch.save(state.to_plain(), tmp_path / "state.pt")
    plain = torch.load(tmp_path / "state.pt", weights_only=True)
    back = SearchState.from_plain(plain, torch.device("cpu"))
    assert (back.status, back.rows, back.decisions) == (state.status, state.rows, state.decisions)
    assert (back.batch_size, back.epoch) == (12, 1)
    assert torch.equal(back.history["normal"][0], state.history["normal"][0])
    assert back.history["reduce"] == []
    assert all(torch.equal(back.frozen[c], state.frozen[c]) for c in ("normal", "reduce"))


def test_search_precision_keeps_narrow_supernets_contiguous_and_cpu_searches_fp32():
    from trainer.search import sgas

    cpu = torch.device("cpu")
    wide = sgas._precision(SGASConfig("fer2013", "x", "y", channels=16), cpu)
    assert (wide.dtype, wide.channels_last) == (None, True)  # amp is off by default
    narrow = sgas._precision(SGASConfig("fer2013", "x", "y", channels=4, amp=True), cpu)
    assert (narrow.dtype, narrow.channels_last) == (None, False)
    # the supernet's dil_conv ops break in CPU bf16 (trainer.engine.step), amp or not
    assert "dil_conv" in sgas._precision(SGASConfig("fer2013", "x", "y", amp=True), cpu).why


# ------------------------------------------------------------------ end to end


@pytest.fixture(scope="module")
def small_fer2013(tmp_path_factory):
    """16 Training, 7 PublicTest and 7 PrivateTest faces."""
    path = tmp_path_factory.mktemp("sgas") / "fer2013.csv.gz"
    return write_fer2013_csv(
        path, fer2013_rows({"Training": 16, "PublicTest": 7, "PrivateTest": 7}, seed=3)
    )


def training_only(path):
    """The dataset with its validation and test splits removed, so that a search that touched
    them would fail."""
    from trainer.data import read_dataset

    dataset = read_dataset("fer2013", path)
    for role in ("val", "test"):
        del dataset.splits[dataset.key(role)]
        setattr(dataset, role, None)
    return dataset


def tiny_config(data, out, **overrides):
    values = {
        "layers": 3,
        "channels": 2,
        "crop": 16,
        "warmup_epochs": 0,
        "decision_freq": 1,
        "batch_size": 8,
        "batch_increase": 2,
        **overrides,
    }
    return SGASConfig("fer2013", str(data), str(out), **values)


@pytest.fixture(scope="module")
def tiny_search(small_fer2013, tmp_path_factory):
    threads, mkldnn = torch.get_num_threads(), torch.backends.mkldnn.enabled
    torch.set_num_threads(1)
    torch.backends.mkldnn.enabled = False
    out = tmp_path_factory.mktemp("sgas-run") / "search"
    try:
        result = search(tiny_config(small_fer2013, out), dataset=training_only(small_fer2013))
    finally:
        torch.set_num_threads(threads)
        torch.backends.mkldnn.enabled = mkldnn
    return out, result


@pytest.mark.slow
def test_tiny_search_finishes_and_writes_its_files(tiny_search):
    from fer_core.models import create_model

    out, result = tiny_search
    assert result.completed and result.epochs_run == 8
    for name in ("genotype.txt", "cells.png", "search.csv", "alphas.json", "state.pt"):
        assert (out / name).is_file(), name
    assert (out / "cells.png").read_bytes()[:4] == b"\x89PNG"
    genotype = Genotype.from_file(out / "genotype.txt")
    assert genotype == result.genotype
    assert genotype.normal_concat == genotype.reduce_concat == (2, 3, 4, 5)
    assert len(result.decisions) == 16  # 8 per cell
    model = create_model("autofernet", genotype=str(out / "genotype.txt"), layers=3, channels=4)
    assert model.eval()(torch.rand(2, 1, 44, 44)).shape == (2, 7)
    alphas = json.loads((out / "alphas.json").read_text())
    assert alphas["primitives"] == list(PRIMITIVES)
    assert len(alphas["normal"]["alpha"]) == NUM_EDGES
    assert "undecided" not in alphas["normal"]["status"] + alphas["reduce"]["status"]
    # the decisions agree with the genotype
    for d in result.decisions:
        if d.cell == "normal":
            assert (d.op, EDGES[d.edge][1]) in genotype.normal


def test_tiny_search_uses_the_training_split_only(tiny_search):
    _, result = tiny_search
    assert result.source_split == "train"
    assert result.train_images + result.arch_images == 16  # the whole Training split
    assert result.train_images == result.arch_images == 8


def test_batch_grows_after_each_decision(tiny_search):
    out, _ = tiny_search
    with open(out / "search.csv") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    assert [int(r["batch_size"]) for r in rows] == [8 + 2 * k for k in range(8)]
    assert all(r["decisions"].count("=") == 2 for r in rows)  # normal and reduce each epoch
    state = torch.load(out / "state.pt", weights_only=True)
    assert state["batch_size"] == 8 + 2 * 8


def test_refuses_to_overwrite_a_search(tiny_search, small_fer2013):
    out, _ = tiny_search
    with pytest.raises(FileExistsError, match="--resume"):
        search(tiny_config(small_fer2013, out))


@pytest.mark.slow
def test_resume_continues_exactly(small_fer2013, tmp_path, monkeypatch, cpu_small):
    from trainer.search import sgas

    dataset = training_only(small_fer2013)
    config = dict(epochs=3, batch_size=5, batch_increase=1, criterion=2, history=2)
    whole = search(tiny_config(small_fer2013, tmp_path / "whole", **config), dataset=dataset)
    assert not whole.completed and whole.epochs_run == 3  # cut short: completed by p

    write_csv = sgas._write_csv

    def crash_after_one(path, rows):
        if len(rows) == 2:
            raise KeyboardInterrupt  # killed during epoch 2's bookkeeping
        write_csv(path, rows)

    monkeypatch.setattr(sgas, "_write_csv", crash_after_one)
    part_out = tmp_path / "part"
    with pytest.raises(KeyboardInterrupt):
        search(tiny_config(small_fer2013, part_out, **config), dataset=dataset)
    assert torch.load(part_out / "state.pt", weights_only=True)["epoch"] == 1
    monkeypatch.setattr(sgas, "_write_csv", write_csv)
    resumed = search(tiny_config(small_fer2013, part_out), resume=True, dataset=dataset)

    assert resumed.genotype == whole.genotype
    assert resumed.decisions == whole.decisions
    assert resumed.epochs_run == 3
    a = torch.load(tmp_path / "whole" / "state.pt", weights_only=True)
    b = torch.load(part_out / "state.pt", weights_only=True)
    for key in ("alpha_normal", "alpha_reduce", "classifier.weight"):
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["rows"][-1]["train_loss"] == b["rows"][-1]["train_loss"]
    timing = ("images_per_s", "seconds")
    strip = lambda rows: [{k: v for k, v in r.items() if k not in timing} for r in rows]  # noqa: E731
    assert strip(a["rows"]) == strip(b["rows"])

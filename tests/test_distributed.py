"""Training on several processes under torchrun (issue 32): the shares of a step make up the
single process's batch, 2 processes train the network 1 process trains, a run resumes across
numbers of processes, rank 0 alone writes the run folder, and a failed process ends the run in
one line with the folder resumable.

The runs here are real: `python -m torch.distributed.run --standalone --nproc_per_node 2` over
gloo, 1 thread a process, on a tiny set in FER2013's CSV format. They compare in fp32 with
augmentation and dropout off, so that 1 and 2 processes compute the same function: what is left
is the order of floating-point sums (BatchNorm's statistics summed per process, then over the
processes; DDP averaging two gradients instead of one backward pass over the whole batch),
about 1e-7 relative a step. bf16 would round those differences to 1e-3 and up; the failure
test trains in the default precision (bf16 on a CPU with AVX512-BF16) to show DDP runs there.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import ROOT, fer2013_rows, write_fer2013_csv
from trainer.engine import checkpoint, distributed
from trainer.engine.distributed import Sampler, World

# every random draw off: 1 and 2 processes then train the same function
SAME_FUNCTION = [
    "--recipe", "cpu-fast", "--batch-size", "32", "--lr", "0.02", "--warmup-epochs", "0",
    "--zoom", "1", "1", "--shift", "0", "--rotate", "0", "--no-flip", "--brightness", "0",
    "--contrast", "0", "--erase-p", "0", "--model-option", "dropout=0", "--precision", "fp32",
    "--no-channels-last", "--max-images", "64",
]  # fmt: skip
# where a run's numbers must agree: fp32 sums in another order (module docstring); measured
# after the 2 steps of an epoch: 7e-6 and 3e-8
WEIGHTS_ATOL, LOSS_RTOL = 5e-5, 1e-6
# after 2 more steps the tiny network, fitting its 64 faces at once (train top-1 from 23 % to
# 94 %), magnifies the rounding: one process on 2 threads instead of 1 ends 7e-4 from itself in
# the weights (4e-5 in the loss); 1 → 2 against 2 → 1 processes measured 8e-4 and 7e-4
RESUMED_ATOL, RESUMED_RTOL = 3e-3, 3e-3

# The entry torchrun starts in each process: `python -m trainer` with a watch on what a rank
# other than 0 writes under the run folder (Python's audit events: every open for writing,
# rename, removal, folder made), and, where the test asks, a failure of rank 1 in its 2nd epoch.
ENTRY = """
import os, sys
rank, out = int(os.environ["RANK"]), os.path.realpath(os.environ["TEST_OUT"])
written = []

def audit(event, args):
    if event == "open":
        path, mode, flags = args
        writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT
        if not (mode and set(mode) & set("wax+")) and not (flags or 0) & writes:
            return
    elif event not in ("os.rename", "os.remove", "os.mkdir", "os.rmdir", "os.chmod"):
        return
    path = args[0]
    if isinstance(path, (str, bytes, os.PathLike)):
        path = os.path.realpath(os.fsdecode(path))
        if path == out or path.startswith(out + os.sep):
            written.append(f"{event} {path}")

if rank != 0:
    sys.addaudithook(audit)
fail = os.environ.get("TEST_FAIL")
if fail and rank == 1:
    from trainer.engine import loop
    epoch = loop.Run.epoch
    def failing(self, e):
        if e == 1:
            if fail == "kill":
                os.kill(os.getpid(), 9)
            raise ValueError("rank 1's own failure")
        return epoch(self, e)
    loop.Run.epoch = failing
from trainer.cli import main
code = main(sys.argv[1:])
if rank != 0:
    print(f"rank {rank} wrote {written}", flush=True)
sys.exit(code)
"""


# ---------------------------------------------------------------------- without processes


def test_the_shares_of_a_step_are_the_single_process_batch():
    order = Sampler(3).order(5, 100)
    shares = [Sampler(3, World(r, 4)).order(5, 100) for r in range(4)]
    assert {len(s) for s in shares} == {25}  # as many steps in every process
    per_process = 32 // 4
    for start in range(0, 100, 32):  # step by step, the four shares are the batch
        step = start // 32 * per_process
        together = torch.cat([s[step : step + per_process] for s in shares])
        assert sorted(together.tolist()) == sorted(order[start : start + 32].tolist())
    padded = [Sampler(0, World(r, 3)).share(torch.arange(7)) for r in range(3)]
    assert [p.tolist() for p in padded] == [[0, 3, 6], [1, 4, 0], [2, 5, 1]]  # 7 → 9 images
    assert Sampler(0, World(0, 4)).share(torch.arange(2)).tolist() == [0]  # fewer than W
    assert Sampler(0, World(3, 4)).share(torch.arange(2)).tolist() == [1]


def test_one_process_draws_as_it_always_did():
    gen = torch.Generator().manual_seed(7 * 1_000_003 + 3)  # the loop's order before issue 32
    assert torch.equal(Sampler(7).order(3, 50), torch.randperm(50, generator=gen))
    assert distributed.stream_seed(7, 3, 0) == 7 * 1_000_003 + 3
    assert len({distributed.stream_seed(7, 3, r) for r in range(8)}) == 8


def test_the_global_batch_is_split_evenly_or_refused():
    assert distributed.per_process_batch(128, World(0, 4)) == 32
    with pytest.raises(ValueError, match=r"--batch-size 128: .* give a multiple of 3"):
        distributed.per_process_batch(128, World(0, 3))
    assert distributed.wants_sync("auto", 16, World(0, 2))
    assert not distributed.wants_sync("auto", 32, World(0, 2))
    assert distributed.wants_sync("on", 64, World(0, 2))
    assert not distributed.wants_sync("on", 16, World())  # one process: nothing to sync


def test_torchruns_variables_are_read_or_refused_in_one_line():
    assert distributed.from_env({}) == World()
    env = {"WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}
    world = distributed.from_env(env)
    assert (world.rank, world.size, world.machines, world.is_main) == (2, 4, 2, False)
    with pytest.raises(ValueError, match=r"RANK='x': expected an integer"):
        distributed.from_env({**env, "RANK": "x"})
    with pytest.raises(ValueError, match=r"0 ≤ RANK < WORLD_SIZE"):
        distributed.from_env({**env, "RANK": "4"})
    assert distributed.tell("error: x", ValueError("x")) == "error: x"  # one process: as is


@pytest.mark.slow
def test_synced_batchnorm_on_one_process_is_batchnorm(tmp_path):
    """The CPU sync (sums all-reduced over gloo) computes what BatchNorm computes: outputs,
    gradients and running statistics."""
    import torch.distributed as dist
    from torch import nn

    store = dist.FileStore(str(tmp_path / "store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        plain = nn.BatchNorm2d(5, momentum=0.3)
        nn.init.uniform_(plain.weight)
        synced = distributed.sync_batchnorm(nn.Sequential(_copy(plain)), torch.device("cpu"))[0]
        assert type(synced).__name__ == "SyncedBatchNorm2d"
        x = torch.randn(6, 5, 4, 4) * 3 + 1
        outs = []
        for bn in (plain, synced):
            xi = x.clone().requires_grad_()
            y = bn(xi)
            (y * torch.linspace(-1, 1, y.numel()).view_as(y)).sum().backward()
            outs.append((y, xi.grad, bn.weight.grad, bn.running_mean, bn.running_var))
        for a, b in zip(*outs, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert synced.state_dict().keys() == plain.state_dict().keys()
    finally:
        dist.destroy_process_group()


def _copy(module):
    import copy

    return copy.deepcopy(module)


# ---------------------------------------------------------------------- with torchrun


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("ddp-data") / "fer2013.csv"
    return write_fer2013_csv(path, fer2013_rows({"Training": 128, "PublicTest": 32,
                                                 "PrivateTest": 32}))  # fmt: skip


def train_flags(data: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "--dataset", "fer2013", "--data", str(data), "--out", str(out),
            "--threads", "1", *extra]  # fmt: skip


def torchrun(tmp: Path, out: Path, args: list[str], fail: str = "", processes: int = 2):
    """`python -m torch.distributed.run --standalone --nproc_per_node N ENTRY args`."""
    entry = tmp / "entry.py"
    entry.write_text(ENTRY)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TEST_OUT": str(out), "TEST_FAIL": fail,
           "OMP_NUM_THREADS": "1"}  # fmt: skip
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    return subprocess.run(
        [*launcher, "--nproc_per_node", str(processes), str(entry), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


def one_process(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=240,
    )


def told(stderr: str) -> list[str]:
    """The trainer's own lines of a run's stderr (progress bars drawn with carriage returns)."""
    lines = stderr.replace("\r", "\n").splitlines()
    return [line for line in lines if line.startswith(("error:", "interrupted"))]


def rows(out: Path, name: str = "metrics.csv") -> list[dict[str, float]]:
    return [{k: float(v) for k, v in r.items()} for r in csv.DictReader(open(out / name))]


def max_weight_diff(a: Path, b: Path) -> float:
    wa, wb = checkpoint.load(a / "last.pt").model, checkpoint.load(b / "last.pt").model
    assert wa.keys() == wb.keys()
    return max(float((wa[k].double() - wb[k].double()).abs().max()) for k in wa)


@pytest.fixture(scope="module")
def first_epochs(tiny_csv, tmp_path_factory):
    """One epoch (4 steps of 32) on 1 process and on 2 (16 each, BatchNorm synced), with the
    test split watched: (folder of the 1-process run, of the 2-process run, torchrun's run)."""
    tmp = tmp_path_factory.mktemp("ddp")
    flags = [*SAME_FUNCTION, "--model", "vgg-fer-s", "--epochs", "1", "--watch-test"]
    one, two = tmp / "one", tmp / "two"
    started = time.perf_counter()
    done = one_process(train_flags(tiny_csv, one, *flags))
    assert done.returncode == 0, done.stderr
    ran = torchrun(tmp, two, train_flags(tiny_csv, two, *flags))
    assert ran.returncode == 0, ran.stderr
    print(f"1 process then 2: {time.perf_counter() - started:.1f} s")
    return one, two, ran


@pytest.mark.slow
def test_two_processes_train_what_one_process_trains(first_epochs):
    one, two, ran = first_epochs
    assert "2 processes (gloo), 16 images each a step (global batch 32)" in ran.stderr
    assert "BatchNorm statistics synced over the global batch" in ran.stderr
    (a,), (b,) = rows(one), rows(two)
    for key in ("train_loss", "val_loss"):
        assert b[key] == pytest.approx(a[key], rel=LOSS_RTOL), key
    for key in ("train_top1", "val_top1", "val_macro_f1", "lr"):
        assert b[key] == a[key], key
    assert max_weight_diff(one, two) < WEIGHTS_ATOL
    watched = [(one / "test-watch.csv").read_text(), (two / "test-watch.csv").read_text()]
    assert watched[0].splitlines()[0] == watched[1].splitlines()[0]
    state = checkpoint.load(two / "last.pt")
    assert state.sampler == {"seed": 0, "world_size": 2, "epoch": 1}
    assert state.provenance[-1]["processes"] == 2
    # the unwrapped network: the keys of a network trained on one process
    assert state.model.keys() == checkpoint.load(one / "last.pt").model.keys()


@pytest.mark.slow
def test_only_rank_0_writes_the_run_folder(first_epochs):
    one, two, ran = first_epochs
    assert "rank 1 wrote []" in ran.stdout, ran.stdout
    assert {p.name for p in two.iterdir()} == {p.name for p in one.iterdir()}
    assert ran.stderr.count("epoch 1: train") == 1  # rank 0 tells, once
    assert ran.stdout.count("best validation top-1") == 1


@pytest.mark.slow
def test_a_run_resumes_on_another_number_of_processes(first_epochs, tiny_csv, tmp_path):
    """1 → 2 and 2 → 1: the second epoch starts from the first one's network and draws the same
    batches, so both end where the other does."""
    one, two, _ = first_epochs
    up, down = tmp_path / "up", tmp_path / "down"
    shutil.copytree(one, up)
    shutil.copytree(two, down)
    more = ["--resume", "--epochs", "2"]
    ran = torchrun(tmp_path, up, train_flags(tiny_csv, up, *more))
    assert ran.returncode == 0, ran.stderr
    assert "resuming a run trained on 1 process(es) on 2" in ran.stderr
    assert "epochs 2–2" in ran.stderr
    done = one_process(train_flags(tiny_csv, down, *more))
    assert done.returncode == 0, done.stderr
    assert "resuming a run trained on 2 process(es) on 1" in done.stderr
    for out in (up, down):
        assert [r["epoch"] for r in rows(out)] == [1, 2]
        assert checkpoint.load(out / "last.pt").epoch == 1
    assert rows(up)[0] == rows(one)[0] and rows(down)[0] == rows(two)[0]  # kept as trained
    # the clean training figure is scored over both processes' shares and the snapshots follow
    # it (none here: two short epochs leave BatchNorm's running statistics unsettled)
    clean = [[r["train_clean_top1"] for r in rows(out, "train-clean.csv")] for out in (up, down)]
    assert clean[0] == pytest.approx(clean[1], abs=0.02)
    for out, figures in zip((up, down), clean, strict=True):
        for level in (85, 90):
            assert (out / f"snapshot-{level}.pt").is_file() == (100 * max(figures) >= level)
    assert "rank 1 wrote []" in ran.stdout
    # a fresh network would score about 1.9 here: these continue the trained one
    second = rows(up)[1]["train_loss"]
    assert second == pytest.approx(rows(down)[1]["train_loss"], rel=RESUMED_RTOL) and second < 1.8
    assert max_weight_diff(up, down) < RESUMED_ATOL


@pytest.mark.slow
def test_relabel_and_distillation_on_two_processes_as_on_one(first_epochs, tiny_csv, tmp_path):
    """`relabel` (softmax rule at τ_r 0.9: a few flips in the 2nd epoch at this learning rate)
    distilling from a teacher that sees each process's share of the batch: the flips counted
    by each process add up to the single process's, and the two fine-tunes agree."""
    one, _, _ = first_epochs
    flags = [str(one / "last.pt"), "--dataset", "fer2013", "--data", str(tiny_csv), "--no-fes",
             "--relabel-threshold", "0.9", "--epochs", "2", "--lr", "0.001", "--threads", "1",
             "--precision", "fp32", "--teacher", str(one / "best.pt")]  # fmt: skip
    single, double = tmp_path / "one", tmp_path / "two"
    done = one_process(["relabel", *flags, "--out", str(single)])
    assert done.returncode == 0, done.stderr
    ran = torchrun(tmp_path, double, ["relabel", *flags, "--out", str(double)])
    assert ran.returncode == 0, ran.stderr
    flips = [(out / "flips.csv").read_text() for out in (single, double)]
    assert flips[0] == flips[1] and ",all,all,0," not in flips[0].splitlines()[2]
    assert "rank 1 wrote []" in ran.stdout
    for a, b in zip(rows(single), rows(double), strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=RESUMED_RTOL)
    assert max_weight_diff(single, double) < RESUMED_ATOL


@pytest.mark.slow
@pytest.mark.parametrize("fail", ["raise", "kill"])
def test_a_failed_process_ends_the_run_in_one_line_and_it_resumes(tiny_csv, tmp_path, fail):
    """Rank 1 fails in the 2nd epoch (an error of its own, or killed outright): one line tells
    it, no trainer traceback, and the folder resumes from the 1st epoch: on 1 process, or on 2
    where it ends bit for bit as a run never stopped (augmentation and bf16 on: every draw is
    a function of seed, epoch and rank)."""
    out = tmp_path / "run"
    flags = ["--model", "vgg-fer-s", "--recipe", "cpu-fast", "--batch-size", "64",
             "--warmup-epochs", "0", "--epochs", "2"]  # fmt: skip
    ran = torchrun(tmp_path, out, train_flags(tiny_csv, out, *flags), fail=fail)
    assert ran.returncode != 0
    ours = told(ran.stderr)
    if fail == "raise":
        assert ours == ["error: rank 1 of 2: rank 1's own failure"], ran.stderr
    else:
        # rank 0 tells: it lost contact, or torchrun's SIGTERM came first (after the epoch's save)
        assert len(ours) == 1 and "another process of the run" in ours[0], ran.stderr
        assert ours[0].endswith("continue with --resume")
    assert "trainer/" not in "".join(  # torchrun's own report has a traceback; ours none
        line for line in ran.stderr.splitlines() if line.lstrip().startswith("File ")
    )
    assert checkpoint.load(out / "last.pt").epoch == 0  # the 1st epoch, whole
    if fail == "kill":
        done = one_process(train_flags(tiny_csv, out, "--resume"))
        assert done.returncode == 0, done.stderr  # the lock left behind does not hold it
        assert [r["epoch"] for r in rows(out)] == [1, 2]
        return
    done = torchrun(tmp_path, out, train_flags(tiny_csv, out, "--resume"))
    assert done.returncode == 0, done.stderr
    straight = tmp_path / "straight"
    ran = torchrun(tmp_path, straight, train_flags(tiny_csv, straight, *flags))
    assert ran.returncode == 0, ran.stderr
    untimed = [[{**r, "images_per_s": 0, "seconds": 0} for r in rows(o)] for o in (out, straight)]
    assert untimed[0] == untimed[1]
    assert max_weight_diff(out, straight) == 0.0


@pytest.mark.slow
def test_what_every_process_refuses_is_told_once(tmp_path, tiny_csv):
    """Both processes refuse the same thing: rank 0 says it, rank 1 sees that and keeps quiet."""
    out = tmp_path / "odd"
    ran = torchrun(tmp_path, out, train_flags(tiny_csv, out, "--model", "vgg-fer-s",
                                              "--batch-size", "33"))  # fmt: skip
    assert told(ran.stderr) == [
        "error: --batch-size 33: the recipe's batch is the global batch, split evenly over the "
        "run's 2 processes; give a multiple of 2"
    ], ran.stderr
    ran = torchrun(tmp_path, tmp_path / "none", ["framing", "--dataset", "fer2013", "--data",
                                                 str(tiny_csv)])  # fmt: skip
    refusal = "error: framing: runs on one process; under torchrun (2 processes) only train, "
    assert told(ran.stderr) == [refusal + "relabel, kfold run"], ran.stderr


def test_metrics_of_a_split_gather_in_order_on_one_process():
    """Sharded validation on one process is the whole split (the gather is the identity)."""
    rows_ = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert distributed.shard(6) == slice(0, 6)
    assert distributed.gather_rows(rows_, 6) is rows_
    assert [distributed.shard(7, World(r, 3)) for r in range(3)] == [
        slice(0, 2), slice(2, 4), slice(4, 7)
    ]  # fmt: skip

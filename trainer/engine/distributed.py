"""Training on several processes: `torchrun` starts one process per GPU (or per CPU socket, or
per machine) and this module joins them into one run with DistributedDataParallel.

The processes ("ranks") find each other through the variables torchrun sets (RANK, WORLD_SIZE,
LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT); `start` joins the process group, over
NCCL when the run trains on CUDA and gloo on CPUs. Without those variables, or with one
process, nothing here does anything and a run is the single process it always was, bit for bit.

In a run of W processes:
- the recipe's batch is the global batch: each process takes batch / W images a step (refused
  unless W divides it). The learning rate, schedule and steps per epoch stay the recipe's, as
  the gradient DDP averages over W equal shares is the gradient of the global batch;
- every process draws the same (seed, epoch) order and takes every W-th image of it
  (`Sampler`), so a step's shares together are the single process's batch; the order is padded
  to a multiple of W with its first images so that every process takes as many steps;
- BatchNorm: statistics of fewer than `SYNC_BELOW` images are noisy (the group-norm paper's
  finding, Wu & He 2018: BN degrades below about 16-32 per batch), so below that per process
  the layers normalise with the whole global batch's statistics (`sync_batchnorm`: torch's
  SyncBatchNorm on CUDA; on CPUs, where torch has none, `SyncedBatchNorm*`: the same sums
  all-reduced over gloo). At 32 or more per process each normalises with its own share, as
  ghost batch norm does, and the running statistics are rank 0's (DDP broadcasts them);
- metrics: training loss and top-1 are summed over processes; validation is sharded (each
  process scores a contiguous block) and the logits gathered, so every process computes the
  same figures, the plateau schedule included;
- only rank 0 claims the run folder (its lock) and writes in it; the checkpoint holds the
  unwrapped network, so a run resumes on any number of processes;
- a failure is told once (`tell`): the process that failed says what, prefixed with its rank;
  the others, stopped by torchrun's agent or by the lost connection, stay quiet, unless no
  process said anything (a process killed outright), which rank 0 then tells.
"""

from __future__ import annotations

import copy
import os
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

SYNC_BELOW = 32  # images per process below which BatchNorm statistics are synced
SYNC_BN = ("auto", "on", "off")
TELL_WAIT = 3.0  # seconds a rank waits to see whether rank 0 told the same failure
# what a collective raises when another process of the run went away (gloo's transport, NCCL's
# watchdog); torch's own DistError classes are recognised by type
LOST = ("Connection reset by peer", "Connection closed by peer", "Broken pipe", "Read error",
        "Write error", "NCCL communicator was aborted", "Timed out", "timed out")  # fmt: skip


@dataclass(frozen=True)
class World:
    """This process's place in the run; one process: rank 0 of 1."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    backend: str = ""  # gloo | nccl once joined

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def machines(self) -> int:
        return max(1, self.size // max(1, self.local_size))

    def describe(self) -> str:
        where = f" on {self.machines} machines" if self.machines > 1 else ""
        return f"{self.size} processes ({self.backend or 'not joined'}){where}"


def from_env(env: os._Environ | dict[str, str] = os.environ) -> World:
    """The world torchrun's variables describe (one process where WORLD_SIZE is unset)."""
    if "WORLD_SIZE" not in env:
        return World()

    def number(name: str, default: int | None = None) -> int:
        text = env.get(name)
        if text is None and default is not None:
            return default
        try:
            return int(text)
        except (TypeError, ValueError):
            raise ValueError(
                f"{name}={text!r}: expected an integer (torchrun sets it; start the run with "
                "torchrun, or unset WORLD_SIZE for one process)"
            ) from None

    size = number("WORLD_SIZE")
    rank = number("RANK", 0 if size == 1 else None)
    local_rank = number("LOCAL_RANK", 0)
    local_size = number("LOCAL_WORLD_SIZE", size)
    if size < 1 or not 0 <= rank < size or not 0 <= local_rank < max(local_size, 1):
        raise ValueError(
            f"RANK={rank}, LOCAL_RANK={local_rank}, WORLD_SIZE={size}: expected "
            "0 ≤ RANK < WORLD_SIZE and 0 ≤ LOCAL_RANK < LOCAL_WORLD_SIZE"
        )
    return World(rank, size, local_rank, local_size)


_joined: World | None = None


def launched() -> bool:
    """True when torchrun started this process as one of several."""
    return from_env().distributed


def current() -> World:
    """The joined world, or before `start` the one torchrun's variables describe (so that
    `is_main` is known before the data is read; variables `start` would refuse: one process,
    so that the refusal itself is told)."""
    if _joined is not None:
        return _joined
    try:
        return from_env()
    except ValueError:
        return World()


def is_main() -> bool:
    return current().is_main


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def device_for(device: torch.device, world: World | None = None) -> torch.device:
    """A run's device in this process: CUDA device LOCAL_RANK in a run on several processes."""
    world = world or current()
    if device.type != "cuda" or not world.distributed:
        return device
    if world.local_rank >= torch.cuda.device_count():
        raise ValueError(
            f"LOCAL_RANK {world.local_rank}: this machine has {torch.cuda.device_count()} CUDA "
            "device(s); give torchrun --nproc_per_node no more than that"
        )
    return torch.device("cuda", world.local_rank)


def start(device: torch.device) -> World:
    """Join the run's process group (once; later calls return the same world): NCCL on CUDA,
    gloo on CPUs. One process: nothing is joined."""
    global _joined
    if _joined is not None:
        return _joined
    world = from_env()
    if not world.distributed:
        return world
    device = device_for(device, world)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    backend = backend_for(device)
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    try:
        dist.init_process_group(backend, device_id=device if device.type == "cuda" else None)
    except (dist.DistError, RuntimeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ValueError(
            f"rank {world.rank} of {world.size}: could not join the run at {where} over "
            f"{backend} ({first})"
        ) from None
    _joined = World(world.rank, world.size, world.local_rank, world.local_size, backend)
    return _joined


def stop() -> None:
    """Leave the process group (at the end of a verb that finished: a failed one exits
    without waiting on processes that may be gone)."""
    global _joined
    if _joined is not None and dist.is_initialized():
        dist.destroy_process_group()
    _joined = None


# ---------------------------------------------------------------------- the global batch


def per_process_batch(batch_size: int, world: World) -> int:
    """The images each process takes a step: the recipe's (global) batch over the processes."""
    if batch_size % world.size:
        raise ValueError(
            f"--batch-size {batch_size}: the recipe's batch is the global batch, split evenly "
            f"over the run's {world.size} processes; give a multiple of {world.size}"
        )
    return batch_size // world.size


def stream_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of a process's augmentation draws in an epoch: rank 0's is the single
    process's, so that one process trains as it always did; the others draw their own."""
    if rank == 0:
        return seed * 1_000_003 + epoch
    return int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])


@dataclass
class Sampler:
    """This process's share of an epoch's order: the order (a permutation, or with class
    weights a draw with replacement) is drawn from (seed, epoch) alike in every process, padded
    with its first images to a multiple of the processes, and every `size`-th image from
    `rank` taken. Its state is (seed, world size): an epoch's batches follow from them, so a
    resume on another number of processes draws its epochs from the same orders."""

    seed: int
    world: World = field(default_factory=World)

    def order(self, epoch: int, n: int, weights: torch.Tensor | None = None) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        if weights is None:
            order = torch.randperm(n, generator=gen)
        else:
            order = torch.multinomial(weights, n, True, generator=gen)
        return self.share(order)

    def share(self, order: torch.Tensor) -> torch.Tensor:
        size = self.world.size
        if size == 1 or not len(order):
            return order
        pad = -len(order) % size
        padded = torch.cat([order, order.repeat(pad // len(order) + 1)[:pad]])
        return padded[self.world.rank :: size]

    def state_dict(self) -> dict[str, Any]:
        return {"seed": self.seed, "world_size": self.world.size}


# ---------------------------------------------------------------------- reductions


def all_sum(*values: float) -> list[float]:
    """Each value summed over the processes (float64)."""
    world = current()
    if not world.distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t)
    return t.tolist()


def all_max(value: float) -> float:
    if not current().distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t)


def all_sum_tensor(t: torch.Tensor) -> torch.Tensor:
    """`t` summed over the processes (a copy; `t` itself on one process)."""
    if not current().distributed:
        return t
    out = t.to(_collective_device(), copy=True)
    dist.all_reduce(out)
    return out.to(t.device)


def shard(n: int, world: World | None = None) -> slice:
    """This process's contiguous block of n items (all of them on one process)."""
    world = world or current()
    return slice(world.rank * n // world.size, (world.rank + 1) * n // world.size)


def gather_rows(rows: np.ndarray, n: int) -> np.ndarray:
    """Every process's block of rows (`shard`) put back together in order, on every process."""
    world = current()
    if not world.distributed:
        return rows
    sizes = [shard(n, World(r, world.size)).stop - shard(n, World(r, world.size)).start
             for r in range(world.size)]  # fmt: skip
    longest = max(sizes)
    device = _collective_device()
    mine = torch.zeros((longest, *rows.shape[1:]), dtype=torch.float32, device=device)
    mine[: len(rows)] = torch.from_numpy(np.asarray(rows, dtype=np.float32))
    parts = [torch.empty_like(mine) for _ in range(world.size)]
    dist.all_gather(parts, mine)
    return torch.cat([p[:s] for p, s in zip(parts, sizes, strict=True)]).cpu().numpy()


def broadcast_buffers(model: nn.Module) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) in every process: the network that
    is validated everywhere is the one rank 0 saves."""
    if not current().distributed:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, 0)


def _collective_device() -> torch.device:
    # NCCL reduces CUDA tensors only
    if current().backend == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


# ---------------------------------------------------------------------- BatchNorm


def wants_sync(choice: str, per_process: int, world: World) -> bool:
    """Whether BatchNorm is synced: `choice` auto syncs below `SYNC_BELOW` images a process."""
    if choice not in SYNC_BN:
        raise ValueError(f"--sync-bn {choice!r}: expected one of {', '.join(SYNC_BN)}")
    if not world.distributed:
        return False
    return choice == "on" or (choice == "auto" and per_process < SYNC_BELOW)


class _AllSum(torch.autograd.Function):
    """A sum over the processes whose backward pass sums the gradients over them too (each
    process's loss depends on every process's share through the sum)."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad


class _Synced:
    """A BatchNorm whose training statistics are the global batch's: the per-channel sums of
    every process all-reduced (differentiably, so the backward pass sums the gradients of the
    statistics too), in fp32. In eval mode, or without a process group, a plain BatchNorm.
    The same parameters, buffers and state-dict keys as the layer it replaces."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_available() and dist.is_initialized()):
            return super().forward(x)
        all_reduce = _AllSum.apply
        dims = [0, *range(2, x.dim())]
        shape = [1, -1] + [1] * (x.dim() - 2)
        x32 = x.float()
        count = torch.tensor([x32.numel() / x32.shape[1]], dtype=torch.float32, device=x.device)
        total = all_reduce(torch.cat([x32.sum(dims), count]))
        n = total[-1]
        mean = total[:-1] / n
        centred = x32 - mean.view(shape)
        var = all_reduce((centred * centred).sum(dims)) / n  # 2nd pass: no E[x²] − mean² loss
        y = centred * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = (
                    1.0 / float(self.num_batches_tracked) if self.momentum is None
                    else self.momentum
                )  # fmt: skip
                unbiased = var.detach() * (n / (n - 1).clamp(min=1))
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(unbiased, factor)
        return y.to(x.dtype)


class SyncedBatchNorm1d(_Synced, nn.BatchNorm1d):
    pass


class SyncedBatchNorm2d(_Synced, nn.BatchNorm2d):
    pass


class SyncedBatchNorm3d(_Synced, nn.BatchNorm3d):
    pass


_SYNCED = {nn.BatchNorm1d: SyncedBatchNorm1d, nn.BatchNorm2d: SyncedBatchNorm2d,
           nn.BatchNorm3d: SyncedBatchNorm3d}  # fmt: skip


def sync_batchnorm(model: nn.Module, device: torch.device) -> nn.Module:
    """`model` with its BatchNorm layers normalising over the global batch: torch's
    SyncBatchNorm on CUDA, `SyncedBatchNorm*` on CPUs (swapped in place: the same fields)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    for m in model.modules():
        if type(m) in _SYNCED:
            m.__class__ = _SYNCED[type(m)]
    return model


# ---------------------------------------------------------------------- DDP


def unused_parameters(model: nn.Module, example: torch.Tensor, aux_used: bool) -> list[str]:
    """The parameters a training step leaves without a gradient (an auxiliary head whose loss
    weight is 0), found on a copy with one backward pass: DDP must be told of them, and looks
    for them every step only then."""
    probe = copy.deepcopy(model).train()
    with torch.random.fork_rng(devices=[example.device] if example.device.type == "cuda" else []):
        out = probe(example)
    logits, aux = out if isinstance(out, tuple) else (out, None)
    loss = logits.float().sum()
    if aux is not None and aux_used:
        loss = loss + aux.float().sum()
    loss.backward()
    return [n for n, p in probe.named_parameters() if p.requires_grad and p.grad is None]


def wrap(model: nn.Module, device: torch.device, find_unused: bool) -> nn.Module:
    """The network as DDP trains it (rank 0's weights broadcast to every process now; the
    gradients averaged in every backward pass)."""
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        model, device_ids=ids, find_unused_parameters=find_unused
    )


# ---------------------------------------------------------------------- failures


def _store():
    """The run's key-value store (torchrun's agent holds it, so it outlives a failed process)."""
    try:
        return dist.distributed_c10d._get_default_store()
    except (RuntimeError, ValueError, AttributeError):
        return None


def lost_contact(err: BaseException) -> bool:
    """Whether `err` is a collective failing because another process of the run went away."""
    if isinstance(err, dist.DistError):
        return True
    return isinstance(err, RuntimeError) and any(w in str(err) for w in LOST)


def tell(line: str, err: BaseException) -> str | None:
    """What this process prints as the one line of the failure that ends it (None: nothing).
    One process: `line`. Several: a failure of this process's own is recorded in the run's
    store and told, prefixed with the rank unless it is rank 0 (whose line stands for the run),
    and not at all by a rank whose rank 0 told the same within `TELL_WAIT` s (every process
    refusing the same flag says it once). A process stopped by another's failure (its
    connection lost, or torchrun's SIGTERM: a KeyboardInterrupt) says nothing, except rank 0
    when no process told anything: a process was killed outright (out of memory), or the whole
    run was interrupted (Ctrl-C)."""
    world = current()
    if not world.distributed:
        return line
    store = _store()
    secondary = isinstance(err, KeyboardInterrupt) or lost_contact(err)
    if secondary:
        if not world.is_main or _told(store) > 0:
            return None
        if isinstance(err, KeyboardInterrupt):  # Ctrl-C, or torchrun's SIGTERM: either
            return line.replace(
                "interrupted:",
                "interrupted, or another process of the run was killed (torchrun's report names "
                "it):",
                1,
            )
        first = (str(err).strip().splitlines() or [""])[0][:160]
        return (
            f"error: lost contact with another process of the run ({first}): it was killed "
            "or its machine failed (torchrun's report names it); the run folder holds the last "
            "finished epoch: continue with --resume"
        )
    _record(store, world, line)
    if world.is_main:
        return line
    if _main_told(store, line):
        return None
    host = f" on {socket.gethostname()}" if world.machines > 1 else ""
    # on a line of its own: rank 0's progress bar may stand half drawn on the same terminal
    return f"\nerror: rank {world.rank} of {world.size}{host}: {line.removeprefix('error: ')}"


_KEY = "fer-trainer/failure"


def _record(store, world: World, line: str) -> None:
    if store is None:
        return
    try:
        store.set(f"{_KEY}/{world.rank}", line)
        store.add(f"{_KEY}/count", 1)
    except (RuntimeError, dist.DistError):
        pass  # the store is gone with the run: the line is still printed


def _told(store) -> int:
    if store is None:
        return 0
    try:
        return int(store.add(f"{_KEY}/count", 0))
    except (RuntimeError, dist.DistError):
        return 0


def _main_told(store, line: str) -> bool:
    if store is None:
        return False
    key = f"{_KEY}/0"
    try:  # polled: a store's wait that times out prints a warning of its own
        deadline = time.monotonic() + TELL_WAIT
        while not store.check([key]):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return store.get(key).decode(errors="replace") == line
    except (RuntimeError, dist.DistError):
        return False

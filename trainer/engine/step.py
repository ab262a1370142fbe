"""One optimisation step, and what it runs in.

Precision: bf16 autocast for the forward and backward passes where the hardware computes bf16
natively (CUDA with the recipe's `amp`; CPUs with AVX512-BF16 or AMX), fp32 elsewhere — on a CPU
without native bf16 the emulation is slower than fp32. The loss, the gradients' clipping and the
optimiser step stay fp32 (the parameters are fp32; autocast only casts the convolutions' inputs).
Channels-last memory where the recipe asks for it, and always with CPU bf16, where oneDNN's
blocked bf16 kernels want it (measured: `python -m trainer throughput`). In a network with
dilated depthwise convolutions (Auto-FERNet's dil_conv), those layers alone run in fp32 inside
CPU bf16 autocast (`Fp32Conv2d`): torch 2.14's oneDNN computes their bf16 channels-last weight
gradients as NaN for some shapes (a 4-channel 5×5 dilation-2 convolution on 32 × 44 × 44 does so
every time), while the rest of the network keeps bf16's speed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer.engine.recipes import Recipe

PRECISIONS = ("auto", "bf16", "fp32")


class NonFiniteLoss(ValueError):
    """The loss became NaN or infinite (a learning rate too high, most often): the run cannot
    continue from this state."""


@cache
def cpu_has_bf16() -> bool:
    """True where the CPU computes bf16 natively (Linux flags avx512_bf16 or amx_bf16)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def _dilated_depthwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups > 1 and max(m.dilation) > 1


def has_dilated_depthwise(model: nn.Module) -> bool:
    """True where `model` has a grouped, dilated convolution: the layer whose bf16 backward on a
    CPU is broken (module docstring)."""
    return any(_dilated_depthwise(m) for m in model.modules())


class Fp32Conv2d(nn.Conv2d):
    """A convolution that computes in fp32 inside an autocast region (its input cast up, its
    output fp32): the same parameters and state-dict keys as the `nn.Conv2d` it replaces."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            return super().forward(x.float())


def dilated_depthwise_in_fp32(model: nn.Module) -> nn.Module:
    """`model` with each grouped, dilated `nn.Conv2d` turned into an `Fp32Conv2d` in place."""
    for m in model.modules():
        if type(m) is nn.Conv2d and _dilated_depthwise(m):
            m.__class__ = Fp32Conv2d  # same fields, another forward: weights stay where they are
    return model


@dataclass(frozen=True)
class Precision:
    dtype: torch.dtype | None  # autocast dtype; None = fp32 throughout
    channels_last: bool
    why: str
    fp32_dilated: bool = False  # dilated depthwise convolutions in fp32 (CPU bf16)

    @property
    def name(self) -> str:
        return "bf16" if self.dtype is torch.bfloat16 else "fp32"

    def describe(self) -> str:
        memory = "channels-last" if self.channels_last else "NCHW"
        return f"{self.name} ({self.why}), {memory}"

    @classmethod
    def choose(
        cls,
        recipe: Recipe,
        device: torch.device,
        wanted: str = "auto",
        model: nn.Module | None = None,
    ) -> Precision:
        """`wanted`: auto (bf16 where native), bf16 (also where a CPU only emulates it — slower,
        for checking accuracy), fp32. `model`, where given, is checked for layers whose CPU bf16
        backward is broken: those then run in fp32 (`model()` sets them up)."""
        if wanted not in PRECISIONS:
            raise ValueError(f"--precision {wanted!r}: expected one of {', '.join(PRECISIONS)}")
        if device.type == "cuda":
            native = torch.cuda.is_bf16_supported()
            if wanted == "bf16" and not native:
                raise ValueError("--precision bf16: this GPU has no bf16; use fp32 or auto")
            use = wanted == "bf16" or (wanted == "auto" and native and recipe.amp)
            why = "CUDA autocast" if use else "asked for" if wanted == "fp32" else "no CUDA bf16"
        else:
            native = cpu_has_bf16()
            use = wanted == "bf16" or (wanted == "auto" and native)
            why = (
                "asked for" if wanted == "fp32"
                else "the CPU has AVX512-BF16/AMX" if native
                else "emulated: this CPU lacks AVX512-BF16/AMX, slower than fp32" if use
                else "the CPU lacks AVX512-BF16/AMX"
            )  # fmt: skip
        bf16_cpu = use and device.type == "cpu"
        islands = bf16_cpu and model is not None and has_dilated_depthwise(model)
        if islands:
            why += "; dilated depthwise convolutions in fp32: their CPU bf16 gradients are NaN"
        return cls(torch.bfloat16 if use else None, recipe.channels_last or bf16_cpu, why, islands)

    def model(self, model: nn.Module) -> nn.Module:
        if self.fp32_dilated:
            dilated_depthwise_in_fp32(model)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def input(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def autocast(self, device: torch.device):
        return torch.autocast(
            device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None
        )


@dataclass
class Batch:
    """One training batch as it moves through a step. `x01` is the augmented (and mixed) batch
    in [0, 1] before normalisation: what teachers see in their own views. Callbacks may replace
    `y` and `targets` (relabeling) and keep per-batch data in `extras` (teacher logits)."""

    x01: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor  # the labels the batch's accuracy counts against
    targets: torch.Tensor  # soft targets of the loss, N × classes
    index: torch.Tensor  # positions in the training split
    epoch: int
    extras: dict[str, Any] = field(default_factory=dict)


def smooth(targets: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Label smoothing of target distributions (N × classes)."""
    return targets * (1 - smoothing) + smoothing / targets.shape[1]


def soft_targets(y: torch.Tensor, classes: int, smoothing: float) -> torch.Tensor:
    return smooth(F.one_hot(y, classes).float(), smoothing)


class Step:
    """Forward (with the auxiliary head where the network has one), loss against the batch's
    soft targets plus the callbacks' terms, backward, clipping and the optimiser (SAM: twice).
    Callbacks see the first forward pass's logits (`on_logits`) before the loss is formed, and
    add terms to it (`extra_loss`) in every pass."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        recipe: Recipe,
        device: torch.device,
        precision: Precision,
        callbacks: Sequence[Any] = (),
    ):
        self.model, self.optimizer, self.recipe = model, optimizer, recipe
        self.device, self.precision, self.callbacks = device, precision, callbacks

    def loss(self, batch: Batch, first: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, detached float logits)."""
        with self.precision.autocast(self.device):
            out = self.model(batch.x)
        logits, aux = out if isinstance(out, tuple) else (out, None)
        logits = logits.float()  # the loss in fp32
        if first:
            for cb in self.callbacks:
                cb.on_logits(batch, logits.detach())
        loss = F.cross_entropy(logits, batch.targets)
        if aux is not None and self.recipe.aux_weight:
            loss = loss + self.recipe.aux_weight * F.cross_entropy(aux.float(), batch.targets)
        for cb in self.callbacks:
            extra = cb.extra_loss(batch, logits)
            if extra is not None:
                loss = loss + extra
        return loss, logits.detach()

    def __call__(self, batch: Batch) -> tuple[float, torch.Tensor]:
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        self.optimizer.zero_grad(set_to_none=True)
        loss, logits = self.loss(batch)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise NonFiniteLoss(
                f"the training loss became {value} at epoch {batch.epoch + 1}; lower --lr (now "
                f"{self.optimizer.param_groups[0]['lr']:.3g}) or set --grad-clip; the last "
                "finished epoch's checkpoint is intact"
            )
        loss.backward()
        if self.recipe.optimizer == "sam-adam":
            self._sam_second_pass(batch, params)
        if self.recipe.grad_clip:
            nn.utils.clip_grad_norm_(params, self.recipe.grad_clip)
        self.optimizer.step()
        return value, logits

    def _sam_second_pass(self, batch: Batch, params: list[torch.Tensor]) -> None:
        """Ascend to the worst point within radius ρ, take the gradient there, come back."""
        grads = [p.grad for p in params if p.grad is not None]
        norm = torch.norm(torch.stack([g.norm(2) for g in grads]), 2) + 1e-12
        moved = []
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    e = p.grad * (self.recipe.sam_rho / norm)
                    p.add_(e)
                    moved.append((p, e))
        self.optimizer.zero_grad(set_to_none=True)
        self.loss(batch, first=False)[0].backward()
        with torch.no_grad():
            for p, e in moved:
                p.sub_(e)


# ---------------------------------------------------------------------- optimiser and schedule


def make_optimizer(model: nn.Module, recipe: Recipe) -> torch.optim.Optimizer:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if recipe.decay_norm_and_bias or p.ndim > 1 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": recipe.weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    if recipe.optimizer == "sgd":
        return torch.optim.SGD(
            groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov
        )
    return torch.optim.Adam(groups, lr=recipe.lr)  # adam, sam-adam: `Recipe` checked the name


@dataclass
class Plateau:
    """ReduceLROnPlateau on validation top-1 (mode max), as data so it lives in the checkpoint."""

    scale: float = 1.0
    best: float = -1.0
    bad_epochs: int = 0

    def update(self, value: float, factor: float, patience: int) -> None:
        if value > self.best:
            self.best, self.bad_epochs = value, 0
            return
        self.bad_epochs += 1
        if self.bad_epochs > patience:
            self.scale *= factor
            self.bad_epochs = 0


def lr_at(recipe: Recipe, progress: float, plateau: Plateau) -> float:
    """Learning rate at `progress` epochs into the run (fractional: updated every step)."""
    if recipe.warmup_epochs and progress < recipe.warmup_epochs:
        return recipe.lr * progress / recipe.warmup_epochs
    if recipe.schedule == "cosine":
        span = max(recipe.epochs - recipe.warmup_epochs, 1e-9)
        t = min((progress - recipe.warmup_epochs) / span, 1.0)
        return recipe.lr * 0.5 * (1 + math.cos(math.pi * t))
    if recipe.schedule == "exponential":
        return recipe.lr * recipe.lr_decay ** math.floor(progress)
    if recipe.schedule == "plateau":
        return recipe.lr * plateau.scale
    return recipe.lr  # constant: `Recipe` checked the name

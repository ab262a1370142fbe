"""Zen-NAS evolution helpers: the two search spaces, the mutation rule and the budget check
(Zen-NAS). Pure structure-string work, apart from the budget check, which builds the
network as it will be trained (Shuffle Attention, residual links, classifier) to count it.

Mutation. A random mutable block is replaced by a random sample of that block's space:
- out and bottleneck channels are each multiplied by a factor drawn from CHANNEL_FACTORS and
  rounded to a multiple of 8 (at least 8), independently;
- sub-layers L become L + {-2, ..., 2}, at least 1;
- a residual block's type is redrawn within the space's family;
- SuperConv blocks (the stem, and in the XXBL space the final 1×1 conv) only change their
  output channels; in the IDW space the final 1×1 conv is fixed (Zen-NAS's IDW_fixfc) and is
  never picked. For XXBL we follow Zen-NAS's XXBL space, where the last SuperConv is an
  ordinary channel-mutable block: its width may change, its kernel, stride and L do not.
- strides never change; the next block's input channels follow the new output;
- afterwards every block with 6 or more sub-layers is split in two (⌊L/2⌋ then ⌈L/2⌉, the
  second at stride 1), so the sum of sub-layers is unchanged.

The "idw-mb" space is the IDW space with every block's bottleneck tied to its output width,
as MobileNetV2's stages are: after a mutation every bottleneck is set to its block's output
width (the drawn one is discarded, so the random stream matches the IDW space's). With MobileNetV2's
identity shortcuts (`--model-option shortcut=identity`) a unit keeps its shortcut only where its
input and output shapes agree, and in the IDW space the pair of units around a bottleneck of
another width has none: a searched 24-unit structure there is a plain network that does not
train. Tied, every unit after a block's first keeps its shortcut, at no latency cost.

The "xxbl-rn" space is the XXBL space tied the same way, as ResNet's basic blocks are (both
convolutions at the stage's width): untied, a search under a MAC budget draws bottlenecks
of a few channels under wide outputs. `Budget.min_width` puts a floor under every width.

The XXBL family is SuperResK1K{3,5,7}K1 plus SuperResK{k}K{k} with matched kernels
k ∈ {3, 5, 7}, as Zen-NAS's XXBL space lists them (the grammar would also accept mixed pairs).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from fer_core.models.structure import INIT_M, INIT_R, LIMITS, BlockSpec, Structure

CHANNEL_FACTORS = (2.5, 2.0, 1.5, 1.25, 1.0, 1 / 1.25, 1 / 1.5, 1 / 2, 1 / 2.5)
LAYER_STEPS = (-2, -1, 0, 1, 2)
SPLIT_AT = 6  # blocks with this many sub-layers or more are split in two


@dataclass(frozen=True)
class SearchSpace:
    name: str
    block_names: tuple[str, ...]  # residual block types a mutation draws from
    fixed_last: bool  # the final SuperConv is never mutated
    init: str  # default initial structure
    tied_bottleneck: bool = False  # a residual block's bottleneck equals its output width

    def conform(self, structure: Structure) -> Structure:
        """The structure as this space holds it (tied bottlenecks where the space ties them)."""
        if not self.tied_bottleneck:
            return structure
        tied = (b if b.kind == "conv" else replace(b, bottleneck=b.c_out) for b in structure.blocks)
        return Structure(tuple(tied))


IDW_BLOCKS = tuple(f"SuperResIDWE{e}K{k}" for e in (1, 2, 4, 6) for k in (3, 5, 7))
SPACES: dict[str, SearchSpace] = {
    "idw": SearchSpace("idw", IDW_BLOCKS, fixed_last=True, init=INIT_M),
    "idw-mb": SearchSpace("idw-mb", IDW_BLOCKS, fixed_last=True, init=INIT_M, tied_bottleneck=True),
    "xxbl": SearchSpace(
        "xxbl",
        (*(f"SuperResK1K{k}K1" for k in (3, 5, 7)), *(f"SuperResK{k}K{k}" for k in (3, 5, 7))),
        fixed_last=False,
        init=INIT_R,
    ),
    "xxbl-rn": SearchSpace(
        "xxbl-rn",
        (*(f"SuperResK1K{k}K1" for k in (3, 5, 7)), *(f"SuperResK{k}K{k}" for k in (3, 5, 7))),
        fixed_last=False,
        init=INIT_R,
        tied_bottleneck=True,
    ),
}


def get_space(space: str | SearchSpace) -> SearchSpace:
    if isinstance(space, SearchSpace):
        return space
    try:
        return SPACES[space]
    except KeyError:
        raise ValueError(
            f"unknown Zen search space {space!r}; choose one of {', '.join(SPACES)}"
        ) from None


def round8(x: float) -> int:
    """Nearest multiple of 8, at least 8."""
    return max(8, 8 * round(x / 8))


def make_block(
    name: str, c_in: int, c_out: int, stride: int, layers: int, bottleneck: int = 0
) -> BlockSpec:
    """A block from its name and numbers, through the parser so every field agrees."""
    if name.startswith("SuperConv"):
        text = f"{name}({c_in},{c_out},{stride},{layers})"
    else:
        text = f"{name}({c_in},{c_out},{stride},{bottleneck},{layers})"
    return Structure.parse(text).blocks[0]


def count_layers(structure: Structure) -> int:
    """The layer count the budget limits: Σ sub-layers L over the blocks (ZenNet-M: 14)."""
    return sum(b.layers for b in structure.blocks)


def narrowest(structure: Structure) -> int:
    """The fewest channels any block passes on: its output, or a residual block's bottleneck.
    The Zen-score grows with the log of width but MACs with its square, so under a MAC budget
    it favours 8-channel stages with large kernels; a floor keeps the search to trainable nets."""
    return min(
        b.c_out if b.kind == "conv" else min(b.c_out, b.bottleneck) for b in structure.blocks
    )


def split_blocks(blocks: list[BlockSpec] | tuple[BlockSpec, ...]) -> list[BlockSpec]:
    """Split every block with ≥ SPLIT_AT sub-layers into two (repeatedly, until none is left)."""
    out: list[BlockSpec] = []
    pending = list(blocks)
    while pending:
        b = pending.pop(0)
        if b.layers < SPLIT_AT:
            out.append(b)
            continue
        first = replace(b, layers=b.layers // 2)
        second = replace(b, c_in=b.c_out, stride=1, layers=b.layers - b.layers // 2)
        pending[:0] = [first, second]
    return out


def mutable_blocks(structure: Structure, space: str | SearchSpace) -> list[int]:
    """Indices of the blocks a mutation may pick."""
    space = get_space(space)
    n = len(structure.blocks)
    last_fixed = space.fixed_last and n > 1 and structure.blocks[-1].kind == "conv"
    return [i for i in range(n) if not (last_fixed and i == n - 1)]


def _scale(channels: int, rng: np.random.Generator) -> int:
    # within the grammar's limit: a final 1×1 conv grown a few times over would not parse
    scaled = round8(channels * CHANNEL_FACTORS[int(rng.integers(len(CHANNEL_FACTORS)))])
    return min(scaled, LIMITS["out"] // 8 * 8)


def mutate(
    structure: Structure | str, rng: np.random.Generator, space: str | SearchSpace
) -> Structure:
    """One mutation (module docstring); the result round-trips through Structure.parse."""
    space = get_space(space)
    if isinstance(structure, str):
        structure = Structure.parse(structure)
    blocks = list(structure.blocks)
    choices = mutable_blocks(structure, space)
    i = choices[int(rng.integers(len(choices)))]
    old = blocks[i]
    c_out = _scale(old.c_out, rng)
    if old.kind == "conv":
        new = replace(old, c_out=c_out)
    else:
        name = space.block_names[int(rng.integers(len(space.block_names)))]
        bottleneck = _scale(old.bottleneck, rng)
        layers = max(1, old.layers + LAYER_STEPS[int(rng.integers(len(LAYER_STEPS)))])
        new = make_block(name, old.c_in, c_out, old.stride, layers, bottleneck)
    blocks[i] = new
    if i + 1 < len(blocks):
        blocks[i + 1] = replace(blocks[i + 1], c_in=c_out)
    result = space.conform(Structure(tuple(split_blocks(blocks))))
    text = result.to_text()
    if Structure.parse(text) != result:  # pragma: no cover - a bug guard
        raise AssertionError(f"mutation produced a structure that does not round-trip: {text}")
    return result


# --------------------------------------------------------------------------- budget


@dataclass(frozen=True)
class Budget:
    """Limits on the network as it will be trained; None means no limit."""

    max_params: float | None = None
    max_macs: float | None = None
    max_layers: int | None = None
    max_latency_ms: float | None = None
    min_width: int | None = None  # channels of the narrowest block output or bottleneck
    resolution: int = 48
    in_chans: int = 1
    num_classes: int = 7
    threads: int = 1
    # builder options of the network as trained (`train --model-option`), as (key, value) pairs
    options: tuple[tuple[str, Any], ...] = ()


class BudgetCheck(NamedTuple):
    ok: bool
    reason: str | None  # "width" | "layers" | "params" | "macs" | "latency" | None
    figures: dict[str, Any]  # layers, params, macs, latency_ms (None where not measured)


def trained_network(structure: Structure | str, budget: Budget):
    """The network as `python -m trainer train --model structure.txt` builds it (SA on,
    residual links, classifier, the budget's builder options), with the search's input
    channels and classes."""
    from fer_core.models import create_model

    text = structure if isinstance(structure, str) else structure.to_text()
    return create_model(
        "zennet-m-sa",
        structure=text,
        in_chans=budget.in_chans,
        num_classes=budget.num_classes,
        **dict(budget.options),
    )


def measure_latency(model, input_shape: tuple[int, ...], threads: int = 1) -> float:
    """Median single-image time in ms of the network as the app runs it: fp32 onnxruntime
    at `threads` intra-op threads (eager torch costs several times more at this size, in
    per-operator overhead, and ranks structures differently). The TorchScript exporter is
    used: it takes a second or two per candidate where the dynamo exporter takes ten."""
    import warnings

    import torch

    from fer_core.zoo import open_session
    from trainer.evaluation.latency import time_calls

    model.eval()
    x = torch.zeros(1, *input_shape)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "candidate.onnx"
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation notice
            torch.onnx.export(model, (x,), path, dynamo=False, input_names=["image"])
        session = open_session(path, threads)
    image = np.zeros((1, *input_shape), np.float32)
    return time_calls(lambda: session.run(None, {"image": image}), 0.3, min_runs=15).median_ms


def check_budget(structure: Structure | str, budget: Budget) -> BudgetCheck:
    """Cheapest check first: width and layers (from the text), then params and MACs at the search
    resolution (one counted forward), then latency only for candidates that passed."""
    from fer_core.models.complexity import measure

    if isinstance(structure, str):
        structure = Structure.parse(structure)
    figures: dict[str, Any] = {
        "layers": count_layers(structure),
        "params": None,
        "macs": None,
        "latency_ms": None,
    }
    if budget.min_width is not None and narrowest(structure) < budget.min_width:
        return BudgetCheck(False, "width", figures)
    if budget.max_layers is not None and figures["layers"] > budget.max_layers:
        return BudgetCheck(False, "layers", figures)
    shape = (budget.in_chans, budget.resolution, budget.resolution)
    model = trained_network(structure, budget)
    cost = measure(model, shape)
    figures.update(params=cost.params, macs=cost.macs)
    if budget.max_params is not None and cost.params > budget.max_params:
        return BudgetCheck(False, "params", figures)
    if budget.max_macs is not None and cost.macs > budget.max_macs:
        return BudgetCheck(False, "macs", figures)
    if budget.max_latency_ms is not None:
        figures["latency_ms"] = measure_latency(model, shape, budget.threads)
        if figures["latency_ms"] > budget.max_latency_ms:
            return BudgetCheck(False, "latency", figures)
    return BudgetCheck(True, None, figures)

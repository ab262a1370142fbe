"""The DARTS supernet SGAS searches in (Auto-FERNet): every cell edge is a `MixedOp`, the
softmax(α)-weighted sum of the 11 Auto-FERNet primitives.

A cell has 4 intermediate nodes; node i reads every earlier state (the two cell inputs
c_{k-2}, c_{k-1} and nodes 0..i−1), so a cell has 2 + 3 + 4 + 5 = 14 edges, numbered node by
node (`EDGES[e] = (node, input)`, input 0 = c_{k-2}, 1 = c_{k-1}, 2 + j = node j). Normal and
reduction cells each have their own α (14 × 11, initialised to 1e-3·N(0, 1)).

Each edge has a status (`status[e]`): `UNDECIDED` (−1) runs the mixture; `PRUNED` (0, the index
of `none`) contributes nothing; an op index k ≥ 1 means the edge is fixed to `PRIMITIVES[k]` and
only that op runs (unweighted), which saves compute and memory as the search proceeds.

Operations are the evaluation network's (`fer_core.models.autofernet.OPS`); as in the search code
of DARTS/SGAS each pooling op is followed by a non-affine BN during search.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fer_core.models.autofernet import OPS, FactorizedReduce, ReLUConvBN
from fer_core.models.genotype import PRIMITIVES

STEPS = 4  # intermediate nodes per cell
UNDECIDED = -1
PRUNED = 0  # PRIMITIVES[0] == "none"
assert PRIMITIVES[PRUNED] == "none"

# edge e → (node, input state); edges of node i are contiguous, inputs in increasing order
EDGES: tuple[tuple[int, int], ...] = tuple(
    (node, j) for node in range(STEPS) for j in range(2 + node)
)
NUM_EDGES = len(EDGES)  # 14
NUM_OPS = len(PRIMITIVES)  # 11


def node_edges(node: int) -> list[int]:
    """The edge indices that feed `node` (0-based intermediate node)."""
    return [e for e, (n, _) in enumerate(EDGES) if n == node]


class MixedOp(nn.Module):
    """All primitives on one edge; `forward` returns Σ_o w[o]·op(x) (skipping `none`, whose output
    is zero) or, when `fixed` is given, that op's output alone."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        ops = []
        for name in PRIMITIVES:
            op = OPS[name](channels, stride)
            if "pool" in name:
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(
        self, x: torch.Tensor, weights: torch.Tensor | None = None, fixed: int | None = None
    ) -> torch.Tensor:
        if fixed is not None:
            return self.ops[fixed](x)
        assert weights is not None
        out = None
        for k, op in enumerate(self.ops):
            if k == PRUNED:
                continue
            h = weights[k] * op(x)
            out = h if out is None else out + h
        return out


class SearchCell(nn.Module):
    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (
            FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        )
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.edges = nn.ModuleList(MixedOp(c, 2 if reduction and j < 2 else 1) for _, j in EDGES)
        self.multiplier = STEPS

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        status: Sequence[int],
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        e = 0
        for node in range(STEPS):
            total = None
            for j in range(2 + node):
                st = status[e]
                if st == UNDECIDED:
                    h = self.edges[e](states[j], weights[e])
                elif st != PRUNED:
                    h = self.edges[e](states[j], fixed=st)
                else:
                    h = None
                if h is not None:
                    total = h if total is None else total + h
                e += 1
            if total is None:
                raise RuntimeError(f"node {node} has every input edge pruned")
            states.append(total)
        return torch.cat(states[2:], dim=1)


class Supernet(nn.Module):
    """Stem (3×3 conv 1→3C, BN), `layers` search cells with reductions at ⌊L/3⌋ and ⌊2L/3⌋
    (channels doubling there), global average pooling and a linear classifier."""

    def __init__(
        self,
        channels: int = 16,
        layers: int = 8,
        num_classes: int = 7,
        in_chans: int = 1,
        stem_multiplier: int = 3,
    ):
        super().__init__()
        if layers < 3:
            raise ValueError(f"layers must be at least 3 (two reduction cells), got {layers}")
        self.layers = layers
        c_curr = stem_multiplier * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr)
        )
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        reduction_at = (layers // 3, 2 * layers // 3)
        self.cells = nn.ModuleList()
        reduction_prev = False
        for i in range(layers):
            reduction = i in reduction_at
            if reduction:
                c_curr *= 2
            cell = SearchCell(c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)
        self.alpha_normal = nn.Parameter(1e-3 * torch.randn(NUM_EDGES, NUM_OPS))
        self.alpha_reduce = nn.Parameter(1e-3 * torch.randn(NUM_EDGES, NUM_OPS))
        self.status = {"normal": [UNDECIDED] * NUM_EDGES, "reduce": [UNDECIDED] * NUM_EDGES}

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_normal, self.alpha_reduce]

    def weight_parameters(self) -> list[nn.Parameter]:
        arch = {id(p) for p in self.arch_parameters()}
        return [p for p in self.parameters() if id(p) not in arch]

    def alpha(self, cell: str) -> nn.Parameter:
        return self.alpha_normal if cell == "normal" else self.alpha_reduce

    def set_status(self, cell: str, status: Sequence[int]) -> None:
        if len(status) != NUM_EDGES:
            raise ValueError(f"expected {NUM_EDGES} edge states, got {len(status)}")
        self.status[cell] = [int(s) for s in status]

    def forward(self, x: torch.Tensor, detach_alpha: bool = False) -> torch.Tensor:
        weights = {}
        for cell in ("normal", "reduce"):
            a = self.alpha(cell)
            weights[cell] = F.softmax((a.detach() if detach_alpha else a).float(), dim=-1)
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            s0, s1 = s1, cell(s0, s1, weights[kind], self.status[kind])
        return self.classifier(self.global_pooling(s1).flatten(1))

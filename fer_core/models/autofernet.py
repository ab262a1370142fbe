"""Auto-FERNet: a DARTS-style evaluation network built from a cell genotype.

`AutoFERNet(genotype, layers=12, channels=36, in_chans=1)` stacks `layers` cells with reduction
cells at ⌊L/3⌋ and ⌊2L/3⌋. In training mode with the auxiliary head it returns
(logits, aux_logits); in eval mode it returns logits only (that is what gets exported).
Set `model.drop_path_prob` before each epoch (the trainer ramps it to 0.2).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from fer_core.models.genotype import AUTO_FERNET, Edge, Genotype
from fer_core.models.layers import drop_path


class ReLUConvBN(nn.Sequential):
    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int,
        stride: int,
        padding: int,
        dilation: int = 1,
        groups: int = 1,
    ):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, bias=False),
            nn.BatchNorm2d(c_out),
        )


class DilConv(nn.Sequential):
    """ReLU, depthwise k×k (dilated), pointwise 1×1, BN."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int, dilation: int):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c, c, kernel, stride, padding, dilation, groups=c, bias=False),
            nn.Conv2d(c, c, 1, bias=False),
            nn.BatchNorm2d(c),
        )


class SepConv(nn.Sequential):
    """Two (ReLU, depthwise, pointwise, BN) stacks; only the first depthwise conv strides."""

    def __init__(self, c: int, kernel: int, stride: int, padding: int):
        super().__init__(DilConv(c, kernel, stride, padding, 1), DilConv(c, kernel, 1, padding, 1))


class FactorizedReduce(nn.Module):
    """Halve the resolution with two 1×1 stride-2 convs, the second on the one-pixel shift."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        return self.bn(torch.cat([self.conv_1(x), self.conv_2(x[:, :, 1:, 1:])], dim=1))


class Ghost(nn.Module):
    """GhostNet module: 1×1 primary conv to ⌈C/2⌉ channels, a cheap 3×3 depthwise conv on them,
    concatenated and cut to C channels."""

    def __init__(self, c: int, stride: int):
        super().__init__()
        self.c = c
        init = math.ceil(c / 2)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(c, init, 1, stride, 0, bias=False), nn.BatchNorm2d(init), nn.ReLU()
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init, init, 3, 1, 1, groups=init, bias=False),
            nn.BatchNorm2d(init),
            nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.primary_conv(x)
        return torch.cat([x1, self.cheap_operation(x1)], dim=1)[:, : self.c]


class Zero(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, :, :: self.stride, :: self.stride] * 0.0


# Operation name → builder(channels, stride). The genotype module owns the list of names.
OPS: dict[str, Callable[[int, int], nn.Module]] = {
    "none": lambda c, s: Zero(s),
    "avg_pool_3x3": lambda c, s: nn.AvgPool2d(3, s, 1, count_include_pad=False),
    "max_pool_3x3": lambda c, s: nn.MaxPool2d(3, s, 1),
    "skip_connect": lambda c, s: nn.Identity() if s == 1 else FactorizedReduce(c, c),
    "sep_conv_3x3": lambda c, s: SepConv(c, 3, s, 1),
    "sep_conv_5x5": lambda c, s: SepConv(c, 5, s, 2),
    "dil_conv_3x3": lambda c, s: DilConv(c, 3, s, 2, 2),
    "dil_conv_5x5": lambda c, s: DilConv(c, 5, s, 4, 2),
    "ghost": lambda c, s: Ghost(c, s),
    "conv_1x1": lambda c, s: ReLUConvBN(c, c, 1, s, 0),
    "conv_3x3": lambda c, s: ReLUConvBN(c, c, 3, s, 1),
}


class Cell(nn.Module):
    def __init__(
        self,
        edges: tuple[Edge, ...],
        concat: tuple[int, ...],
        c_pp: int,
        c_p: int,
        c: int,
        reduction: bool,
        reduction_prev: bool,
    ):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = (
            FactorizedReduce(c_pp, c) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0)
        )
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0)
        self.inputs = [index for _, index in edges]
        self.concat = list(concat)
        self.multiplier = len(concat)
        self.ops = nn.ModuleList(
            OPS[name](c, 2 if reduction and index < 2 else 1) for name, index in edges
        )

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for step in range(len(self.ops) // 2):
            node = 0
            for k in (2 * step, 2 * step + 1):
                op = self.ops[k]
                h = op(states[self.inputs[k]])
                if not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob, self.training)
                node = node + h
            states.append(node)
        return torch.cat([states[i] for i in self.concat], dim=1)


class AuxiliaryHead(nn.Module):
    """DARTS CIFAR auxiliary head with adaptive pooling (works on 11–12 px maps)."""

    def __init__(self, c: int, num_classes: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.ReLU(inplace=False),
            nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            nn.Conv2d(c, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=False),
            nn.Conv2d(128, 768, 2, bias=False),
            nn.BatchNorm2d(768),
            nn.ReLU(inplace=False),
            nn.AdaptiveAvgPool2d(1),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))


class AutoFERNet(nn.Module):
    def __init__(
        self,
        genotype: Genotype = AUTO_FERNET,
        layers: int = 12,
        channels: int = 36,
        num_classes: int = 7,
        in_chans: int = 1,
        auxiliary: bool = True,
    ):
        super().__init__()
        if layers < 3:
            raise ValueError(f"layers must be at least 3 (two reduction cells), got {layers}")
        self.genotype = genotype
        self.layers = layers
        self.drop_path_prob = 0.0
        c_curr = 3 * channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr)
        )
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        reduction_at = (layers // 3, 2 * layers // 3)
        self.cells = nn.ModuleList()
        self.aux_after = reduction_at[1]
        reduction_prev = False
        c_aux = c_p
        for i in range(layers):
            reduction = i in reduction_at
            if reduction:
                c_curr *= 2
            edges, concat = (
                (genotype.reduce, genotype.reduce_concat)
                if reduction
                else (genotype.normal, genotype.normal_concat)
            )
            cell = Cell(edges, concat, c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
            if i == self.aux_after:
                c_aux = c_p
        self.auxiliary_head = AuxiliaryHead(c_aux, num_classes) if auxiliary else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        s0 = s1 = self.stem(x)
        aux = None
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self.drop_path_prob)
            if i == self.aux_after and self.auxiliary_head is not None and self.training:
                aux = self.auxiliary_head(s1)
        logits = self.classifier(self.global_pooling(s1).flatten(1))
        return (logits, aux) if aux is not None else logits

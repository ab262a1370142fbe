"""ZenNet-SA: a Zen-NAS backbone built from a structure string, with Shuffle Attention
inside every residual unit and an optional lightweight-attention head (REFERENCE §2.3–2.5)."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from fer_core.models.layers import conv_bn_act
from fer_core.models.structure import BlockSpec, Structure

# Zen-NAS trains with these BN settings (§2.5).
BN = {"momentum": 0.01, "eps": 1e-3}


def round8(x: float) -> int:
    return max(8, 8 * round(x / 8))


class ShuffleAttention(nn.Module):
    """SA(C, G): per group, a channel gate on one half and a GroupNorm spatial gate on the
    other, then a channel shuffle with 2 groups. Gates start at w=0, b=1."""

    def __init__(self, channels: int, groups: int = 4):
        super().__init__()
        if channels % (2 * groups):
            raise ValueError(
                f"Shuffle Attention with {groups} groups needs channels divisible by "
                f"{2 * groups}, got {channels}"
            )
        half = channels // (2 * groups)
        self.groups = groups
        self.cweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.cbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.sweight = nn.Parameter(torch.zeros(1, half, 1, 1))
        self.sbias = nn.Parameter(torch.ones(1, half, 1, 1))
        self.gn = nn.GroupNorm(half, half)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, c, h, w = x.shape
        x = x.reshape(-1, c // self.groups, h, w)
        x_channel, x_spatial = x.chunk(2, dim=1)
        pooled = x_channel.mean(dim=(2, 3), keepdim=True)
        x_channel = x_channel * torch.sigmoid(self.cweight * pooled + self.cbias)
        x_spatial = x_spatial * torch.sigmoid(self.sweight * self.gn(x_spatial) + self.sbias)
        out = torch.cat([x_channel, x_spatial], dim=1).reshape(-1, c, h, w)
        return out.reshape(-1, 2, c // 2, h, w).transpose(1, 2).reshape(-1, c, h, w)


class LightweightAttention(nn.Module):
    """WIRW1 head block: y = λ0·SA(x) + λ1·x on the pooled feature, λ0 = λ1 = 1 at start."""

    def __init__(self, channels: int):
        super().__init__()
        self.sa = ShuffleAttention(channels, groups=8)
        self.lambdas = nn.Parameter(torch.ones(2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lambdas[0] * self.sa(x) + self.lambdas[1] * x


class ResidualUnit(nn.Module):
    """body(x) + shortcut(x), then ReLU; the shortcut projects when stride or width change.

    With `residual=False` the unit is plain, ReLU(body(x)), and has no shortcut module: the
    network the Zen-score is computed on (REFERENCE §2.1)."""

    def __init__(
        self, body: nn.Sequential, c_in: int, c_out: int, stride: int, residual: bool = True
    ):
        super().__init__()
        self.body = body
        self.shortcut: nn.Module | None = None
        if residual:
            self.shortcut = (
                nn.Identity()
                if stride == 1 and c_in == c_out
                else nn.Sequential(
                    nn.Conv2d(c_in, c_out, 1, stride, bias=True), nn.BatchNorm2d(c_out, **BN)
                )
            )
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            return self.act(self.body(x))
        return self.act(self.body(x) + self.shortcut(x))


# A unit body is (layers before SA, SA width, last layer); SA sits after the spatial conv's ReLU.
UnitBody = tuple[list[nn.Module], int, nn.Module]


def _idw_body(c_in: int, c_out: int, stride: int, spec: BlockSpec) -> UnitBody:
    mid = round8(c_out * spec.expansion)
    return (
        [
            conv_bn_act(c_in, mid, 1, bn=BN),
            conv_bn_act(mid, mid, spec.kernel, stride, groups=mid, bn=BN),
        ],
        mid,
        conv_bn_act(mid, c_out, 1, act=None, bn=BN),
    )


def _bottleneck_body(c_in: int, c_out: int, stride: int, spec: BlockSpec) -> UnitBody:
    btl = spec.bottleneck
    return (
        [conv_bn_act(c_in, btl, 1, bn=BN), conv_bn_act(btl, btl, spec.kernel, stride, bn=BN)],
        btl,
        conv_bn_act(btl, c_out, 1, act=None, bn=BN),
    )


def _basic_body(c_in: int, c_out: int, stride: int, spec: BlockSpec) -> UnitBody:
    btl = spec.bottleneck
    return (
        [conv_bn_act(c_in, btl, spec.kernel, stride, bn=BN)],
        btl,
        conv_bn_act(btl, c_out, spec.kernel2, act=None, bn=BN),
    )


# block kind → (unit body, whether the pair's first unit ends at the bottleneck width)
UNIT_BODIES: dict[str, tuple[Callable[[int, int, int, BlockSpec], UnitBody], bool]] = {
    "idw": (_idw_body, True),
    "k1kxk1": (_bottleneck_body, False),
    "kxkx": (_basic_body, False),
}


def build_block(spec: BlockSpec, sa: bool, residual: bool = True) -> nn.Sequential:
    """A block of L repetitions: conv-BN-ReLU layers, or pairs of residual units (plain units,
    without shortcuts, when `residual` is False)."""
    if spec.kind == "conv":
        return nn.Sequential(
            *(
                conv_bn_act(
                    spec.c_in if i == 0 else spec.c_out,
                    spec.c_out,
                    spec.kernel,
                    spec.stride if i == 0 else 1,
                    bn=BN,
                )
                for i in range(spec.layers)
            )
        )
    body, first_to_bottleneck = UNIT_BODIES[spec.kind]
    middle = spec.bottleneck if first_to_bottleneck else spec.c_out

    def unit(c_in: int, c_out: int, stride: int) -> ResidualUnit:
        head, width, tail = body(c_in, c_out, stride, spec)
        attention = [ShuffleAttention(width)] if sa else []
        return ResidualUnit(
            nn.Sequential(*head, *attention, tail), c_in, c_out, stride, residual=residual
        )

    units: list[nn.Module] = []
    c_in, stride = spec.c_in, spec.stride
    for _ in range(spec.layers):
        units += [unit(c_in, middle, stride), unit(middle, spec.c_out, 1)]
        c_in, stride = spec.c_out, 1
    return nn.Sequential(*units)


class ZenNet(nn.Module):
    def __init__(
        self,
        structure: Structure | str,
        num_classes: int = 7,
        in_chans: int | None = None,
        use_sa: bool = True,
        lw_att: bool = False,
        residual: bool = True,
        zero_init_residual: bool = True,
    ):
        """`residual=False` drops every residual unit's shortcut (the Zen-score network).
        `zero_init_residual=False` starts the last BN of every residual unit at γ = 1 instead
        of Zen-NAS's γ = 0: on 40–48 px FER2013 faces the γ = 0 start leaves the unit bodies
        without gradient and the network near the majority class for hundreds of steps."""
        super().__init__()
        if isinstance(structure, str):
            structure = Structure.parse(structure)
        if in_chans is not None:
            structure = structure.with_in_chans(in_chans)
        self.structure = structure
        self.features = nn.Sequential(*(build_block(b, use_sa, residual) for b in structure.blocks))
        c = structure.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.lw_att = LightweightAttention(c) if lw_att else None
        self.classifier = nn.Linear(c, num_classes)
        self.zero_init_residual = zero_init_residual
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zen-NAS initialisation (§2.5): scaled Xavier for convs and linears, and the last BN
        of every residual unit at γ = 0 so each unit starts as its shortcut (γ = 1 when
        `zero_init_residual` is False)."""
        gain = 3.26
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight, gain=gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                std = gain * math.sqrt(2.0 / (m.in_features + m.out_features))
                nn.init.normal_(m.weight, 0.0, std)
                nn.init.zeros_(m.bias)
            elif isinstance(m, ResidualUnit):
                last_bn = m.body[-1][1]
                nn.init.constant_(last_bn.weight, 0.0 if self.zero_init_residual else 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        if self.lw_att is not None:
            x = self.lw_att(x)
        return self.classifier(x.flatten(1))

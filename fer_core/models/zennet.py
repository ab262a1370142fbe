"""ZenNet-SA: a Zen-NAS backbone built from a structure string, with Shuffle Attention
inside every residual unit and an optional lightweight-attention head (ZenNet-SA)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from fer_core.models.layers import conv_bn_act
from fer_core.models.structure import BlockSpec, Structure

# Zen-NAS trains with these BN settings (its training scripts).
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
    """body(x) + shortcut(x), then ReLU (Zen-NAS) or nothing (MobileNetV2's linear bottleneck).

    Shortcuts (`SHORTCUTS`): "project" is Zen-NAS's, a 1×1 conv + BN where stride or width
    change; "identity" is MobileNetV2's, a shortcut only where they do not; "none" makes the unit
    plain, ReLU(body(x)): the network the Zen-score is computed on (Zen-NAS)."""

    def __init__(
        self,
        body: nn.Sequential,
        c_in: int,
        c_out: int,
        stride: int,
        shortcut: str = "project",
        sum_relu: bool = True,
        bn: dict | None = None,
    ):
        super().__init__()
        self.body = body
        self.shortcut: nn.Module | None = None
        same_shape = stride == 1 and c_in == c_out
        if shortcut != "none" and same_shape:
            self.shortcut = nn.Identity()
        elif shortcut == "project":
            self.shortcut = nn.Sequential(
                nn.Conv2d(c_in, c_out, 1, stride, bias=True), nn.BatchNorm2d(c_out, **(bn or BN))
            )
        self.act = nn.ReLU() if sum_relu or shortcut == "none" else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.shortcut is None:
            return self.act(self.body(x))
        return self.act(self.body(x) + self.shortcut(x))


SHORTCUTS = ("project", "identity", "none")


# A unit body is (layers before SA, SA width, last layer); SA sits after the spatial conv's ReLU.
UnitBody = tuple[list[nn.Module], int, nn.Module]


def _idw_body(c_in: int, c_out: int, stride: int, spec: BlockSpec, bn: dict) -> UnitBody:
    mid = round8(c_out * spec.expansion)
    return (
        [
            conv_bn_act(c_in, mid, 1, bn=bn),
            conv_bn_act(mid, mid, spec.kernel, stride, groups=mid, bn=bn),
        ],
        mid,
        conv_bn_act(mid, c_out, 1, act=None, bn=bn),
    )


def _bottleneck_body(c_in: int, c_out: int, stride: int, spec: BlockSpec, bn: dict) -> UnitBody:
    btl = spec.bottleneck
    return (
        [conv_bn_act(c_in, btl, 1, bn=bn), conv_bn_act(btl, btl, spec.kernel, stride, bn=bn)],
        btl,
        conv_bn_act(btl, c_out, 1, act=None, bn=bn),
    )


def _basic_body(c_in: int, c_out: int, stride: int, spec: BlockSpec, bn: dict) -> UnitBody:
    btl = spec.bottleneck
    return (
        [conv_bn_act(c_in, btl, spec.kernel, stride, bn=bn)],
        btl,
        conv_bn_act(btl, c_out, spec.kernel2, act=None, bn=bn),
    )


UnitBodyFn = Callable[[int, int, int, BlockSpec, dict], UnitBody]
# block kind → (unit body, whether the pair's first unit ends at the bottleneck width)
UNIT_BODIES: dict[str, tuple[UnitBodyFn, bool]] = {
    "idw": (_idw_body, True),
    "k1kxk1": (_bottleneck_body, False),
    "kxkx": (_basic_body, False),
}


@dataclass(frozen=True)
class UnitOptions:
    """How the residual units are built. The defaults are Zen-NAS's; MobileNetV2 differs in
    each (shortcut "identity", no ReLU after the sum, BN momentum 0.1)."""

    shortcut: str = "project"  # see ResidualUnit
    sum_relu: bool = True
    bn_momentum: float = 0.01

    def __post_init__(self) -> None:
        if self.shortcut not in SHORTCUTS:
            raise ValueError(f"shortcut {self.shortcut!r}: expected one of {', '.join(SHORTCUTS)}")
        if not 0.0 < self.bn_momentum <= 1.0:
            raise ValueError(f"bn_momentum {self.bn_momentum}: expected a number in (0, 1]")

    @property
    def bn(self) -> dict:
        return {"momentum": self.bn_momentum, "eps": BN["eps"]}


def build_block(spec: BlockSpec, sa: bool, units: UnitOptions = UnitOptions()) -> nn.Sequential:
    """A block of L repetitions: conv-BN-ReLU layers, or pairs of residual units."""
    bn = units.bn
    if spec.kind == "conv":
        return nn.Sequential(
            *(
                conv_bn_act(
                    spec.c_in if i == 0 else spec.c_out,
                    spec.c_out,
                    spec.kernel,
                    spec.stride if i == 0 else 1,
                    bn=bn,
                )
                for i in range(spec.layers)
            )
        )
    body, first_to_bottleneck = UNIT_BODIES[spec.kind]
    middle = spec.bottleneck if first_to_bottleneck else spec.c_out

    def unit(c_in: int, c_out: int, stride: int) -> ResidualUnit:
        head, width, tail = body(c_in, c_out, stride, spec, bn)
        attention = [ShuffleAttention(width)] if sa else []
        return ResidualUnit(
            nn.Sequential(*head, *attention, tail), c_in, c_out, stride,
            units.shortcut, units.sum_relu, bn,
        )  # fmt: skip

    layers: list[nn.Module] = []
    c_in, stride = spec.c_in, spec.stride
    for _ in range(spec.layers):
        layers += [unit(c_in, middle, stride), unit(middle, spec.c_out, 1)]
        c_in, stride = spec.c_out, 1
    return nn.Sequential(*layers)


# Initialisations: Zen-NAS's, and torchvision's for MobileNetV2 / ResNet (Kaiming normal,
# fan-out, for convolutions; N(0, 0.01) for the classifier).
INITS = ("zen", "torch")


class ZenNet(nn.Module):
    def __init__(
        self,
        structure: Structure | str,
        num_classes: int = 7,
        in_chans: int | None = None,
        use_sa: bool = True,
        lw_att: bool = False,
        zero_init_residual: bool = True,
        init: str = "zen",
        shortcut: str = "project",
        sum_relu: bool = True,
        bn_momentum: float = 0.01,
    ):
        """Builder options, each Zen-NAS's by default:
        - `zero_init_residual=False` starts the last BN of every residual unit at γ = 1 instead
          of 0;
        - `init="torch"`: torchvision's initialisation instead of Zen-NAS's scaled Xavier;
        - `shortcut`, `sum_relu`, `bn_momentum`: how the units are built (`UnitOptions`);
          `shortcut="none"` gives the plain network the Zen-score is computed on."""
        super().__init__()
        if init not in INITS:
            raise ValueError(f"init {init!r}: expected one of {', '.join(INITS)}")
        if isinstance(structure, str):
            structure = Structure.parse(structure)
        if in_chans is not None:
            structure = structure.with_in_chans(in_chans)
        self.structure = structure
        units = UnitOptions(shortcut, sum_relu, bn_momentum)
        self.features = nn.Sequential(*(build_block(b, use_sa, units) for b in structure.blocks))
        c = structure.out_channels
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.lw_att = LightweightAttention(c) if lw_att else None
        self.classifier = nn.Linear(c, num_classes)
        self.zero_init_residual = zero_init_residual
        self.init = init
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Zen-NAS initialisation: scaled Xavier for convs and linears, and the last BN
        of every residual unit at γ = 0 so each unit starts as its shortcut (γ = 1 when
        `zero_init_residual` is False, and in units without a shortcut). `init="torch"`
        replaces the Xavier part."""
        gain = 3.26
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                if self.init == "zen":
                    nn.init.xavier_normal_(m.weight, gain=gain)
                else:
                    nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                std = gain * math.sqrt(2.0 / (m.in_features + m.out_features))
                nn.init.normal_(m.weight, 0.0, std if self.init == "zen" else 0.01)
                nn.init.zeros_(m.bias)
            elif isinstance(m, ResidualUnit):
                # a unit without a shortcut would start as a constant zero: its γ stays 1
                zero = self.zero_init_residual and m.shortcut is not None
                nn.init.constant_(m.body[-1][1].weight, 0.0 if zero else 1.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x))
        if self.lw_att is not None:
            x = self.lw_att(x)
        return self.classifier(x.flatten(1))

"""POSTER V2 (POSTER++): an IR-50 image stream and a frozen MobileFaceNet
landmark stream meet in three window cross-attention levels whose outputs are fused into
147 tokens for a 2-block ViT, an SE gate and a linear head.

Only what the network executes is built into the forward path: the first three IR-50 stages,
and MobileFaceNet up to its 7×7×512 feature map. MobileFaceNet's landmark regressor
(`conv_6_dw`, `linear`, `bn`) is kept so that its usual checkpoints load without surprises,
but it is not run, because POSTER V2 discards its output.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from fer_core.models.layers import DropPath
from fer_core.models.pretrained import LoadReport, load_into

# --------------------------------------------------------------------------- IR-50 (first 3 stages)


class BottleneckIR(nn.Module):
    """ArcFace improved residual unit; names follow the usual IR-50 state-dict layout."""

    def __init__(self, c_in: int, depth: int, stride: int):
        super().__init__()
        self.shortcut_layer = (
            nn.MaxPool2d(1, stride)
            if c_in == depth
            else nn.Sequential(nn.Conv2d(c_in, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        )
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(c_in),
            nn.Conv2d(c_in, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shortcut_layer(x) + self.res_layer(x)


IR50_STAGES = ((64, 3), (128, 4), (256, 14))  # (depth, units); stage 4 is not used by POSTER V2


class IR50(nn.Module):
    """IR-50 stem and first three stages; returns the 56², 28² and 14² stage outputs."""

    def __init__(self, in_chans: int = 3):
        super().__init__()
        self.input_layer = nn.Sequential(
            nn.Conv2d(in_chans, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        )
        units, self.stage_ends, c_in = [], [], 64
        for depth, count in IR50_STAGES:
            units += [
                BottleneckIR(c_in if i == 0 else depth, depth, 2 if i == 0 else 1)
                for i in range(count)
            ]
            c_in = depth
            self.stage_ends.append(len(units) - 1)
        self.body = nn.Sequential(*units)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.input_layer(x)
        outs = []
        for i, unit in enumerate(self.body):
            x = unit(x)
            if i in self.stage_ends:
                outs.append(x)
        return outs


# --------------------------------------------------------------------------- MobileFaceNet (frozen)


class ConvBlock(nn.Module):
    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int = 1,
        stride: int = 1,
        padding: int = 0,
        groups: int = 1,
        prelu: bool = True,
    ):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.prelu = nn.PReLU(c_out) if prelu else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return self.prelu(x) if self.prelu is not None else x


class DepthWise(nn.Module):
    """1×1 expand, 3×3 depthwise, 1×1 linear projection, optional residual."""

    def __init__(self, c_in: int, c_out: int, groups: int, stride: int, residual: bool = False):
        super().__init__()
        self.residual = residual
        self.conv = ConvBlock(c_in, groups)
        self.conv_dw = ConvBlock(groups, groups, 3, stride, 1, groups=groups)
        self.project = ConvBlock(groups, c_out, prelu=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.project(self.conv_dw(self.conv(x)))
        return x + out if self.residual else out


class Residual(nn.Module):
    def __init__(self, c: int, blocks: int, groups: int):
        super().__init__()
        self.model = nn.Sequential(
            *(DepthWise(c, c, groups, 1, residual=True) for _ in range(blocks))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class MobileFaceNet(nn.Module):
    """The 68-landmark MobileFaceNet at 112 px; `forward` returns the three feature maps
    POSTER V2 uses: 28²×64 (conv_3), 14²×128 (conv_4) and 7²×512 (conv_6_sep)."""

    def __init__(self, in_chans: int = 3, landmarks: int = 68):
        super().__init__()
        self.conv1 = ConvBlock(in_chans, 64, 3, 2, 1)
        self.conv2_dw = ConvBlock(64, 64, 3, 1, 1, groups=64)
        self.conv_23 = DepthWise(64, 64, groups=128, stride=2)
        self.conv_3 = Residual(64, blocks=4, groups=128)
        self.conv_34 = DepthWise(64, 128, groups=256, stride=2)
        self.conv_4 = Residual(128, blocks=6, groups=256)
        self.conv_45 = DepthWise(128, 128, groups=512, stride=2)
        self.conv_5 = Residual(128, blocks=2, groups=256)
        self.conv_6_sep = ConvBlock(128, 512)
        # The landmark regressor: loaded with the checkpoint, never run by POSTER V2.
        self.conv_6_dw = ConvBlock(512, 512, 7, groups=512, prelu=False)
        self.linear = nn.Linear(512, 2 * landmarks, bias=False)
        self.bn = nn.BatchNorm1d(2 * landmarks)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.conv_23(self.conv2_dw(self.conv1(x)))
        f1 = self.conv_3(x)
        f2 = self.conv_4(self.conv_34(f1))
        f3 = self.conv_6_sep(self.conv_5(self.conv_45(f2)))
        return f1, f2, f3

    def landmarks(self, x: torch.Tensor) -> torch.Tensor:
        """The regressor output (136 values), for checking a loaded checkpoint."""
        f3 = self.forward(x)[2]
        return self.bn(self.linear(self.conv_6_dw(f3).flatten(1)))


# --------------------------------------------------------------------------- cross-attention


def _relative_position_index(window: int) -> torch.Tensor:
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij"))
    coords = coords.flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]


class WindowCrossAttention(nn.Module):
    """Keys and values from the image tokens, the query is the landmark feature itself."""

    def __init__(self, dim: int, heads: int, window: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        nn.init.trunc_normal_(self.relative_position_bias_table, std=0.02)
        self.register_buffer(
            "relative_position_index", _relative_position_index(window), persistent=False
        )

    def forward(self, x: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        _, n, c = x.shape
        d = c // self.heads
        k, v = self.kv(x).reshape(-1, n, 2, self.heads, d).permute(2, 0, 3, 1, 4)
        q = q.reshape(-1, n, self.heads, d).transpose(1, 2) * self.scale
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        attn = q @ k.transpose(-2, -1) + bias.reshape(n, n, -1).permute(2, 0, 1)
        out = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, n, c)
        return self.proj(out)


class Mlp(nn.Sequential):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)


def _partition(x: torch.Tensor, h: int, w: int, window: int) -> torch.Tensor:
    """(B, h·w, C) tokens → (B·windows, window², C)."""
    c = x.shape[-1]
    x = x.reshape(-1, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, window * window, c)


def _merge(x: torch.Tensor, h: int, w: int, window: int) -> torch.Tensor:
    c = x.shape[-1]
    x = x.reshape(-1, h // window, w // window, window, window, c)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, h * w, c)


class WindowCrossBlock(nn.Module):
    """z = LN(img) + DropPath(γ1·attn); z += DropPath(γ2·MLP(LN z)); γ starts at 1e-5."""

    def __init__(self, dim: int, heads: int, window: int, drop_path: float):
        super().__init__()
        self.window = window
        self.norm1 = nn.LayerNorm(dim)
        self.attn = WindowCrossAttention(dim, heads, window)
        self.gamma_1 = nn.Parameter(1e-5 * torch.ones(dim))
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, 4 * dim)
        self.gamma_2 = nn.Parameter(1e-5 * torch.ones(dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, image: torch.Tensor, landmark: torch.Tensor) -> torch.Tensor:
        _, c, h, w = image.shape
        if h % self.window or w % self.window:
            raise ValueError(f"a {h}×{w} map does not split into {self.window}² windows")
        x = self.norm1(image.flatten(2).transpose(1, 2))
        q = landmark.flatten(2).transpose(1, 2)
        a = self.attn(_partition(x, h, w, self.window), _partition(q, h, w, self.window))
        z = x + self.drop_path(self.gamma_1 * _merge(a, h, w, self.window))
        z = z + self.drop_path(self.gamma_2 * self.mlp(self.norm2(z)))
        return z.transpose(1, 2).reshape(-1, c, h, w)


# --------------------------------------------------------------------------- ViT stage


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, n, c = x.shape
        q, k, v = self.qkv(x).reshape(-1, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        attn = (q * self.scale) @ k.transpose(-2, -1)
        return self.proj((attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(-1, n, c))


class ViTBlock(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = SelfAttention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, mlp_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class SEGate(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, dim)
        self.fc2 = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(x))))


# --------------------------------------------------------------------------- the network


LEVELS = ((64, 2, 28, 0.0), (128, 4, 14, 0.125), (256, 8, 7, 0.25))  # dim, heads, window, drop


class PosterV2(nn.Module):
    EMBED = 768

    def __init__(self, num_classes: int = 7, in_chans: int = 3, depth: int = 2):
        super().__init__()
        if in_chans != 3:
            raise ValueError(
                "POSTER V2 takes RGB input (in_chans=3): its landmark stream is a pretrained "
                f"RGB MobileFaceNet; got in_chans={in_chans}"
            )
        e = self.EMBED
        self.face_landback = MobileFaceNet()
        self.face_landback.requires_grad_(False).eval()
        self.last_face_conv = nn.Conv2d(512, 256, 3, padding=1)
        self.ir_back = IR50()
        self.ir_layers = nn.ModuleList(nn.Conv2d(d, d, 3, 2, 1) for d, *_ in LEVELS)
        self.windows = nn.ModuleList(WindowCrossBlock(d, h, w, p) for d, h, w, p in LEVELS)
        self.embed_q = nn.Sequential(nn.Conv2d(64, e, 3, 2, 1), nn.Conv2d(e, e, 3, 2, 1))
        self.embed_k = nn.Conv2d(128, e, 3, 2, 1)
        self.embed_v = nn.Conv2d(256, e, 1)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, e))
        self.pos_embed = nn.Parameter(torch.zeros(1, 3 * 49 + 1, e))
        self.blocks = nn.Sequential(*(ViTBlock(e, 8, 4 * e) for _ in range(depth)))
        self.norm = nn.LayerNorm(e, eps=1e-6)
        self.se = SEGate(e)
        self.head = nn.Linear(e, num_classes)
        self._init_trainable()

    def _init_trainable(self) -> None:
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for name, m in self.named_modules():
            if name.startswith("face_landback"):
                continue
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.01)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def train(self, mode: bool = True) -> PosterV2:
        # Frozen means frozen: the landmark stream's BN statistics never update (the original
        # code lets them drift in train mode).
        super().train(mode)
        self.face_landback.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(112, 112), mode="nearest")
        lm1, lm2, lm3 = self.face_landback(x)
        landmarks = (lm1, lm2, self.last_face_conv(lm3))
        images = [conv(f) for conv, f in zip(self.ir_layers, self.ir_back(x), strict=True)]
        o1, o2, o3 = (w(i, lm) for w, i, lm in zip(self.windows, images, landmarks, strict=True))
        tokens = torch.cat(
            [self.embed_q(o1).flatten(2), self.embed_k(o2).flatten(2), self.embed_v(o3).flatten(2)],
            dim=2,
        ).transpose(1, 2)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        tokens = self.blocks(torch.cat([cls, tokens], dim=1) + self.pos_embed)
        return self.head(self.se(self.norm(tokens[:, 0])))


# --------------------------------------------------------------------------- pretrained streams

# IR-50 checkpoints hold all four stages and the embedding layer; POSTER V2 uses 3 stages.
_IR50_UNUSED = (r"body\.(2[1-9]|[3-9]\d)\.", r"output_layer\.")


def load_backbones(
    model: PosterV2, ir50: str | Path | None = None, mobilefacenet: str | Path | None = None
) -> list[LoadReport]:
    """Load user-supplied IR-50 and MobileFaceNet weights (their usual state-dict layouts)
    and say what matched; without them both streams train from their random init."""
    reports = []
    if ir50 is not None:
        reports.append(load_into(model.ir_back, ir50, "IR-50", _IR50_UNUSED))
    if mobilefacenet is not None:
        reports.append(load_into(model.face_landback, mobilefacenet, "MobileFaceNet"))
    return reports

"""The VGG-style FER baseline of Khaireddin & Chen (REFERENCE §4): 40×40 grey crops,
four double-conv stages and a 4096-4096 classifier."""

from __future__ import annotations

import torch
from torch import nn


def _stage(c_in: int, c_out: int) -> nn.Sequential:
    # conv (with bias) → BN → ReLU, twice, then 2×2 max-pool
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.MaxPool2d(2),
    )  # fmt: skip


class VGGFER(nn.Module):
    def __init__(
        self, num_classes: int = 7, in_chans: int = 1, input_size: int = 40, dropout: float = 0.2
    ):
        super().__init__()
        widths = (64, 128, 256, 512)
        self.features = nn.Sequential(
            *(_stage(c_in, c_out) for c_in, c_out in zip((in_chans, *widths), widths, strict=False))
        )
        side = input_size // 16
        if side < 1:
            raise ValueError(f"VGG-FER needs inputs of at least 16 px, got {input_size}")
        self.classifier = nn.Sequential(
            nn.Linear(512 * side * side, 4096), nn.Dropout(dropout), nn.ReLU(),
            nn.Linear(4096, 4096), nn.Dropout(dropout), nn.ReLU(),
            nn.Linear(4096, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))

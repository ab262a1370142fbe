"""The VGG-style FER baseline of Khaireddin & Chen: 40×40 grey crops,
four double-conv stages and a 4096-4096 classifier. `vgg-fer-s` is the same design at half
width with a 1024-1024 classifier: 9× fewer MACs, small enough to train on a laptop CPU."""

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
        self,
        num_classes: int = 7,
        in_chans: int = 1,
        input_size: int = 40,
        dropout: float = 0.2,
        widths: tuple[int, ...] = (64, 128, 256, 512),
        hidden: int = 4096,
    ):
        super().__init__()
        self.features = nn.Sequential(
            *(_stage(c_in, c_out) for c_in, c_out in zip((in_chans, *widths), widths, strict=False))
        )
        side = input_size // 2 ** len(widths)
        if side < 1:
            raise ValueError(
                f"VGG-FER with {len(widths)} stages needs inputs of at least "
                f"{2 ** len(widths)} px, got {input_size}"
            )
        self.classifier = nn.Sequential(
            nn.Linear(widths[-1] * side * side, hidden), nn.Dropout(dropout), nn.ReLU(),
            nn.Linear(hidden, hidden), nn.Dropout(dropout), nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x).flatten(1))

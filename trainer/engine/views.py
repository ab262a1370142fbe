"""The input view (`fer_core.view.InputView`) on torch tensors, and logits for whole splits:
the same fields the card states, applied to uint8 N×C×S×S batches on any device."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from fer_core.view import GREY_WEIGHTS, InputView
from trainer.engine.augment import center, ten_crop, warp
from trainer.files import progress_bar

View = InputView  # the trainer's name for it in signatures


def normalize(view: InputView, x01: torch.Tensor) -> torch.Tensor:
    """x in [0, 1] (pixels / 255) → the network's input."""
    x = to_channels(x01, view.channels)
    if view.scale != 255.0:
        x = x * (255.0 / view.scale)
    mean = torch.tensor(view.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(view.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x - mean) / std


def inputs(view: InputView, images: torch.Tensor) -> list[torch.Tensor]:
    """Each test-time view of a uint8 N×C×S×S batch, ready for the network."""
    if view.tta == "tencrop":
        # ten crops of the side the centre view would cover
        side = round(view.size / view.crop)
        full = warp(images, side, side / images.shape[-1]) if side != images.shape[-1] else images
        return [normalize(view, v) for v in ten_crop(full, view.size)]
    return mirrored(view, normalize(view, center(images, view.size, view.crop)))


def mirrored(view: InputView, x: torch.Tensor) -> list[torch.Tensor]:
    """A network input and, for a `flip` view, its mirror image."""
    return [x, x.flip(-1)] if view.tta == "flip" else [x]


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1)
    weights = torch.tensor(GREY_WEIGHTS, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def as_batch_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 N×H×W or N×H×W×3 → uint8 N×C×H×W (no copy for grey)."""
    t = torch.from_numpy(np.ascontiguousarray(images))
    return t.unsqueeze(1) if t.ndim == 3 else t.permute(0, 3, 1, 2).contiguous()


def logits_for(
    forward: Callable[[torch.Tensor], torch.Tensor],
    images: np.ndarray | torch.Tensor,
    view: View,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    progress: str | None = None,
) -> np.ndarray:
    """Mean logits over the view's test-time views for every image, in order."""
    data = images if isinstance(images, torch.Tensor) else as_batch_tensor(images)
    out = []
    starts = range(0, len(data), batch_size)
    for start in progress_bar(
        starts, desc=progress, disable=progress is None, unit="batch", leave=False
    ):
        batch = data[start : start + batch_size].to(device, non_blocking=True)
        views = inputs(view, batch)
        out.append(torch.stack([forward(v).float() for v in views]).mean(0).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def torch_forward(
    model: torch.nn.Module, channels_last: bool = False, dtype: torch.dtype | None = None
):
    """`model` in eval mode as a function of a batch; `dtype` runs it under autocast (the
    training precision), its logits returned in float32."""
    model.eval()

    @torch.no_grad()
    def forward(x: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        if dtype is None:
            return model(x)
        with torch.autocast(x.device.type, dtype=dtype):
            return model(x).float()

    return forward

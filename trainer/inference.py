"""How a network sees a stored image, and logits for whole splits.

A `View` is the evaluation-time input of a model: the centred crop (fraction `crop` of the
stored face) resized to `size`, in 1 or 3 channels, divided by `scale` and normalised by
`mean`/`std`, optionally averaged over test-time views (flip, ten crops). The same View is
written into a model package's card, so torch checkpoints and ONNX packages are evaluated
identically and the app can frame faces the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch

from trainer.augment import center, ten_crop, warp

TTA = ("none", "flip", "tencrop")


@dataclass(frozen=True)
class View:
    size: int
    crop: float = 1.0
    channels: int = 1
    scale: float = 255.0
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    tta: str = "none"

    def __post_init__(self) -> None:
        if self.tta not in TTA:
            raise ValueError(f"test-time augmentation {self.tta!r} is not one of {', '.join(TTA)}")

    def to_dict(self) -> dict:
        return asdict(self)

    def normalize(self, x01: torch.Tensor) -> torch.Tensor:
        """x in [0, 1] (pixels / 255) → the network's input."""
        x = to_channels(x01, self.channels)
        if self.scale != 255.0:
            x = x * (255.0 / self.scale)
        mean = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
        return (x - mean) / std

    def inputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Each test-time view of a uint8 N×C×S×S batch, ready for the network."""
        if self.tta == "tencrop":
            # ten crops of the side the centre view would cover
            side = round(self.size / self.crop)
            full = (
                warp(images, side, side / images.shape[-1]) if side != images.shape[-1] else images
            )
            return [self.normalize(v) for v in ten_crop(full, self.size)]
        x = self.normalize(center(images, self.size, self.crop))
        return [x, x.flip(-1)] if self.tta == "flip" else [x]


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    if x.shape[1] == channels:
        return x
    if channels == 3:
        return x.expand(-1, 3, -1, -1)
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
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
    from tqdm import tqdm

    data = images if isinstance(images, torch.Tensor) else as_batch_tensor(images)
    out = []
    starts = range(0, len(data), batch_size)
    for start in tqdm(starts, desc=progress, disable=progress is None, unit="batch", leave=False):
        batch = data[start : start + batch_size].to(device, non_blocking=True)
        views = view.inputs(batch)
        out.append(torch.stack([forward(v).float() for v in views]).mean(0).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def torch_forward(model: torch.nn.Module, channels_last: bool = False):
    model.eval()

    @torch.no_grad()
    def forward(x: torch.Tensor) -> torch.Tensor:
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return model(x)

    return forward

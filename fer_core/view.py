"""The input view: how a network sees a face square. One type for the whole project — the
trainer validates with it, the exporter writes it into the card, `fer_core.classify` reads it
back to feed the live engine, and any evaluator of a package rebuilds it from the card.

A view is the centred `crop` fraction of the face square resized to `size`×`size`, in 1 (grey)
or 3 (RGB) channels, divided by `scale` and normalised by `mean` / `std`, with the logits
averaged over the test-time views `tta` (none, the face and its mirror, or ten crops).
numpy only: the trainer applies the same fields to torch tensors in `trainer.engine.views`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

TTA = ("none", "flip", "tencrop")
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601, as cv2.COLOR_RGB2GRAY


@dataclass(frozen=True)
class InputView:
    size: int  # side of the square network input, pixels
    crop: float = 1.0  # centre fraction of the face square the network sees
    channels: int = 1
    scale: float = 255.0  # pixel divisor before mean / std
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    tta: str = "none"

    def __post_init__(self) -> None:
        problems = []
        if self.size < 1:
            problems.append(f"size {self.size} (expected ≥ 1 pixel)")
        if not 0 < self.crop <= 1:
            problems.append(f"crop {self.crop} (expected a fraction in (0, 1])")
        if self.channels not in (1, 3):
            problems.append(f"channels {self.channels} (expected 1 or 3)")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            problems.append("mean / std (expected one value per channel)")
        if self.tta not in TTA:
            problems.append(f"tta {self.tta!r} (expected one of {', '.join(TTA)})")
        if problems:
            raise ValueError("input view: " + "; ".join(problems))
        # lists from JSON or a checkpoint compare equal to the tuples written
        object.__setattr__(self, "mean", tuple(float(v) for v in self.mean))
        object.__setattr__(self, "std", tuple(float(v) for v in self.std))

    # ------------------------------------------------------------------ stored forms

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> InputView:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})

    def card_fields(self) -> dict[str, Any]:
        """The view as a package card states it (`input_size`, `channels`, …; the crop's framing
        and description are the exporter's)."""
        return {
            "input_size": [self.size, self.size],
            "channels": self.channels,
            "scale": self.scale,
            "mean": list(self.mean),
            "std": list(self.std),
            "tta": self.tta,
        }

    @classmethod
    def from_card(cls, card: Any) -> InputView:
        """The view a `fer_core.zoo.ModelCard` describes (square inputs only)."""
        h, w = card.input_size
        if h != w:
            raise ValueError(f"card {card.name!r}: input_size {h}×{w}; the project feeds squares")
        return cls(
            size=int(h),
            crop=float(card.crop.get("fraction", 1.0)),
            channels=card.channels,
            scale=float(card.scale),
            mean=tuple(card.mean),
            std=tuple(card.std),
            tta=card.tta,
        )

    # ------------------------------------------------------------------ numpy preprocessing

    def tensor(self, faces: np.ndarray) -> np.ndarray:
        """Network-sized uint8 faces (N×H×W grey, N×H×W×1, or N×H×W×3 BGR as OpenCV gives
        them) → the float32 N×C×H×W network input."""
        x = faces[..., None] if faces.ndim == 3 else faces
        x = x.astype(np.float32)
        if self.channels == 1 and x.shape[-1] == 3:
            x = x[..., ::-1] @ np.asarray(GREY_WEIGHTS, np.float32)[:, None]  # BGR → grey
        elif self.channels == 3:
            x = np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x[..., ::-1]  # BGR → RGB
        x = x.transpose(0, 3, 1, 2) / self.scale
        mean = np.asarray(self.mean, np.float32).reshape(1, -1, 1, 1)
        std = np.asarray(self.std, np.float32).reshape(1, -1, 1, 1)
        return np.ascontiguousarray((x - mean) / std, dtype=np.float32)

    def live_views(self, x: np.ndarray) -> list[np.ndarray]:
        """The test-time views of a network input that are run on live video."""
        if self.tta == "tencrop":
            raise ValueError("ten crops per face cost ten forwards: not run live (export --tta)")
        return [x, np.ascontiguousarray(x[..., ::-1])] if self.tta == "flip" else [x]

"""Saliency maps (as Khaireddin & Chen): the gradient of the top logit with respect to the input,
|grad| maxed over channels, then min-max normalised over the whole map (the notebook's per-row
normalisation is a bug)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainer.engine.augment import center
from trainer.engine.views import View, normalize


def saliency(model: nn.Module, images: torch.Tensor, view: View) -> tuple[np.ndarray, np.ndarray]:
    """(saliency maps N×H×W in [0, 1], predicted class per image) for uint8 N×C×S×S images."""
    model.eval()
    x = normalize(view, center(images, view.size, view.crop)).requires_grad_(True)
    logits = model(x)
    top = logits.argmax(1)
    logits.gather(1, top[:, None]).sum().backward()
    grad = x.grad.abs().amax(1)
    lo = grad.flatten(1).min(1).values.view(-1, 1, 1)
    hi = grad.flatten(1).max(1).values.view(-1, 1, 1)
    maps = ((grad - lo) / (hi - lo).clamp(min=1e-12)).detach().numpy()
    return maps, top.numpy()


def saliency_figure(
    checkpoint_path: str | Path,
    images: torch.Tensor,
    targets: np.ndarray,
    out: str | Path,
    names: list[str] | None = None,
) -> Path:
    """A PNG with each image, its saliency map and the overlay, titled true → predicted."""
    from trainer.engine import checkpoint
    from trainer.evaluation.plots import saliency_grid

    model, state = checkpoint.load_model(checkpoint_path)
    view = state.view
    labels = state.labels
    maps, predicted = saliency(model, images, view)
    shown = (center(images, view.size, view.crop) * 255).round().byte()[:, 0].numpy()
    titles = [
        f"{(names or [''] * len(maps))[i]} true {labels[t]} → {labels[p]}".strip()
        for i, (t, p) in enumerate(zip(targets, predicted, strict=True))
    ]
    return saliency_grid(list(shown), list(maps), titles, out)

"""Parameter and MAC counts of a model at a given input, measured by running it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


@dataclass(frozen=True)
class Complexity:
    params: int  # parameters on the executed path (the output depends on them)
    total_params: int  # everything in the state, including modules the forward never runs
    macs: int  # multiply-accumulates of convolutions and matrix products, batch 1
    norm_macs: int  # one per output element of BN/GN/LN layers, as Zen-NAS counts them


def measure(model: nn.Module, input_shape: tuple[int, int, int]) -> Complexity:
    """Run one eval-mode forward on a (C, H, W) input and count what it used.

    A parameter counts when the output's gradient reaches it, so an auxiliary head that eval
    mode skips, or a regressor whose output is discarded, is left out, as a paper's count is.
    """
    was_training = model.training
    saved = {p: (p.requires_grad, p.grad) for p in model.parameters()}
    model.eval()
    try:
        for p in saved:
            p.requires_grad_(True)
            p.grad = None
        norm_elements = 0

        def count(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            nonlocal norm_elements
            norm_elements += output.numel()

        hooks = [
            m.register_forward_hook(count)
            for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._NormBase | nn.GroupNorm | nn.LayerNorm)
        ]
        counter = FlopCounterMode(display=False)
        try:
            with counter:
                out = model(torch.randn(1, *input_shape))
        finally:
            for hook in hooks:
                hook.remove()
        out.float().sum().backward()
        used = sum(p.numel() for p in saved if p.grad is not None)
        return Complexity(
            params=used,
            total_params=sum(p.numel() for p in saved),
            macs=counter.get_total_flops() // 2,
            norm_macs=norm_elements,
        )
    finally:
        for p, (flag, grad) in saved.items():
            p.grad = grad
            p.requires_grad_(flag)
        model.train(was_training)

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


def measure(model: nn.Module, input_shape: tuple[int, int, int]) -> Complexity:
    """Run one eval-mode forward on a (C, H, W) input and count what it used.

    A parameter counts when the output's gradient reaches it, so an auxiliary head that eval
    mode skips, or a regressor whose output is discarded, is left out, as a paper's count is.
    """
    was_training = model.training
    flags = {p: p.requires_grad for p in model.parameters()}
    model.eval()
    try:
        for p in flags:
            p.requires_grad_(True)
            p.grad = None
        counter = FlopCounterMode(display=False)
        with counter:
            out = model(torch.randn(1, *input_shape))
        out.float().sum().backward()
        used = sum(p.numel() for p in flags if p.grad is not None)
        return Complexity(
            params=used,
            total_params=sum(p.numel() for p in flags),
            macs=counter.get_total_flops() // 2,
        )
    finally:
        for p, flag in flags.items():
            p.grad = None
            p.requires_grad_(flag)
        model.train(was_training)

"""MobileNetV2 (Sandler et al., CVPR 2018), torchvision's, with a grey stem: the known-good
reference of the ZenNet learnability study (a depthwise inverted-residual network that learns on
48 px faces), and a model in its own right. torchvision is a trainer dependency; the app runs
exported ONNX."""

from __future__ import annotations

from torch import nn


def mobilenet_v2(
    width_mult: float = 0.5, num_classes: int = 7, in_chans: int = 1, dropout: float = 0.2
) -> nn.Module:
    import torchvision

    model = torchvision.models.mobilenet_v2(
        width_mult=width_mult, num_classes=num_classes, dropout=dropout
    )
    if in_chans != 3:
        stem = model.features[0][0]
        model.features[0][0] = nn.Conv2d(in_chans, stem.out_channels, 3, 2, 1, bias=False)
        nn.init.kaiming_normal_(model.features[0][0].weight, mode="fan_out")  # torchvision's
    return model

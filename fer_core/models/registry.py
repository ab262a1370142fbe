"""The model registry: every network the app runs and the trainer trains, by name.

Importing this module does not import torch; `create_model` does, when it builds. Each entry
carries its native input (size, channels, normalisation), the role a timm pretrained config
plays, so a model package's card can be filled from it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

_log = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str  # autofernet | zennet | poster | vgg | mobilenet
    description: str
    input_size: tuple[int, int]  # native (H, W)
    channels: int
    num_classes: int
    builder: Callable[..., nn.Module] = field(repr=False)
    defaults: dict[str, Any] = field(default_factory=dict)
    scale: float = 255.0  # pixels are divided by this before mean/std
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)


_REGISTRY: dict[str, ModelSpec] = {}


def register(spec: ModelSpec) -> ModelSpec:
    if spec.name in _REGISTRY:
        raise ValueError(f"model {spec.name!r} is registered twice")
    _REGISTRY[spec.name] = spec
    return spec


def list_models() -> list[str]:
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(
            f"unknown model {name!r}; registered models: {', '.join(list_models())}"
        ) from None


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Build a registered model; `num_classes`, `in_chans` and family options can be overridden."""
    spec = get_spec(name)
    kwargs = {"num_classes": spec.num_classes, "in_chans": spec.channels, **spec.defaults}
    kwargs.update(overrides)
    return spec.builder(**kwargs)


# --------------------------------------------------------------------------- family builders


def _description(value: Any, cls: Any) -> Any:
    """A genotype / structure given as an object, as text, or as the path of a file."""
    if isinstance(value, cls):
        return value
    is_text = isinstance(value, str) and ("(" in value or "{" in value)
    if isinstance(value, Path) or not is_text:
        return cls.from_file(value)
    return cls.parse(value)


def _autofernet(genotype: Any = None, **kwargs: Any) -> nn.Module:
    from fer_core.models.autofernet import AutoFERNet
    from fer_core.models.genotype import AUTO_FERNET, Genotype

    return AutoFERNet(_description(genotype, Genotype) if genotype else AUTO_FERNET, **kwargs)


def _zennet(structure: Any, **kwargs: Any) -> nn.Module:
    from fer_core.models.structure import Structure
    from fer_core.models.zennet import ZenNet

    return ZenNet(_description(structure, Structure), **kwargs)


def _poster(
    ir50_weights: Any = None, mobilefacenet_weights: Any = None, **kwargs: Any
) -> nn.Module:
    from fer_core.models.poster import PosterV2, load_backbones

    model = PosterV2(**kwargs)
    model.load_reports = load_backbones(model, ir50_weights, mobilefacenet_weights)
    for report in model.load_reports:
        log = _log.info if report.complete and not report.unexpected else _log.warning
        log(report.summary())
    return model


def _vgg(**kwargs: Any) -> nn.Module:
    from fer_core.models.vgg import VGGFER

    return VGGFER(**kwargs)


def _mobilenet(**kwargs: Any) -> nn.Module:
    from fer_core.models.mobilenet import mobilenet_v2

    return mobilenet_v2(**kwargs)


def _register_builtin() -> None:
    from fer_core.models.structure import ZENNET_M, ZENNET_R

    grey = {"input_size": (48, 48), "channels": 1, "mean": (0.0,), "std": (1.0,)}
    rgb = {"input_size": (224, 224), "channels": 3, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
    for name, layers in (("autofernet", 12), ("autofernet-l20", 20)):
        register(
            ModelSpec(
                name=name,
                family="autofernet",
                num_classes=7,
                builder=_autofernet,
                description=f"Auto-FERNet, published genotype, L={layers}, C=36",
                defaults={"layers": layers, "channels": 36},
                **grey,
            )
        )
    for name, structure, space in (
        ("zennet-m-sa", ZENNET_M, "M (IDW space)"),
        ("zennet-r-sa", ZENNET_R, "R (ResNet space)"),
    ):
        register(
            ModelSpec(
                name=name,
                family="zennet",
                num_classes=7,
                builder=_zennet,
                description=f"ZenNet-{space} with Shuffle Attention",
                defaults={"structure": structure, "use_sa": True},
                **rgb,
            )
        )
    for name, classes in (("poster-v2", 7), ("poster-v2-8", 8)):
        register(
            ModelSpec(
                name=name,
                family="poster",
                num_classes=classes,
                builder=_poster,
                description=f"POSTER V2 (IR-50 + MobileFaceNet, 2-block ViT), {classes} classes",
                **rgb,
            )
        )
    for name, description, defaults in (
        ("vgg-fer", "VGG baseline of Khaireddin & Chen, 40 px crops", {}),
        (
            "vgg-fer-s",
            "VGG baseline at half width, 1024-wide classifier, 40 px crops",
            {"widths": (32, 64, 128, 256), "hidden": 1024},
        ),
    ):
        register(
            ModelSpec(
                name=name,
                family="vgg",
                num_classes=7,
                builder=_vgg,
                description=description,
                defaults=defaults,
                **{**grey, "input_size": (40, 40)},
            )
        )
    register(
        ModelSpec(
            name="mobilenetv2-050",
            family="mobilenet",
            num_classes=7,
            builder=_mobilenet,
            description="torchvision MobileNetV2 ×0.5, grey stem: the ZenNet study's reference",
            defaults={"width_mult": 0.5},
            **grey,
        )
    )


_register_builtin()

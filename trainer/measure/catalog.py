"""The registered models with their measured sizes: what `python -m trainer models` prints."""

from __future__ import annotations

from dataclasses import dataclass

from fer_core.models import create_model, get_spec
from trainer.evaluation.table import render, size


@dataclass(frozen=True)
class ModelRow:
    name: str
    family: str
    params: int  # on the executed path, eval mode (no auxiliary head)
    macs: int  # at the native input, batch 1
    input_size: list[int]  # native [H, W]
    channels: int
    classes: int
    description: str


def describe(name: str) -> ModelRow:
    from fer_core.models.complexity import measure

    spec = get_spec(name)
    c = measure(create_model(name), (spec.channels, *spec.input_size))
    return ModelRow(
        name=name,
        family=spec.family,
        params=c.params,
        macs=c.macs,
        input_size=list(spec.input_size),
        channels=spec.channels,
        classes=spec.num_classes,
        description=spec.description,
    )


def format_table(rows: list[ModelRow]) -> str:
    return render(
        ("model", "family", "params", "MACs", "input C×H×W", "classes", "description"),
        [
            (
                r.name,
                r.family,
                f"{r.params / 1e6:.3f}M",
                f"{r.macs / 1e9:.3f}G",
                size(r.channels, r.input_size),
                str(r.classes),
                r.description,
            )
            for r in rows
        ],
        align="llrrrrl",
    )

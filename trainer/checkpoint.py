"""The trainer's checkpoint: one file holding everything needed to rebuild the network without
code changes (registry name plus genotype or structure text), its labels and input view, the
weights, the optimiser and schedule state, the epoch, every RNG state and the metrics so far.
Written atomically (temp file in the same folder, then rename), so an interrupted write never
leaves a corrupt checkpoint."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

FORMAT = "fer-trainer-checkpoint/1"


def atomic_write(path: str | Path, write) -> Path:
    """Call `write(tmp_path)`, then rename the temp file over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save(path: str | Path, state: dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save({"format": FORMAT, **state}, tmp))


def load(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:
        raise ValueError(f"{path}: not a readable checkpoint ({err})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a trainer checkpoint (expected format {FORMAT})")
    return state


def build_model(arch: dict[str, Any]) -> nn.Module:
    """The network a checkpoint's `arch` describes, with fresh weights."""
    from fer_core.models import create_model

    overrides = arch.get("overrides", {})
    try:
        return create_model(arch["model"], **overrides)
    except TypeError as err:  # an option the builder does not take
        raise ValueError(f"model {arch['model']!r} with options {overrides}: {err}") from None


def load_weights(source: str | Path) -> dict[str, Any]:
    """What fine-tuning, k-fold and ensembling need from a trained network (`arch`, `labels`,
    `view`, the training views under `recipe`, and the weights under `model`): a trainer
    checkpoint (.pt), or a model package exported with `--torch-weights`, which is what
    survives of a run once its folder is gone."""
    path = Path(source)
    if path.suffix in (".pt", ".pth"):
        return load(path)
    from dataclasses import asdict

    from fer_core.classify import package_network
    from fer_core.zoo import load_package
    from trainer.evaluate import package_view

    package = load_package(path)
    card = package.card
    return {
        "arch": card.architecture,
        "labels": list(card.labels),
        "view": asdict(package_view(card)),
        "recipe": card.train.get("views"),  # absent from packages exported before it was kept
        "model": package_network(package).state_dict(),
    }


def load_model(source: str | Path) -> tuple[nn.Module, dict[str, Any]]:
    """(network in eval mode with the trained weights, `load_weights(source)`)."""
    state = load_weights(source)
    model = build_model(state["arch"])
    model.load_state_dict(state["model"])
    return model.eval(), state

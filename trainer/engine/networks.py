"""The network of a run: what architecture a `--model` names, the input view it is validated
in, and fine-tuning's start from another network's weights (output rows matched by label)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from fer_core.models import get_spec
from trainer.engine import checkpoint
from trainer.engine.recipes import Recipe
from trainer.engine.views import View


def describe_architecture(model: str, num_classes: int) -> dict[str, Any]:
    """The checkpoint's `arch`: registry name plus overrides (the genotype or structure text
    when `model` is a file), enough to rebuild the network with `checkpoint.build_model`.
    A checkpoint (`.pt`) or a package with torch weights stands for its own architecture, with
    `num_classes` replaced."""
    from fer_core.models import list_models
    from fer_core.models.genotype import Genotype
    from fer_core.models.structure import Structure

    if model in list_models():
        return {"model": model, "overrides": {"num_classes": num_classes}}
    path = Path(model)
    if path.suffix in (".pt", ".pth") or path.is_dir() or path.name == "card.json":
        # fine-tuning: the same network, sized for the new label set
        arch = checkpoint.load_weights(path).arch
        return {
            "model": arch["model"],
            "overrides": {**arch.get("overrides", {}), "num_classes": num_classes},
        }
    if not path.is_file():
        raise ValueError(
            f"--model {model!r} is neither a registered model ({', '.join(list_models())}) "
            "nor a genotype / structure-string file nor a checkpoint (.pt) or model package"
        )
    text = path.read_text()
    if "normal" in text or "Genotype" in text:
        genotype = Genotype.from_file(path)
        return {
            "model": "autofernet",
            "overrides": {"num_classes": num_classes, "genotype": genotype.to_text()},
        }
    structure = Structure.from_file(path)  # trained with the input channels it was searched for
    overrides = {"structure": structure.to_text(), "in_chans": structure.blocks[0].c_in}
    return {"model": "zennet-m-sa", "overrides": {"num_classes": num_classes, **overrides}}


def view_of(arch: dict[str, Any], recipe: Recipe) -> View:
    """The evaluation view: the recipe's size and crop, the model's normalisation; a network
    built with other input channels than its registry entry (a grey searched ZenNet) gets the
    channel mean of that normalisation."""
    spec = get_spec(arch["model"])
    channels = arch.get("overrides", {}).get("in_chans", spec.channels)
    mean, std = tuple(spec.mean), tuple(spec.std)
    if channels != spec.channels:
        mean, std = (sum(mean) / len(mean),) * channels, (sum(std) / len(std),) * channels
    return View(
        size=recipe.eval_size or spec.input_size[0],
        crop=recipe.eval_crop,
        channels=channels,
        scale=spec.scale,
        mean=mean,
        std=std,
        tta=recipe.eval_tta,
    )


def init_from(model: nn.Module, path: str | Path, labels: list[str]) -> list[str]:
    """Load a checkpoint's (or a package's torch) weights for fine-tuning. The output layer's
    rows are matched by label name, so a FER2013 model (with neutral) can start a CK+ one (with
    contempt): shared classes keep their weights, new ones keep their fresh init. Returns what
    was not loaded."""
    from trainer.data.labels import canonical

    state = checkpoint.load_weights(path)
    old_labels = [canonical(n) for n in state.labels]
    rows = [old_labels.index(canonical(n)) if canonical(n) in old_labels else None for n in labels]
    own = model.state_dict()
    fresh = []
    for key, value in own.items():
        old = state.model.get(key)
        if (
            old is not None
            and old.shape == value.shape
            and (
                value.ndim == 0 or value.shape[0] != len(labels) or rows == list(range(len(labels)))
            )
        ):
            own[key] = old
        elif (
            old is not None and old.shape[1:] == value.shape[1:] and old.shape[0] == len(old_labels)
        ):
            for new_row, old_row in enumerate(rows):  # the output layer, row by label
                if old_row is not None:
                    own[key][new_row] = old[old_row]
            fresh.extend(f"{key}[{labels[i]}]" for i, r in enumerate(rows) if r is None)
        else:
            fresh.append(key)
    model.load_state_dict(own)
    return fresh

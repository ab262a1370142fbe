"""`python -m trainer store-fp16`: an existing model package's model.onnx rewritten in place
with its weights stored as float16 (`half_width.store_half`), from the package alone: the
checkpoints that made the shipped packages are no longer in the tree, so nothing is exported
again. The new file is compared with the float32 one on every face of the splits the card's
metrics were measured on, those metrics are measured again for the file as shipped (as an
export measures them: `card_metric`), and the card gets the new sha256, `extra.weights` and
the command at the end of `train.chain`. model.int8.onnx (quantized from the float32 graph)
and model.pt are left as they are, and so are their figures."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from fer_core.zoo import CARD, FILES, load_package, sha256
from trainer import provenance
from trainer.export.half_width import (
    Agreement,
    Halving,
    compare,
    store_half,
    stored_as,
    weights_record,
)
from trainer.export.package import card_metric, clear_stale_staging, staging_folder
from trainer.files import atomic_write, interrupts_deferred


@dataclass
class Repacked:
    path: Path
    halving: Halving
    agreement: list[Agreement] = field(default_factory=list)
    top1: dict[str, tuple[float, float]] = field(default_factory=dict)  # card key: before, after
    redrawn: list[str] = field(default_factory=list)  # confusion pictures drawn again
    int8_agreement: float | None = None  # model.int8.onnx's top-1 against the new file's

    def report(self) -> str:
        lines = [self.halving.summary()]
        lines += [f"  agreement with the float32 file, {a.summary()}" for a in self.agreement]
        lines += [
            f"  {key:<16} top-1 {100 * old:.2f}% → {100 * new:.2f}% (card, as shipped)"
            for key, (old, new) in self.top1.items()
        ]
        if self.int8_agreement is not None:
            lines.append(f"  model.int8.onnx's top-1 as the new file's on "
                         f"{100 * self.int8_agreement:.2f}% of the test faces")  # fmt: skip
        if self.redrawn:
            lines.append(f"  redrawn (their confusion changed): {', '.join(self.redrawn)}")
        return "\n".join(lines)


def store_package_fp16(
    package: str | Path,
    dataset,
    *,
    transfer: list = (),
    threads: int = 0,
    command: str = "",
) -> Repacked:
    """Store the package's model.onnx weights as float16, in place. `dataset` is the one whose
    validation and test splits the card's metrics come from, `transfer` the datasets of its
    other fp32 metrics (`ckplus/all`); a card metric whose dataset is not given is refused,
    since every figure in the card must be for the file as shipped. A package stored so already
    is left alone (`Repacked.halving.already`). The files are replaced atomically, the card
    last, as an export swaps them in."""
    done = already_stored(package)
    if done:
        return done
    package = load_package(package)
    folder = package.path
    model = package.model_file("fp32")
    card = json.loads((folder / CARD).read_text())
    scored = _scored_splits(folder / CARD, card, dataset, transfer)
    clear_stale_staging(folder)  # and refuse while an export of this package is running
    staging = staging_folder(folder, os.getpid())
    staging.mkdir()
    try:
        shipped = staging / FILES["fp32"]
        halving = store_half(model, shipped)
        if not halving.halved:
            return Repacked(folder, halving)
        result = Repacked(folder, replace(halving, path=folder / FILES["fp32"]))
        for data, split, picture in scored:
            compared = compare(model, shipped, card["labels"], _view(package), data, split, threads)
            result.agreement.append(compared.agreement)
            new, old = (_evaluation(folder, data, p, card["labels"]) for p in
                        (compared.shipped, compared.reference))  # fmt: skip
            key, metric = card_metric(new, transfer=data is not dataset)
            if key in card["metrics"]:
                result.top1[key] = (card["metrics"][key]["top1"], metric["top1"])
                card["metrics"][key] = metric
            if (folder / picture).is_file() and new.metrics.confusion != old.metrics.confusion:
                from trainer.evaluation.evaluate import confusion_picture

                confusion_picture(new, staging / picture, card["name"])
                result.redrawn.append(picture)
        int8 = card.get("extra", {}).get("int8", {})
        if package.has("int8") and "top1_agreement_with_fp32" in int8:
            result.int8_agreement = _int8_agreement(package, dataset, shipped, threads)
            int8["top1_agreement_with_fp32"] = result.int8_agreement
        _update_card(card, model, shipped, halving, result.agreement, command)
        text = json.dumps(card, indent=2) + "\n"
        atomic_write(staging / CARD, lambda tmp: Path(tmp).write_text(text))
        with interrupts_deferred():  # the model, the pictures, the card last
            for name in [FILES["fp32"], *result.redrawn, CARD]:
                os.replace(staging / name, folder / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return result


def already_stored(package: str | Path) -> Repacked | None:
    """The package's result where its model.onnx stores float16 weights already, else None;
    the file's sha256 is checked (an altered file is refused) and bad input raises
    `PackageError`."""
    package = load_package(package)
    model = package.model_file("fp32")
    if stored_as(model) != "float16":
        return None
    size = model.stat().st_size
    return Repacked(package.path, Halving(model, 0, 0, size, size, already=True))


def _scored_splits(where: Path, card: dict, dataset, transfer: list) -> list[tuple]:
    """(dataset, split, confusion picture) for each fp32 metric of the card, and the
    validation and test splits of `dataset` (what the agreement is measured on) in any case."""
    given = {dataset.name: dataset, **{t.name: t for t in transfer}}
    if len(given) < 1 + len(transfer):
        raise ValueError(
            f"--transfer: each dataset once, and not --dataset's ({dataset.name}) again"
        )
    keys = [k.split("/")[:2] for k in card.get("metrics", {}) if not k.endswith("/int8")]
    measured = {name for name, _ in keys}
    if dataset.name not in measured:
        raise ValueError(
            f"--dataset {dataset.name}: {where} has no metrics on it; give the dataset its "
            f"metrics were measured on ({', '.join(sorted(measured)) or 'none'})"
        )
    missing, unused = sorted(measured - set(given)), sorted(set(given) - measured)
    if missing:
        raise ValueError(
            f"{where}: its metrics on {missing[0]} must be measured again for the file as "
            f"shipped; give --transfer {missing[0]}=PATH"
        )
    if unused:
        raise ValueError(f"--transfer {unused[0]}: {where} has no metrics on {unused[0]}")
    wanted = [(dataset.name, dataset.key(s)) for s in (dataset.val, dataset.test) if s]
    for name, split in keys:
        if (name, given[name].key(split)) not in wanted:
            wanted.append((name, given[name].key(split)))
    scored = []
    for name, split in dict.fromkeys(wanted):
        data = given[name]
        picture = f"confusion-{split}.png" if data is dataset else f"confusion-{name}-{split}.png"
        scored.append((data, split, picture))
    return scored


def _int8_agreement(package, dataset, shipped: Path, threads: int) -> float:
    """How often model.int8.onnx's top-1 equals the new model.onnx's, on the split an export
    measures it on (`package._int8_agreement`)."""
    from trainer.evaluation.evaluate import Predictor, onnx_forward, predict

    split = dataset.test or dataset.val
    top1 = []
    for path in (shipped, package.model_file("int8")):
        predictor = Predictor(str(package.path), "onnxruntime", "fp32", list(package.card.labels),
                              _view(package), onnx_forward(path, threads))  # fmt: skip
        top1.append(predict(predictor, dataset, split).logits.argmax(1))
    return round(float((top1[0] == top1[1]).mean()), 6)


def _view(package):
    from trainer.engine.views import View

    return View.from_card(package.card)


def _evaluation(folder: Path, dataset, predictions, labels: list[str]):
    """An `evaluate` result from predictions already made."""
    from trainer.engine.metrics import compute
    from trainer.evaluation.evaluate import Evaluation

    return Evaluation(
        source=str(folder),
        backend="onnxruntime",
        precision="fp32",
        dataset=dataset.name,
        split=predictions.split,
        tta=predictions.tta,
        left_out=predictions.left_out,
        seconds=predictions.seconds,
        metrics=compute(predictions.logits, predictions.targets, labels),
    )


def _update_card(card: dict, old: Path, new: Path, halving, agreement, command: str) -> None:
    """The card of the float16-stored file: its sha256, how it is stored and agrees with the
    float32 file (whose sha256 and parity with torch at export are kept beside), the command at
    the end of `train.chain` (a card without one starts it with its training command), and the
    software that measured the figures."""
    extra = card.setdefault("extra", {})
    more = {"float32_sha256": sha256(old)}
    if "parity" in extra:  # measured on the float32 graph at export, not on this file
        more["float32_parity"] = extra.pop("parity")
    extra["weights"] = weights_record(agreement, halving.bytes_before, halving.bytes_after, **more)
    card["sha256"][FILES["fp32"]] = sha256(new)
    train = card.setdefault("train", {})
    if command:
        start = [train["command"]] if train.get("command") else []
        train["chain"] = [*(train.get("chain") or start), command]
    train.setdefault("provenance", {})["weights"] = provenance.collect()

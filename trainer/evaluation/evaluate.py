"""`python -m trainer evaluate`: score a checkpoint (torch) or a model package (onnxruntime) on
a dataset split, alike. Classes are matched by name: samples whose class the model lacks are
left out and counted, and the metrics are in the model's label order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trainer.data import Dataset
from trainer.data.labels import index_map
from trainer.engine.metrics import Metrics, compute
from trainer.engine.views import View, as_batch_tensor, logits_for, torch_forward


@dataclass
class Predictor:
    """Anything that maps a normalised N×C×H×W batch to logits, with its labels and view."""

    source: str
    backend: str  # torch | onnxruntime
    precision: str  # fp32 | int8
    labels: list[str]
    view: View
    forward: Callable[[torch.Tensor], torch.Tensor]


def load_predictor(
    path: str | Path, precision: str = "fp32", device: str = "cpu", threads: int = 0
) -> Predictor:
    """A trainer checkpoint (`.pt`) or a model package (its folder, card or ONNX file)."""
    path = Path(path)
    if path.suffix in (".pt", ".pth"):
        from trainer.engine import checkpoint

        model, state = checkpoint.load_model(path)
        channels_last = state.recipe is not None and state.recipe.channels_last
        model = model.to(device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        return Predictor(
            str(path),
            "torch",
            "fp32",
            list(state.labels),
            state.view,
            torch_forward(model, channels_last),
        )
    from fer_core.zoo import FILES, load_package

    package = load_package(path)
    if path.suffix == ".onnx":
        precision = next((p for p, name in FILES.items() if name == path.name), precision)
    return Predictor(
        str(package.path),
        "onnxruntime",
        precision,
        list(package.card.labels),
        View.from_card(package.card),
        onnx_forward(package.model_file(precision), threads),
    )


def onnx_forward(path: Path, threads: int = 0) -> Callable[[torch.Tensor], torch.Tensor]:
    from fer_core.zoo import open_session

    session = open_session(path, threads)

    def forward(x: torch.Tensor) -> torch.Tensor:
        batch = x.detach().cpu().contiguous().numpy().astype(np.float32, copy=False)
        return torch.from_numpy(session.run(["logits"], {"image": batch})[0])

    return forward


@dataclass
class Evaluation:
    source: str
    backend: str
    precision: str
    dataset: str
    split: str
    tta: str
    left_out: int  # samples of classes the model does not have
    seconds: float
    metrics: Metrics

    def report(self) -> str:
        m = self.metrics
        lines = [
            f"{self.source} ({self.backend}, {self.precision}) on {self.dataset} {self.split}, "
            f"TTA {self.tta}",
            f"  {m.summary()}",
        ]
        if self.left_out:
            lines.append(f"  {self.left_out} samples of classes the model lacks were left out")
        width = max(len(n) for n in m.labels)
        lines += [f"  recall {name:<{width}} {100 * r:6.2f}%" for name, r in m.recall.items()]
        return "\n".join(lines)


def split_images(dataset: Dataset, split: str, view: View) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 N×C×S×S images of a split (path datasets decoded at the side the view needs)."""
    data = dataset[split]
    if not data.in_memory:
        data = data.materialize(round(view.size / view.crop), view.channels)
    return as_batch_tensor(data.images), data.targets


def scored_split(dataset: Dataset, split: str | None = None) -> str:
    """The key of the split to score: `split`, else the test, validation or only split."""
    only = next(iter(dataset.splits)) if len(dataset.splits) == 1 else None
    return dataset.key(split or dataset.test or dataset.val or only or "test")


@dataclass
class Predictions:
    """A predictor's logits on a split (the samples whose class it has), in its label order."""

    logits: np.ndarray
    targets: np.ndarray  # indices into the predictor's labels
    index: np.ndarray  # each row's sample in the split
    split: str  # described: `test (PrivateTest)`
    tta: str
    left_out: int  # samples of classes the model does not have
    seconds: float


def predict(
    predictor: Predictor,
    dataset: Dataset,
    split: str | None = None,
    tta: str | None = None,
    batch_size: int = 256,
) -> Predictions:
    split = scored_split(dataset, split)
    view = replace(predictor.view, tta=tta) if tta else predictor.view
    images, targets = split_images(dataset, split, view)
    mapping = np.array(
        [-1 if i is None else i for i in index_map(dataset.labels, tuple(predictor.labels))]
    )
    mapped = mapping[targets]
    keep = mapped >= 0
    t0 = time.perf_counter()
    logits = logits_for(
        predictor.forward,
        images[torch.from_numpy(keep)],
        view,
        batch_size,
        progress=f"evaluate {split}",
    )
    return Predictions(
        logits=logits,
        targets=mapped[keep],
        index=np.flatnonzero(keep),
        split=dataset.describe(split),
        tta=view.tta,
        left_out=int((~keep).sum()),
        seconds=time.perf_counter() - t0,
    )


def evaluate(
    predictor: Predictor,
    dataset: Dataset,
    split: str | None = None,
    tta: str | None = None,
    batch_size: int = 256,
) -> Evaluation:
    p = predict(predictor, dataset, split, tta, batch_size)
    return Evaluation(
        source=predictor.source,
        backend=predictor.backend,
        precision=predictor.precision,
        dataset=dataset.name,
        split=p.split,
        tta=p.tta,
        left_out=p.left_out,
        seconds=p.seconds,
        metrics=compute(p.logits, p.targets, predictor.labels),
    )


def write_report(evaluation: Evaluation, out: str | Path) -> dict[str, Path]:
    """`evaluation.json` and `confusion.png` in `out`."""
    from trainer.files import atomic_write

    out = Path(out)
    text = json.dumps(asdict(evaluation), indent=2)
    files = {"json": atomic_write(out / "evaluation.json", lambda tmp: Path(tmp).write_text(text))}
    files["confusion"] = confusion_picture(evaluation, out / "confusion.png")
    return files


def confusion_picture(evaluation: Evaluation, path: str | Path, name: str | None = None) -> Path:
    """The confusion matrix as a PNG titled with the model (`name`, default its file name),
    the split and the top-1."""
    from trainer.evaluation.plots import confusion

    m = evaluation.metrics
    title = (
        f"{name or Path(evaluation.source).name} on {evaluation.dataset} {evaluation.split}: "
        f"top-1 {100 * m.top1:.2f}%"
    )
    return confusion(m.confusion, m.labels, path, title)


def card_key(evaluation: Evaluation) -> str:
    """Where a card keeps this evaluation's figures: `ckplus/all`, `fer2013/test/int8`."""
    key = f"{evaluation.dataset}/{evaluation.split.split()[0]}"
    return key + ("/int8" if evaluation.precision == "int8" else "")


def software_warning(evaluation: Evaluation) -> str | None:
    """A line for an evaluation that reproduces a package card's own figure under software
    other than the export's (`trainer.provenance`): figures may then move in the last digits."""
    if evaluation.backend != "onnxruntime":
        return None
    from fer_core.zoo import load_package
    from trainer.provenance import differences

    card = load_package(evaluation.source).card
    key = card_key(evaluation)
    recorded = card.train.get("provenance", {}).get("export")
    changed = differences(recorded) if key in card.metrics and recorded else []
    if not changed:
        return None
    return (
        f"warning: {evaluation.source}/card.json measured {key} under other software "
        f"({', '.join(changed)}): its figures may differ from these in the last digits"
    )


def as_card_metrics(evaluation: Evaluation) -> dict[str, Any]:
    m = evaluation.metrics
    return {
        "split": evaluation.split,
        "n": m.n,
        "top1": round(m.top1, 6),
        "top2": round(m.top2, 6),
        "macro_f1": round(m.macro_f1, 6),
        "tta": evaluation.tta,
        "recall": m.recall,
    }

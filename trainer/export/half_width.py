"""A model.onnx whose weights are stored at half width: each float32 tensor of `MIN_ELEMENTS`
or more is kept as float16 and widened back by a Cast node that takes its old name, so every
consumer still reads float32. onnxruntime folds those casts once when it opens the session, so
a face is computed in float32 exactly as before; only the weights' values are rounded to
float16 (11 significant bits). The graph's inputs, outputs and opset are unchanged. Issue 33:
a fresh clone's working tree under 120 MB, of which the float32 ONNX files were 61 MB.

`store_half` is torch-free (`onnx` and numpy); `compare` runs both files as `evaluate` does."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.files import atomic_write

# Smaller float tensors (biases, norm scales, attention gates) stay float32: in the shipped
# packages they are at most 1.4 % of the weights' bytes, and each would cost a Cast node.
MIN_ELEMENTS = 256
# The model's metadata_props entry that says how its weights are stored.
STORAGE_KEY = "fer.weights"
STORED_FP16 = "float16, widened to float32 by Cast nodes at load"
# The float16-stored file's logits may differ from torch's float32 ones by this much on real
# faces: the rounding of the weights (relative 2^-11 each) adds up through the layers. Against
# their float32 files, on every FER2013 validation and test face, the shipped packages moved by
# 4.2e-3 (autofernet-l8c16) to 1.5e-2 (ensemble-3, three networks); 1e-4 stays the float32
# graph's own gate (`package.PARITY_TOLERANCE`).
FP16_PARITY_TOLERANCE = 5e-2
WEIGHTS = ("fp16", "fp32")  # --weights: how model.onnx stores its float weights
HOW = (
    f"model.onnx stores each float32 tensor of {MIN_ELEMENTS} values or more as float16, "
    "widened by a Cast node that onnxruntime folds once at session start: inputs, outputs and "
    "arithmetic stay float32 (model.int8.onnx and model.pt are unchanged)"
)


@dataclass(frozen=True)
class Halving:
    """What `store_half` did to one file."""

    path: Path
    halved: int  # tensors now stored as float16
    kept: int  # float32 tensors left at full width (fewer than MIN_ELEMENTS values)
    bytes_before: int
    bytes_after: int
    already: bool  # the file was fp16-stored already: nothing was written

    def summary(self) -> str:
        if self.already:
            return f"{self.path}: its weights are stored as float16 already; left alone"
        if not self.halved:
            return f"{self.path}: no float32 tensor of {MIN_ELEMENTS} values or more; left alone"
        return (
            f"{self.path}: {self.halved} weight tensors stored as float16 ({self.kept} small "
            f"ones kept float32), {self.bytes_before / 1e6:.2f} MB → "
            f"{self.bytes_after / 1e6:.2f} MB"
        )


def stored_as(path: str | Path) -> str:
    """How a model file stores its float weights: "float16" where `store_half` wrote it (or
    any float16 tensor is widened to float32 in it), else "float32"."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    if any(p.key == STORAGE_KEY for p in model.metadata_props):
        return "float16"
    widened = {n.input[0] for n in model.graph.node if n.op_type == "Cast" and n.input}
    half = onnx.TensorProto.FLOAT16
    return "float16" if any(
        t.data_type == half and t.name in widened for t in model.graph.initializer
    ) else "float32"  # fmt: skip


def store_half(source: str | Path, out: str | Path, min_elements: int = MIN_ELEMENTS) -> Halving:
    """Write `source` to `out` (atomically; `out` may be `source`) with every float32
    initializer of `min_elements` or more stored as float16 and a Cast to float32 in front of
    its consumers. A file stored so already is left alone (`Halving.already`). Raises
    ValueError, naming the file and the tensor, for a weight beyond float16's range (it would
    become inf) and for a model the onnx checker refuses."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    source, out = Path(source), Path(out)
    before = source.stat().st_size
    try:
        model = onnx.load(str(source))
    except Exception as error:  # onnx raises protobuf's DecodeError and others
        raise ValueError(f"{source}: not an ONNX model onnx can read ({error})") from None
    graph = model.graph
    # an initializer that is also a graph input is a default the caller may replace: it
    # keeps its float32 type
    inputs = {i.name for i in graph.input}
    taken = _names(graph)
    widen, halved, kept = [], 0, 0
    for tensor in graph.initializer:
        if tensor.data_type != TensorProto.FLOAT or tensor.name in inputs:
            continue
        values = numpy_helper.to_array(tensor)
        if values.size < min_elements:
            kept += 1
            continue
        with np.errstate(over="ignore"):  # an overflow is found and told just below
            half = values.astype(np.float16)
        overflow = np.isfinite(values) & ~np.isfinite(half)
        if overflow.any():
            worst = float(values[overflow].flat[np.abs(values[overflow]).argmax()])
            raise ValueError(
                f"{source}: weight {tensor.name!r} holds {worst:g}, beyond float16's ±65504 "
                "(it would become inf); keep this model's weights full width (--weights fp32)"
            )
        name = tensor.name
        stored = _unique(f"{name}__fp16", taken)
        tensor.CopyFrom(numpy_helper.from_array(half, stored))
        cast = _unique(f"{name}__widen", taken)
        widen.append(helper.make_node("Cast", [stored], [name], name=cast, to=TensorProto.FLOAT))
        halved += 1
    if not widen:  # nothing to halve: stored so already, or a model of small tensors only
        return Halving(source, 0, kept, before, before, already=stored_as(source) == "float16")
    nodes = [*widen, *graph.node]  # the casts first: the node list stays in topological order
    del graph.node[:]
    graph.node.extend(nodes)
    props = {p.key: p.value for p in model.metadata_props}
    helper.set_model_props(model, {**props, STORAGE_KEY: STORED_FP16})
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as error:
        reason = str(error).strip().splitlines()[0]
        raise ValueError(
            f"{source}: the float16-stored graph fails onnx's checker ({reason})"
        ) from None
    atomic_write(out, lambda tmp: onnx.save(model, tmp))
    return Halving(out, halved, kept, before, out.stat().st_size, already=False)


def _names(graph) -> set[str]:
    """Every value and node name of a graph (its subgraphs' too), so a new one is unique."""
    names = {t.name for t in graph.initializer}
    names |= {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
    for node in graph.node:
        names |= {node.name, *node.input, *node.output}
        for attribute in node.attribute:
            for sub in (attribute.g, *attribute.graphs):
                names |= _names(sub)
    return names


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}{n}"
    taken.add(candidate)
    return candidate


@dataclass(frozen=True)
class Agreement:
    """A float16-stored model against the float32 graph it was made from, on one split, run
    as the app runs them (the card's input view and test-time views)."""

    dataset: str
    split: str  # described: `test (PrivateTest)`
    n: int
    tta: str
    top1_agreement: float
    max_abs_prob_diff: float  # of the softmax probabilities, over every face and class
    max_abs_logit_diff: float

    def summary(self) -> str:
        return (
            f"{self.dataset} {self.split}: top-1 the same on {100 * self.top1_agreement:.2f}% "
            f"of {self.n} faces, max |Δprob| {self.max_abs_prob_diff:.1e}, max |Δlogit| "
            f"{self.max_abs_logit_diff:.1e}"
        )


@dataclass(frozen=True)
class Comparison:
    agreement: Agreement
    reference: Any  # trainer.evaluation.evaluate.Predictions of the float32 graph
    shipped: Any  # and of the float16-stored file


def compare(
    reference: str | Path,
    shipped: str | Path,
    labels: list[str],
    view,
    dataset,
    split: str,
    threads: int = 0,
) -> Comparison:
    """Both ONNX files on every face of `dataset`'s `split`, fed as `view` prescribes."""
    from trainer.evaluation.evaluate import Predictor, onnx_forward, predict

    runs = []
    for path in (reference, shipped):
        forward = onnx_forward(Path(path), threads)
        source = str(Path(shipped).parent)
        runs.append(predict(Predictor(source, "onnxruntime", "fp32", list(labels), view, forward),
                            dataset, split))  # fmt: skip
    old, new = runs
    agreement = Agreement(
        dataset=dataset.name,
        split=new.split,
        n=len(new.logits),
        tta=new.tta,
        top1_agreement=round(float((old.logits.argmax(1) == new.logits.argmax(1)).mean()), 6),
        max_abs_prob_diff=float(np.abs(_softmax(old.logits) - _softmax(new.logits)).max()),
        max_abs_logit_diff=float(np.abs(old.logits - new.logits).max()),
    )
    return Comparison(agreement, old, new)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits.astype(np.float64) - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def weights_record(
    agreements: list[Agreement], float32_bytes: int, float16_bytes: int, **more: Any
) -> dict:
    """The card's `extra.weights` for a float16-stored model.onnx: how it is stored, the two
    sizes, and how it agrees with the float32 graph (`more`: the float32 graph's parity with
    torch, its sha256)."""
    return {
        "stored": "float16",
        "computed": "float32",
        "how": HOW,
        "bytes": {"float32": float32_bytes, "float16": float16_bytes},
        "agreement_with_float32": [_rounded(asdict(a)) for a in agreements],
        **more,
    }


def _rounded(agreement: dict) -> dict:
    """Differences to 3 significant digits: a card is read, and 1e-9 of them is noise."""
    return {k: float(f"{v:.3g}") if k.startswith("max_") else v for k, v in agreement.items()}


FULL_WIDTH = {"stored": "float32", "computed": "float32"}  # `--weights fp32`'s record

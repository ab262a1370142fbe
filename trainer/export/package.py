"""ONNX export of a model: eval mode, no auxiliary head, input `image` (N×C×H×W float32)
and output `logits` (N×classes), with a batch dimension that may vary; model packages around
it (the weights of model.onnx stored as float16 unless asked otherwise, `half_width`),
optionally with the torch weights."""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import re
import shutil
import sys
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fer_core.zoo import CARD, FILES, FORMAT, INT8_TOLERANCE, PackageError
from trainer import provenance
from trainer.engine.checkpoint import Checkpoint
from trainer.engine.views import inputs
from trainer.export.half_width import (
    FP16_PARITY_TOLERANCE,
    FULL_WIDTH,
    WEIGHTS,
    compare,
    store_half,
    weights_record,
)
from trainer.files import atomic_write, interrupts_deferred, save_torch

OPSET = 18


def export_onnx(model: nn.Module, path: str | Path, input_shape: tuple[int, int, int]) -> Path:
    """Write `model` to `path` atomically (a temp file in the same folder, then a rename)."""
    path = Path(path)
    model = model.eval()
    example = torch.randn(2, *input_shape)

    def write(tmp: str) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's chatter about deprecated paths
            program = torch.onnx.export(
                model,
                (example,),
                input_names=["image"],
                output_names=["logits"],
                opset_version=OPSET,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=1024)},),
                dynamo=True,
                external_data=False,
                verbose=False,
            )
            program.save(tmp, external_data=False)

    atomic_write(path, write)
    return path


@dataclass(frozen=True)
class Parity:
    max_abs_diff: float
    top1_agreement: float


def onnx_parity(model: nn.Module, onnx_path: str | Path, images: np.ndarray) -> Parity:
    """Compare onnxruntime (CPU) against torch eval-mode logits on a batch of inputs."""
    from fer_core.zoo import open_session

    session = open_session(onnx_path)
    got = session.run(["logits"], {"image": images.astype(np.float32)})[0]
    with torch.no_grad():
        want = model.eval()(torch.from_numpy(images.astype(np.float32))).numpy()
    # NaN compares False against any tolerance, so non-finite logits would pass as parity
    for runtime, logits in (("torch", want), ("onnxruntime", got)):
        if not np.isfinite(logits).all():
            raise PackageError(
                f"{onnx_path}: {runtime} gives non-finite logits (NaN or inf) on real images; "
                "the weights are broken, so nothing is exported — export an earlier checkpoint"
            )
    return Parity(
        max_abs_diff=float(np.abs(got - want).max()),
        top1_agreement=float((got.argmax(1) == want.argmax(1)).mean()),
    )


# ------------------------------------------------------------------------------ model packages

# How the stored faces of each dataset are framed; the app frames live faces the same way.
FRAMING = {
    "fer2013": "FER2013: tight square from forehead to chin, eyes level, face filling the frame",
    "ferplus": "FER2013: tight square from forehead to chin, eyes level, face filling the frame",
    "ckplus": "CK+48: tight square from forehead to chin, eyes level",
    "rafdb": "RAF-DB aligned: eyes level, face with a margin, 100 px",
    "affectnet": "AffectNet: the annotated face box",
    "affectnet7": "AffectNet: the annotated face box",
}
PARITY_TOLERANCE = 1e-4  # the float32 graph against torch; the shipped file: FP16_PARITY_TOLERANCE
# The float32 graph, beside a float16-stored model.onnx in the staging folder while the export
# checks, quantizes and compares; never shipped.
FLOAT32_GRAPH = "model.float32.onnx"
FILE_LIMIT = 50 * 1024 * 1024  # the most one shipped package file may weigh
# Every file name an export writes into a package folder (`write_package`); the pictures are
# the confusion matrices and the run's curves.
PACKAGE_FILES = (CARD, *FILES.values(), "confusion-*.png", "curves.png")


@dataclass
class PackageResult:
    path: Path
    card: dict
    parity: Parity  # model.onnx as shipped, against torch
    int8_agreement: float | None
    float32_parity: Parity | None = None  # the float32 graph, where model.onnx is float16-stored


def quantize_int8(fp32: Path, out: Path, calibration: list[np.ndarray]) -> Path:
    """Static QDQ int8 (per-channel weights, uint8 activations) calibrated on real inputs.

    The layers that read the image stay fp32: quantized, the first convolution of vgg-fer-s
    alone took int8's top-1 agreement with fp32 on PublicTest from 99.2 % to 91.5 % (onnxruntime
    1.32), at a few percent of the MACs."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration)

        def get_next(self):
            batch = next(self.batches, None)
            return None if batch is None else {"image": batch}

    prepared = out.with_name(f".{out.name}.pre.onnx")
    quiet = _PerTensorFallback()
    logging.getLogger().addFilter(quiet)
    try:
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        graph = onnx.load(str(prepared)).graph
        inputs = {i.name for i in graph.input}
        first = [n.name for n in graph.node if n.op_type == "Conv" and inputs & set(n.input)]
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=first,
        )
    finally:
        logging.getLogger().removeFilter(quiet)
        prepared.unlink(missing_ok=True)
    return out


class _PerTensorFallback(logging.Filter):
    """onnxruntime warns once per use of every rank-1 constant (Shuffle Attention's gate
    parameters) that it quantizes per tensor rather than per channel, as it should: dozens of
    lines that buried an export's own output."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "is out-of-range for weight" not in record.getMessage()


def export_package(
    checkpoint_path: str | Path,
    out: str | Path,
    dataset,
    *,
    name: str | None = None,
    int8: bool = True,
    int8_tolerance: float = INT8_TOLERANCE,
    calibration_images: int = 512,
    threads: int = 0,
    tta: str | None = None,
    torch_weights: bool = False,
    transfer: list = (),
    kfold: str | Path | None = None,
    chain: list[str] = (),
    weights: str = "fp16",
) -> PackageResult:
    """Write a model package for a trainer checkpoint (see `write_package`), with the training
    curves of its run, its direct transfer to the `transfer` datasets, the k-fold result
    `kfold` (a kfold.json) and the command `chain` that made it (search, training, resumes,
    this export: what the checkpoint alone cannot tell) in the card."""
    from fer_core.models import get_spec
    from trainer.engine import checkpoint

    model, state = checkpoint.load_model(checkpoint_path)
    if state.data is not None:
        check_transfer(state.data.name, [t.name for t in transfer])
    extra = {"kfold": kfold_summary(kfold)} if kfold else {}
    view = replace(state.view, tta=tta) if tta else state.view
    identity = PackageIdentity(
        name=name or Path(out).name,
        family=get_spec(state.arch["model"]).family,
        labels=list(state.labels),
        architecture=state.arch,
        train={**train_record(state), **({"chain": list(chain)} if chain else {})},
    )
    curves = Path(checkpoint_path).parent / "curves.png"
    return write_package(
        model,
        view,
        identity,
        out,
        dataset,
        int8=int8,
        int8_tolerance=int8_tolerance,
        calibration_images=calibration_images,
        threads=threads,
        pictures=[curves] if curves.is_file() else [],
        torch_weights=torch_weights,
        transfer=transfer,
        extra=extra,
        weights=weights,
    )


@dataclass
class PackageIdentity:
    """What a card says of the network besides how to feed it and what it scored."""

    name: str
    family: str
    labels: list[str]
    architecture: dict
    train: dict


def write_package(
    model: nn.Module,
    view,
    identity: PackageIdentity,
    out: str | Path,
    dataset,
    *,
    int8: bool = True,
    calibration_images: int = 512,
    threads: int = 0,
    pictures: list[Path] = (),
    torch_weights: bool = False,
    transfer: list = (),
    extra: dict | None = None,
    int8_tolerance: float = INT8_TOLERANCE,
    weights: str = "fp16",
) -> PackageResult:
    """Write a model package for `model` fed as `view`: model.onnx (checked against torch on
    real validation images; with `weights` fp16, its weights stored as float16 and its
    agreement with the float32 graph on the validation and test splits in the card's
    `extra.weights`), model.int8.onnx (quantized from the float32 graph, calibrated on training
    images; shipped only where `judge_int8` passes it, else measured, recorded in the card and
    left out), model.pt with `torch_weights` (see `save_torch_weights`), card.json with the
    package's own metrics on the validation and test splits as onnxruntime measures them, and
    the pictures (confusion matrices, plus `pictures`). The package is assembled in a temporary
    folder beside `out` and moved in at the end (`swap_in`), so a failed export leaves the old
    package in place; an `out` that is not an earlier package is refused
    (`check_package_folder`)."""
    from trainer.evaluation.latency import benchmark_package

    out = Path(out)
    if weights not in WEIGHTS:
        raise ValueError(f"weights {weights!r}: expected one of {', '.join(WEIGHTS)}")
    check_package_folder(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(out, os.getpid())
    staging.mkdir()  # never an earlier folder of that name: mkdir refuses it, nothing is removed
    try:
        files, parity, graph_parity = _write_models(
            model, view, dataset, staging, int8, calibration_images, weights
        )
        if torch_weights:
            torch_dtype = save_torch_weights(model, staging / FILES["torch"])
            files.append(staging / FILES["torch"])
        card = _card(identity, model, view, files, parity)
        if torch_weights:
            card["extra"]["torch_dtype"] = torch_dtype  # the backend widens float16 to float32
        _write_card(staging, card)  # the package is now complete enough to be run
        card["extra"].update(extra or {})
        card["metrics"] = _score(staging, dataset, card["name"], int8, threads, transfer)
        card["extra"]["weights"] = dict(FULL_WIDTH)
        if weights == "fp16":
            card["extra"]["weights"] = _agreement_record(
                staging, identity.labels, view, dataset, threads, graph_parity
            )
            (staging / FLOAT32_GRAPH).unlink()  # measured: never shipped
        agreement = None
        if int8:
            agreement = _int8_agreement(staging, dataset, view, threads)
            card["extra"]["int8"] = {
                "top1_agreement_with_fp32": round(agreement, 6),
                "split": dataset.describe(dataset.test or dataset.val),
                "calibration_images": min(calibration_images, len(dataset[dataset.train])),
            }
        latency = benchmark_package(str(staging), threads=1, seconds=2.0)
        card["extra"]["latency_ms"] = {
            "threads": 1,
            "fp32": round(latency.fp32.median_ms, 3),
            "int8": round(latency.int8.median_ms, 3) if latency.int8 else None,
            "how": "onnxruntime CPU, one face as the app classifies it (normalisation and "
            f"the card's {card['tta']!r} test-time views), median after warm-up, at export",
        }
        if int8:
            choose = f"{dataset.name}/{dataset.key(dataset.val or dataset.test)}"
            verdict = judge_int8(
                card["metrics"][choose]["top1"],
                card["metrics"][f"{choose}/int8"]["top1"],
                card["extra"]["latency_ms"]["fp32"],
                card["extra"]["latency_ms"]["int8"],
                int8_tolerance,
                choose,
            )
            card["extra"]["int8"].update(shipped=verdict.ships, why=verdict.why)
            if not verdict.ships:
                _withdraw_int8(staging, card)
        for picture in pictures:
            shutil.copyfile(picture, staging / picture.name)
        _write_card(staging, card)
        with interrupts_deferred():
            swap_in(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    float32_parity = graph_parity if weights == "fp16" else None
    return PackageResult(out, card, parity, agreement, float32_parity)


def _is_package_file(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in PACKAGE_FILES)


def staging_folder(out: Path, pid: int) -> Path:
    """Where process `pid` assembles the package `out`: hidden, so never listed as a package."""
    return out.with_name(f".{out.name}.{pid}.staging")


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clear_stale_staging(out: Path) -> None:
    """Remove the staging folders of `out` that exports killed before they could clean up
    (SIGKILL, a power cut) left, saying so; refuse while the export of a live process has
    one (two exports of one package at a time would swap files into each other's)."""
    if not out.parent.is_dir():
        return
    form = re.compile(re.escape(f".{out.name}.") + r"(\d+)\.staging")
    for folder in sorted(out.parent.iterdir()):
        found = form.fullmatch(folder.name)
        if not found or not folder.is_dir() or folder.is_symlink():
            continue
        pid = int(found[1])
        if _running(pid):
            raise PackageError(
                f"{out}: another export of this package is running (pid {pid}, assembling "
                f"in {folder.name}); wait for it to end, or remove {folder} if pid {pid} is "
                "no export"
            )
        shutil.rmtree(folder)
        print(f"removed a stale staging folder left by an interrupted export (pid {pid}): "
              f"{folder}", file=sys.stderr)  # fmt: skip


def check_package_folder(out: Path) -> None:
    """Refuse an existing `out` that an export may not write into: anything but an empty folder
    or an earlier package (a card.json of this format and nothing but package files), so that
    an export never replaces or deletes files it did not write, such as a run's checkpoints.
    First the staging folders a killed export of `out` left are removed (`clear_stale_staging`),
    and an export of `out` still running is refused."""
    clear_stale_staging(out)
    if not out.exists():
        return
    if not out.is_dir():
        raise PackageError(f"{out}: exists and is not a folder; --out must name a package folder")
    names = sorted(p.name for p in out.iterdir())
    if not names:
        return
    card = out / CARD
    try:
        fmt = json.loads(card.read_text()).get("format", FORMAT)  # the reader's default
    except (OSError, ValueError, AttributeError):
        fmt = None
    if fmt != FORMAT:
        raise PackageError(
            f"{out}: exists and is not a model package (no {CARD} of format {FORMAT}); "
            "export into a new or empty folder"
        )
    others = [n for n in names if not _is_package_file(n)]
    if others:
        shown = ", ".join(others[:5]) + (", ..." if len(others) > 5 else "")
        raise PackageError(
            f"{out}: holds files an export does not write ({shown}); move them away or export "
            "into a new folder"
        )


def swap_in(staging: Path, out: Path) -> None:
    """Make the package assembled in `staging` the package at `out`: a new folder is renamed
    into place whole; into an earlier package each file is renamed over its namesake (each
    rename atomic, the card last, so the card never names files that are not there yet), then
    the earlier package's files the new one lacks are removed. Other files are never touched."""
    if not out.exists():
        staging.rename(out)
        return
    new = {p.name for p in staging.iterdir()}
    for name in [*sorted(new - {CARD}), CARD]:
        os.replace(staging / name, out / name)
    for stale in out.iterdir():
        if stale.name not in new and _is_package_file(stale.name):
            stale.unlink()


def _write_models(
    model, view, dataset, staging: Path, int8: bool, calibration_images: int, weights: str
) -> tuple[list[Path], Parity, Parity]:
    """model.onnx, checked on real validation faces fed exactly as the package will be, and
    model.int8.onnx calibrated on a fixed random draw of training faces. With `weights` fp16
    the float32 graph is exported as FLOAT32_GRAPH, checked and quantized, then model.onnx is
    written from it with its weights stored as float16 and checked again as shipped, within
    FP16_PARITY_TOLERANCE. Returns the files, the parity of model.onnx and the float32
    graph's."""
    from trainer.evaluation.evaluate import split_images

    shipped = staging / FILES["fp32"]
    graph = shipped if weights == "fp32" else staging / FLOAT32_GRAPH
    export_onnx(model, graph, (view.channels, view.size, view.size))
    val_images, _ = split_images(dataset, dataset.val, view)
    faces = inputs(view, val_images[:256])[0].numpy()
    graph_parity = _checked_parity(model, graph, faces, PARITY_TOLERANCE)
    files = [shipped]
    if int8:  # from the float32 graph: quantizing float16-rounded weights would round twice
        train_images, _ = split_images(dataset, dataset.train, view)
        pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(0))
        chosen = inputs(view, train_images[pick[:calibration_images]])[0].numpy()
        batches = [chosen[i : i + 32] for i in range(0, len(chosen), 32)]  # any count
        files.append(quantize_int8(graph, staging / FILES["int8"], batches))
    if weights == "fp32":
        return files, graph_parity, graph_parity
    store_half(graph, shipped)
    hint = "; keep the weights full width with --weights fp32"
    parity = _checked_parity(model, shipped, faces, FP16_PARITY_TOLERANCE, hint)
    return files, parity, graph_parity


def _checked_parity(model, path: Path, faces: np.ndarray, tolerance: float, hint="") -> Parity:
    parity = onnx_parity(model, path, faces)
    if parity.max_abs_diff > tolerance:
        raise ValueError(
            f"{path.name}: onnxruntime differs from torch by {parity.max_abs_diff:.2e}"
            f" (> {tolerance}) on real images{hint}"
        )
    return parity


def _agreement_record(staging: Path, labels, view, dataset, threads: int, graph_parity) -> dict:
    """The card's `extra.weights` of a float16-stored model.onnx: its agreement with the float32
    graph on every face of the validation and test splits, and the graph's parity with torch."""
    graph, shipped = staging / FLOAT32_GRAPH, staging / FILES["fp32"]
    splits = dict.fromkeys(k for k in (dataset.val, dataset.test) if k)
    agreements = [
        compare(graph, shipped, labels, view, dataset, split, threads).agreement for split in splits
    ]
    return weights_record(
        agreements,
        graph.stat().st_size,
        shipped.stat().st_size,
        float32_parity=asdict(graph_parity),
    )


def save_torch_weights(model: nn.Module, path: Path) -> str:
    """The eval-mode state dict as plain tensors (`torch.load(..., weights_only=True)` reads
    it), in float16 where float32 would pass `FILE_LIMIT`; returns the float dtype written."""
    state = {k: v.cpu() for k, v in model.eval().state_dict().items()}
    if sum(v.numel() * v.element_size() for v in state.values()) <= FILE_LIMIT:
        dtype = "float32"
    else:
        dtype = "float16"
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    save_torch(state, path)
    return dtype


def train_record(state: Checkpoint) -> dict:
    """The card's `train`: how a checkpoint was trained, from the checkpoint itself."""
    if state.recipe is None or state.data is None:
        raise ValueError("export takes a trainer checkpoint (a run's best.pt), not a package")
    return {
        "dataset": state.data.name,
        "command": state.command,
        "recipe": state.recipe.name,
        "epochs": state.recipe.epochs,
        "seed": state.seed,
        "checkpoint_epoch": state.epoch + 1,
        "selected_on": f"{state.data.val} top-1 (best epoch)",
        "wall_seconds": round(sum(r.seconds for r in state.history), 1),
        "init": state.init,
        "precision": state.precision,
        "methods": sorted(state.callbacks),
        "teachers": state.callbacks.get("distill", {}).get("teachers", []),
        # what k-fold fine-tuning from the package keeps (`checkpoint.load_weights`)
        "views": _plain(state.views),
        # the software of each training session (`trainer.provenance`; the card adds the export's)
        "provenance": {"training": state.provenance},
    }


def _plain(views: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in views.items()}


def _card(identity: PackageIdentity, model, view, files: list[Path], parity: Parity) -> dict:
    from fer_core.models.complexity import measure
    from fer_core.zoo import sha256

    complexity = measure(model, (view.channels, view.size, view.size))
    # a mixed run (`fer2013+ckplus`) is framed as its base, which the added faces were sized into
    data = identity.train["dataset"].split("+")[0]
    made = identity.train.get("provenance", {})
    exported = {**provenance.collect(), "onnx_opset": OPSET}
    return {
        "format": FORMAT,
        "name": identity.name,
        "family": identity.family,
        "labels": identity.labels,
        **view.card_fields(),
        "crop": {
            "framing": data,
            "fraction": view.crop,
            "description": FRAMING.get(data, "as in the dataset")
            + f"; the network sees the centre {view.crop:.4g} of that square",
        },
        "params": complexity.params,
        "macs": complexity.macs,
        "architecture": identity.architecture,
        "train": {**identity.train, "provenance": {**made, "export": exported}},
        "sha256": {f.name: sha256(f) for f in files},
        "extra": {"parity": asdict(parity)},
    }


def _write_card(folder: Path, card: dict) -> None:
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")


def _score(
    staging: Path, dataset, name: str, int8: bool, threads: int, transfer: list = ()
) -> dict:
    """The package's metrics on the validation and test splits (fp32, and int8 where shipped),
    and on the test (or only) split of each `transfer` dataset, with a confusion-matrix picture
    per split."""
    from trainer.evaluation.evaluate import confusion_picture, evaluate, load_predictor

    scored = [(dataset, k, k) for k in dict.fromkeys(k for k in (dataset.val, dataset.test) if k)]
    for other in transfer:
        key = other.test or next(iter(other.splits))
        scored.append((other, key, f"{other.name}-{key}"))
    metrics = {}
    for precision in ("fp32", "int8") if int8 else ("fp32",):
        predictor = load_predictor(staging, precision, threads=threads)
        for data, key, picture in scored:
            result = evaluate(predictor, data, key)
            entry, metric = card_metric(result, transfer=data is not dataset)
            metrics[entry] = metric
            if precision == "fp32":
                confusion_picture(result, staging / f"confusion-{picture}.png", name)
    return metrics


def card_metric(evaluation, transfer: bool = False) -> tuple[str, dict]:
    """An evaluation as a card's metrics entry: its key (`ckplus/all`, `fer2013/test/int8`)
    and its figures, marked as a direct transfer where the model never trained on the data."""
    from trainer.evaluation.evaluate import as_card_metrics, card_key

    key = card_key(evaluation)
    metric = as_card_metrics(evaluation)
    if transfer:
        metric["transfer"] = "direct: never trained on"
    return key, metric


def record_transfer(package: str | Path, evaluation) -> str:
    """Write an evaluation of a package on a dataset it never trained on into its card's
    metrics (`evaluate --record`); returns the card's key. The card is replaced atomically."""
    from fer_core.zoo import load_package
    from trainer.files import atomic_write

    folder = load_package(package).path
    card = json.loads((folder / CARD).read_text())
    trained = card.get("train", {}).get("dataset", "")
    check_transfer(trained, [evaluation.dataset])
    key, metric = card_metric(evaluation, transfer=True)
    card.setdefault("metrics", {})[key] = metric
    text = json.dumps(card, indent=2) + "\n"
    atomic_write(folder / CARD, lambda tmp: Path(tmp).write_text(text))
    return key


def check_transfer(trained_on: str, names: list[str]) -> None:
    """A transfer figure is a model's score on a dataset it never trained on: refuse one of
    a dataset in the run's own mix (`fer2013+ckplus`)."""
    trained = set(trained_on.split("+"))
    for name in names:
        if name in trained:
            raise ValueError(
                f"{name}: the model trained on {trained_on}, so its {name} figure is no "
                "transfer; score it on held-out subjects with `kfold --into` and record that "
                "with export --kfold"
            )


def kfold_summary(path: str | Path) -> dict:
    """The card's record of a k-fold result (`python -m trainer kfold`'s kfold.json)."""
    path = Path(path)
    try:
        result = json.loads(path.read_text())
        plan = json.loads((path.parent / "folds.json").read_text())
        summary = {
            "protocol": result["protocol"],
            "description": result["description"],
            "k": result["k"],
            "mean_top1": round(result["mean_top1"], 6),
            "std_top1": round(result["std_top1"], 6),
            "mean_macro_f1": round(result["mean_macro_f1"], 6),
            "std_macro_f1": round(result["std_macro_f1"], 6),
            "into": plan.get("into"),
            "recipe": result["recipe"]["name"],
            "epochs": result["recipe"]["epochs"],
            "note": result["note"],
        }
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"--kfold {path}: expected the kfold.json that `python -m trainer kfold` writes, "
            f"with folds.json beside it ({e})"
        ) from None
    return summary


@dataclass(frozen=True)
class Int8Verdict:
    ships: bool
    why: str


def judge_int8(
    fp32_top1: float,
    int8_top1: float,
    fp32_ms: float,
    int8_ms: float,
    tolerance: float = INT8_TOLERANCE,
    split: str = "validation",
) -> Int8Verdict:
    """Whether model.int8.onnx ships: where it keeps within `tolerance` points of fp32's top-1
    on the split models are chosen on, and is faster a face, its only purpose. The app runs
    int8 wherever a package has it, so a slower or less accurate int8 must not be there: on
    depthwise and attention-heavy nets onnxruntime's int8 can be both."""
    loss = 100 * (fp32_top1 - int8_top1)
    if loss > tolerance:
        return Int8Verdict(
            False,
            f"left out: it loses {loss:.2f} points of top-1 on {split} (more than {tolerance:g})",
        )
    if int8_ms >= fp32_ms:
        return Int8Verdict(
            False, f"left out: {int8_ms:.2f} ms a face, no faster than fp32's {fp32_ms:.2f} ms"
        )
    return Int8Verdict(
        True,
        f"within {tolerance:g} points of fp32 on {split} ({-loss:+.2f}) and "
        f"{fp32_ms / int8_ms:.1f}× faster a face",
    )


def _withdraw_int8(staging: Path, card: dict) -> None:
    """Take a judged-out int8 model out of the package; its figures stay in `extra.int8`."""
    (staging / FILES["int8"]).unlink()
    del card["sha256"][FILES["int8"]]
    measured = {
        k: card["metrics"].pop(k)["top1"] for k in list(card["metrics"]) if k.endswith("/int8")
    }
    card["extra"]["int8"]["top1_measured"] = measured
    card["extra"]["int8"]["latency_ms_measured"] = card["extra"]["latency_ms"]["int8"]
    card["extra"]["latency_ms"]["int8"] = None


def _int8_agreement(staging: Path, dataset, view, threads: int) -> float:
    """How often the int8 model's top-1 equals the fp32 model's on the test split."""
    from trainer.engine.views import logits_for
    from trainer.evaluation.evaluate import load_predictor, split_images

    images, _ = split_images(dataset, dataset.test or dataset.val, view)
    top1 = [
        logits_for(load_predictor(staging, p, threads=threads).forward, images, view).argmax(1)
        for p in ("fp32", "int8")
    ]
    return float((top1[0] == top1[1]).mean())

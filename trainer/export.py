"""ONNX export of a model: eval mode, no auxiliary head, input `image` (N×C×H×W float32)
and output `logits` (N×classes), with a batch dimension that may vary; model packages around
it, optionally with the torch weights."""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from trainer.checkpoint import atomic_write
from trainer.recipes import VIEW_FIELDS

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
PARITY_TOLERANCE = 1e-4
FILE_LIMIT = 50 * 1024 * 1024  # the most one shipped package file may weigh


@dataclass
class PackageResult:
    path: Path
    card: dict
    parity: Parity
    int8_agreement: float | None


def quantize_int8(fp32: Path, out: Path, calibration: list[np.ndarray]) -> Path:
    """Static QDQ int8 (per-channel weights, uint8 activations) calibrated on real inputs."""
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
    try:
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )
    finally:
        prepared.unlink(missing_ok=True)
    return out


def export_package(
    checkpoint_path: str | Path,
    out: str | Path,
    dataset,
    *,
    name: str | None = None,
    int8: bool = True,
    calibration_images: int = 512,
    threads: int = 0,
    tta: str | None = None,
    torch_weights: bool = False,
) -> PackageResult:
    """Write a model package for a trainer checkpoint (see `write_package`), with the training
    curves of its run."""
    from fer_core.models import get_spec
    from trainer import checkpoint
    from trainer.inference import View

    model, state = checkpoint.load_model(checkpoint_path)
    view = View(**{**state["view"], **({"tta": tta} if tta else {})})
    identity = PackageIdentity(
        name=name or Path(out).name,
        family=get_spec(state["arch"]["model"]).family,
        labels=list(state["labels"]),
        architecture=state["arch"],
        train=_train_record(state),
    )
    curves = Path(checkpoint_path).parent / "curves.png"
    return write_package(
        model,
        view,
        identity,
        out,
        dataset,
        int8=int8,
        calibration_images=calibration_images,
        threads=threads,
        pictures=[curves] if curves.is_file() else [],
        torch_weights=torch_weights,
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
) -> PackageResult:
    """Write a model package for `model` fed as `view`: model.onnx (checked against torch on
    real validation images), model.int8.onnx (calibrated on training images), model.pt with
    `torch_weights` (see `save_torch_weights`), card.json with the package's own metrics on the
    validation and test splits as onnxruntime measures them, and the pictures (confusion
    matrices, plus `pictures`). The folder is assembled beside `out` and swapped in at the end,
    so a failed export leaves the old package in place."""
    import shutil

    from fer_core.zoo import FILES
    from trainer.benchmark import benchmark_package

    out = Path(out)
    staging = out.with_name(f".{out.name}.staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        files, parity = _write_models(model, view, dataset, staging, int8, calibration_images)
        if torch_weights:
            torch_dtype = save_torch_weights(model, staging / FILES["torch"])
            files.append(staging / FILES["torch"])
        card = _card(identity, model, view, files, parity)
        if torch_weights:
            card["extra"]["torch_dtype"] = torch_dtype  # the backend widens float16 to float32
        _write_card(staging, card)  # the package is now complete enough to be run
        card["metrics"] = _score(staging, dataset, card["name"], int8, threads)
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
        for picture in pictures:
            shutil.copyfile(picture, staging / picture.name)
        _write_card(staging, card)
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        if out.exists():
            out.rename(old)
        staging.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return PackageResult(out, card, parity, agreement)


def _write_models(model, view, dataset, staging: Path, int8: bool, calibration_images: int):
    """model.onnx, checked on real validation faces fed exactly as the package will be, and
    model.int8.onnx calibrated on a fixed random draw of training faces."""
    from fer_core.zoo import FILES
    from trainer.evaluate import split_images

    fp32 = export_onnx(model, staging / FILES["fp32"], (view.channels, view.size, view.size))
    val_images, _ = split_images(dataset, dataset.val, view)
    parity = onnx_parity(model, fp32, view.inputs(val_images[:256])[0].numpy())
    if parity.max_abs_diff > PARITY_TOLERANCE:
        raise ValueError(
            f"{fp32}: onnxruntime differs from torch by {parity.max_abs_diff:.2e}"
            f" (> {PARITY_TOLERANCE}) on real images"
        )
    files = [fp32]
    if int8:
        train_images, _ = split_images(dataset, dataset.train, view)
        pick = torch.randperm(len(train_images), generator=torch.Generator().manual_seed(0))
        chosen = view.inputs(train_images[pick[:calibration_images]])[0].numpy()
        batches = list(np.split(chosen, max(1, len(chosen) // 32)))
        files.append(quantize_int8(fp32, staging / FILES["int8"], batches))
    return files, parity


def save_torch_weights(model: nn.Module, path: Path) -> str:
    """The eval-mode state dict as plain tensors (`torch.load(..., weights_only=True)` reads
    it), in float16 where float32 would pass `FILE_LIMIT`; returns the float dtype written."""
    state = {k: v.cpu() for k, v in model.eval().state_dict().items()}
    if sum(v.numel() * v.element_size() for v in state.values()) <= FILE_LIMIT:
        dtype = "float32"
    else:
        dtype = "float16"
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    torch.save(state, path)
    return dtype


def _train_record(state: dict) -> dict:
    """The card's `train`: how a checkpoint was trained, from the checkpoint itself."""
    return {
        "dataset": state["dataset"]["name"],
        "command": state["command"],
        "recipe": state["recipe"]["name"],
        "epochs": state["recipe"]["epochs"],
        "seed": state["seed"],
        "checkpoint_epoch": state["epoch"] + 1,
        "selected_on": f"{state['dataset']['val']} top-1 (best epoch)",
        "wall_seconds": round(sum(r["seconds"] for r in state["history"]), 1),
        "init": state.get("init"),
        # what k-fold fine-tuning from the package keeps (`checkpoint.load_weights`)
        "views": {f: state["recipe"][f] for f in (*VIEW_FIELDS, "tencrop_train")},
    }


def _card(identity: PackageIdentity, model, view, files: list[Path], parity: Parity) -> dict:
    from fer_core.models.complexity import measure
    from fer_core.zoo import sha256

    complexity = measure(model, (view.channels, view.size, view.size))
    data = identity.train["dataset"]
    return {
        "name": identity.name,
        "family": identity.family,
        "labels": identity.labels,
        "input_size": [view.size, view.size],
        "channels": view.channels,
        "scale": view.scale,
        "mean": list(view.mean),
        "std": list(view.std),
        "crop": {
            "framing": data,
            "fraction": view.crop,
            "description": FRAMING.get(data, "as in the dataset")
            + f"; the network sees the centre {view.crop:.4g} of that square",
        },
        "tta": view.tta,
        "params": complexity.params,
        "macs": complexity.macs,
        "architecture": identity.architecture,
        "train": identity.train,
        "sha256": {f.name: sha256(f) for f in files},
        "extra": {"parity": asdict(parity)},
    }


def _write_card(folder: Path, card: dict) -> None:
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")


def _score(staging: Path, dataset, name: str, int8: bool, threads: int) -> dict:
    """The package's metrics on the validation and test splits (fp32, and int8 where shipped),
    with a confusion-matrix picture per split."""
    from trainer.evaluate import as_card_metrics, confusion_picture, evaluate, load_predictor

    metrics = {}
    for precision in ("fp32", "int8") if int8 else ("fp32",):
        predictor = load_predictor(staging, precision, threads=threads)
        for key in dict.fromkeys(k for k in (dataset.val, dataset.test) if k):
            result = evaluate(predictor, dataset, key)
            suffix = "" if precision == "fp32" else "/int8"
            metrics[f"{dataset.name}/{key}{suffix}"] = as_card_metrics(result)
            if precision == "fp32":
                confusion_picture(result, staging / f"confusion-{key}.png", name)
    return metrics


def _int8_agreement(staging: Path, dataset, view, threads: int) -> float:
    """How often the int8 model's top-1 equals the fp32 model's on the test split."""
    from trainer.evaluate import load_predictor, split_images
    from trainer.inference import logits_for

    images, _ = split_images(dataset, dataset.test or dataset.val, view)
    top1 = [
        logits_for(load_predictor(staging, p, threads=threads).forward, images, view).argmax(1)
        for p in ("fp32", "int8")
    ]
    return float((top1[0] == top1[1]).mean())

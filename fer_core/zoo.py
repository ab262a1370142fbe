"""Model packages: one folder per model in `assets/models/<name>/` with `model.onnx` (fp32:
computed in float32, its weights stored as float16 by `python -m trainer export` unless told
otherwise), optionally `model.int8.onnx` and `model.pt` (the torch state dict, for the torch
backend), and `card.json` describing how to feed the network, how to build it in torch, and
what it scored.
The app, the headless CLI and any outside evaluator need nothing but the package.

Torch-free: this module reads cards and checks files; onnxruntime sessions are made where the
package is run.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from fer_core.assets import asset_dir
from fer_core.view import TTA

MODELS_DIR = asset_dir("models")
DEFAULT_FILE = "DEFAULT"  # holds the name of the package the app uses by default
CARD = "card.json"
FORMAT = "fer-model-package/1"
FILES = {"fp32": "model.onnx", "int8": "model.int8.onnx", "torch": "model.pt"}
ONNX_PRECISIONS = ("fp32", "int8")  # the FILES onnxruntime runs
# An int8 model ships only within this many points of fp32's validation top-1, and faster.
INT8_TOLERANCE = 0.5


class PackageError(ValueError):
    """A model package that is missing, incomplete or altered."""


@dataclass(frozen=True)
class ModelCard:
    name: str
    family: str
    labels: tuple[str, ...]
    input_size: tuple[int, int]
    channels: int
    scale: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop: dict[str, Any]  # framing of the face: {"framing": ..., "fraction": ..., "description"}
    tta: str = "none"
    params: int = 0
    macs: int = 0
    architecture: dict[str, Any] = field(default_factory=dict)  # {"model": ..., "overrides"}
    train: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    sha256: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # parity, int8 agreement, latency, …
    format: str = FORMAT

    _REQUIRED: ClassVar[dict[str, Any]] = {
        "name": str,
        "family": str,
        "labels": list,
        "input_size": list,
        "channels": int,
        "scale": (int, float),
        "mean": list,
        "std": list,
        "crop": dict,
    }

    # the optional fields' types, checked when present
    _OPTIONAL: ClassVar[dict[str, Any]] = {
        "tta": str,
        "params": int,
        "macs": int,
        "architecture": dict,
        "train": dict,
        "metrics": dict,
        "sha256": dict,
        "extra": dict,
    }

    @classmethod
    def from_dict(cls, data: Any, where: str = "card.json") -> ModelCard:
        """The card `data` (parsed JSON) describes; every value the app computes with is
        checked here, so a bad card is one `PackageError` naming the field at load, never a
        traceback or a wrong answer later."""
        if not isinstance(data, dict):
            raise PackageError(
                f"{where}: holds {json.dumps(data)[:40]}; expected a JSON object of the card's "
                "fields (re-export the package)"
            )
        for key in cls._REQUIRED:
            if key not in data:
                raise PackageError(f"{where}: field {key!r} is missing")
        for key, kind in {**cls._REQUIRED, **cls._OPTIONAL}.items():
            if key in data and not _is(data[key], kind):
                raise PackageError(
                    f"{where}: field {key!r} should be {_kind(kind)}, got {data[key]!r}"
                )
        if data.get("format", FORMAT) != FORMAT:
            raise PackageError(f"{where}: format {data['format']!r}, expected {FORMAT!r}")
        _check_values(data, where)
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(
            **{
                **known,
                "labels": tuple(data["labels"]),
                "input_size": tuple(data["input_size"]),
                "mean": tuple(data["mean"]),
                "std": tuple(data["std"]),
            }
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# the largest network input a card may state: face networks take tens of pixels; a larger
# side is a typo that would allocate gigabytes at load
MAX_INPUT = 1024


def _is(value: Any, kind: Any) -> bool:
    """isinstance, with JSON's true/false not counted as numbers."""
    return isinstance(value, kind) and not (isinstance(value, bool) and bool not in _kinds(kind))


def _kinds(kind: Any) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def _check_values(data: dict[str, Any], where: str) -> None:
    """The required fields' values (their types already checked)."""

    def bad(field: str, expected: str) -> PackageError:
        return PackageError(
            f"{where}: field {field!r} is {json.dumps(data[field])[:60]}; expected {expected} "
            "(fix the card or re-export the package)"
        )

    def numbers(values: list) -> bool:
        return all(_is(v, (int, float)) and math.isfinite(v) for v in values)

    labels = data["labels"]
    if not labels or not all(_is(n, str) and n for n in labels) or len(set(labels)) < len(labels):
        raise bad("labels", "distinct class names (strings), one per model output")
    size = data["input_size"]
    if len(size) != 2 or not all(_is(n, int) and 1 <= n <= MAX_INPUT for n in size):
        raise bad("input_size", f"[H, W] in pixels, each from 1 to {MAX_INPUT}")
    if data["channels"] not in (1, 3):
        raise bad("channels", "1 (grey) or 3 (colour)")
    if not math.isfinite(data["scale"]) or data["scale"] <= 0:
        raise bad("scale", "a positive number, the pixel divisor (255.0 for 0-1 inputs)")
    for key in ("mean", "std"):
        if len(data[key]) != data["channels"] or not numbers(data[key]):
            raise bad(key, f"{data['channels']} number(s), one per channel")
    if not all(v > 0 for v in data["std"]):
        raise bad("std", "positive numbers (a pixel is divided by its channel's std)")
    if not all(_is(k, str) and _is(v, str) for k, v in data.get("sha256", {}).items()):
        raise bad("sha256", "an object mapping each file name to its hex digest")
    if data.get("tta", "none") not in TTA:
        raise bad("tta", f"one of {', '.join(TTA)}")
    fraction = data["crop"].get("fraction", 1.0)
    if not _is(fraction, (int, float)) or not 0 < fraction <= 1:
        raise bad("crop", "an object whose 'fraction' is in (0, 1]")
    if not _is(data["crop"].get("framing", ""), (str, type(None))):
        raise bad("crop", "an object whose 'framing' names a dataset's framing")


def _kind(kind: Any) -> str:
    names = {str: "a string", list: "a list", int: "an integer", dict: "an object"}
    return " or ".join(
        names.get(k, "a number") for k in (kind if isinstance(kind, tuple) else (kind,))
    )


@dataclass(frozen=True)
class ModelPackage:
    path: Path
    card: ModelCard

    @property
    def name(self) -> str:
        return self.card.name

    def has(self, precision: str) -> bool:
        return (self.path / FILES[precision]).is_file()

    def model_file(self, precision: str = "fp32", verify: bool = True) -> Path:
        if precision not in FILES:
            raise PackageError(f"precision {precision!r}: use one of {', '.join(FILES)}")
        path = self.path / FILES[precision]
        if not path.is_file():
            raise PackageError(f"{path}: missing from the package {self.path}")
        if verify:
            want = self.card.sha256.get(path.name)
            if want is None:
                raise PackageError(f"{self.path / CARD}: no sha256 for {path.name}")
            if sha256(path) != want:
                raise PackageError(
                    f"{path}: sha256 differs from the card's; the file was altered or is "
                    "incomplete — restore it from the project (git checkout) or re-export it"
                )
        return path


# more threads than this is a typo, not a setting: onnxruntime and torch start every thread
# asked for (100000 hung the machine) and gain nothing past the cores
MAX_THREADS = 4 * (os.cpu_count() or 1)
THREADS_EXPECTED = f"0 (the library's choice) to {MAX_THREADS} (4 × this machine's CPUs)"


def check_threads(threads: int, what: str = "threads") -> None:
    """Raise ValueError for a thread count out of 0..MAX_THREADS."""
    if not isinstance(threads, int) or isinstance(threads, bool):
        raise TypeError(f"{what} {threads!r}: expected an integer, {THREADS_EXPECTED}")
    if not 0 <= threads <= MAX_THREADS:
        raise ValueError(f"{what} {threads}: expected {THREADS_EXPECTED}")


def open_session(path: str | Path, threads: int = 0):
    """An onnxruntime CPU session; `threads` > 0 fixes the intra-op thread count."""
    import onnxruntime as ort

    check_threads(threads)

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    # idle workers sleep instead of spinning: on 2 cores, spinning workers made five int8 faces
    # take 9.3 ms on 2 threads instead of 5.3 (they compete with the app's other threads)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own types, all of them Exception
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise PackageError(
            f"{path}: onnxruntime cannot load this model ({reason}); re-export the package"
        ) from None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_package(name_or_path: str | Path, models_dir: Path = MODELS_DIR) -> ModelPackage:
    """A package by name (a folder of `models_dir`, not a hidden one: `package_folders`), by
    folder, or by its card or ONNX file."""
    path = Path(name_or_path)
    hidden = str(name_or_path).startswith(".")
    if not path.exists() and not hidden and (models_dir / str(name_or_path)).is_dir():
        path = models_dir / str(name_or_path)
    if path.is_file():
        path = path.parent
    card_path = path / CARD
    if not card_path.is_file():
        known = ", ".join(p.name for p in list_packages(models_dir)) or "none"
        raise PackageError(f"{path}: not a model package (no {CARD}); installed packages: {known}")
    try:
        data = json.loads(card_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise PackageError(
            f"{card_path}: byte {err.start} is not UTF-8; expected a JSON text (re-export the "
            "package)"
        ) from None
    except json.JSONDecodeError as err:
        raise PackageError(f"{card_path}: line {err.lineno}: not valid JSON ({err.msg})") from None
    return ModelPackage(path, ModelCard.from_dict(data, str(card_path)))


def usable_packages(models_dir: Path = MODELS_DIR) -> tuple[list[ModelPackage], list[str]]:
    """The packages whose cards load, and one line for each package folder skipped."""
    packages, skipped = [], []
    for folder in package_folders(models_dir):
        if (folder / CARD).is_file():
            try:
                packages.append(load_package(folder))
            except PackageError as error:
                skipped.append(str(error))
    return packages, skipped


def list_packages(models_dir: Path = MODELS_DIR) -> list[ModelPackage]:
    return [load_package(p) for p in package_folders(models_dir) if (p / CARD).is_file()]


def package_folders(models_dir: Path = MODELS_DIR) -> list[Path]:
    """The entries of `models_dir` that may be packages, by name. Hidden names are not: an
    export assembles its package in `.NAME.PID.staging` beside it, which a killed export
    leaves behind, card and all."""
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir() if not p.name.startswith("."))


def default_package(models_dir: Path = MODELS_DIR) -> ModelPackage:
    marker = models_dir / DEFAULT_FILE
    if marker.is_file():
        return load_package(models_dir / marker.read_text().strip(), models_dir)
    packages = list_packages(models_dir)
    if not packages:
        raise PackageError(f"{models_dir}: no model packages installed")
    return packages[0]

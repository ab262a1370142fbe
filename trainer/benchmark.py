"""Single-image CPU latency of each model in torch (eager) and onnxruntime, at a fixed thread
count: what `python -m trainer benchmark` prints."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_core.models import create_model, get_spec
from fer_core.zoo import ONNX_PRECISIONS, load_package, open_session
from trainer.export import export_onnx
from trainer.table import render, size


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p90_ms: float
    runs: int


@dataclass(frozen=True)
class Latency:
    name: str
    input_size: list[int]
    channels: int
    threads: int
    torch: Timing
    onnxruntime: Timing


def time_calls(
    fn: Callable[[], object],
    seconds: float,
    warmup: int = 3,
    min_runs: int = 5,
    max_runs: int = 500,
) -> Timing:
    """Call `fn` after a warm-up until `seconds` have passed (within the run bounds)."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (
        len(times) < min_runs or time.perf_counter() - start < seconds
    ):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return Timing(
        median_ms=statistics.median(times),
        p90_ms=times[min(len(times) - 1, int(0.9 * len(times)))],
        runs=len(times),
    )


def benchmark_model(name: str, threads: int = 1, seconds: float = 3.0) -> Latency:
    spec = get_spec(name)
    shape = (spec.channels, *spec.input_size)
    model = create_model(name).eval()
    image = np.random.default_rng(0).random((1, *shape), dtype=np.float32)

    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.from_numpy(image)
        with torch.inference_mode():
            torch_timing = time_calls(lambda: model(x), seconds)
    finally:
        torch.set_num_threads(previous_threads)

    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / f"{name}.onnx", shape)
        session = open_session(path, threads)
        ort_timing = time_calls(lambda: session.run(None, {"image": image}), seconds)

    return Latency(name, list(spec.input_size), spec.channels, threads, torch_timing, ort_timing)


@dataclass(frozen=True)
class PackageLatency:
    name: str
    input_size: list[int]
    channels: int
    tta: str
    threads: int
    fp32: Timing
    int8: Timing | None


def benchmark_package(name_or_path: str, threads: int = 1, seconds: float = 3.0) -> PackageLatency:
    """Single-face latency of a model package in onnxruntime, as the app classifies a face:
    normalisation and every live test-time view (a flip card runs two forwards)."""
    from fer_core.classify import Classifier

    package = load_package(name_or_path)
    card = package.card
    shape = (1, *card.input_size) + ((card.channels,) if card.channels > 1 else ())
    face = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    timings = {}
    for precision in ONNX_PRECISIONS:
        if package.has(precision):
            classifier = Classifier(package, precision=precision, threads=threads)
            timings[precision] = time_calls(lambda c=classifier: c.logits(face), seconds)
    return PackageLatency(
        card.name,
        list(card.input_size),
        card.channels,
        card.tta,
        threads,
        timings["fp32"],
        timings.get("int8"),
    )


def _versus(base: Timing, other: Timing | None) -> tuple[str, ...]:
    """Table cells: median and p90 of both timings and the speed-up of `other` ("-" if none)."""
    cells = (f"{base.median_ms:.2f}", f"{base.p90_ms:.2f}")
    if other is None:
        return (*cells, "-", "-", "-")
    return (
        *cells,
        f"{other.median_ms:.2f}",
        f"{other.p90_ms:.2f}",
        f"{base.median_ms / other.median_ms:.1f}×",
    )


def format_package_table(rows: list[PackageLatency]) -> str:
    return render(
        (
            "package",
            "input C×H×W",
            "views",
            "threads",
            "fp32 ms",
            "p90",
            "int8 ms",
            "p90",
            "speed-up",
        ),
        [
            (
                r.name,
                size(r.channels, r.input_size),
                r.tta,
                str(r.threads),
                *_versus(r.fp32, r.int8),
            )
            for r in rows
        ],
        align="lrlrrrrrr",
    )


def format_table(rows: list[Latency]) -> str:
    return render(
        ("model", "input C×H×W", "threads", "torch ms", "p90", "onnxrt ms", "p90", "speed-up"),
        [
            (
                r.name,
                size(r.channels, r.input_size),
                str(r.threads),
                *_versus(r.torch, r.onnxruntime),
            )
            for r in rows
        ],
        align="lrrrrrrr",
    )

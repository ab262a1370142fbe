"""How long a network takes: repeated calls timed after a warm-up, and a model package's
latency per face as the app pays it (its card's live test-time views included)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fer_core.zoo import ONNX_PRECISIONS, load_package


@dataclass(frozen=True)
class Timing:
    median_ms: float
    p90_ms: float
    runs: int


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

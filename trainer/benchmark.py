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
from trainer.export import export_onnx


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
    import onnxruntime as ort

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
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        ort_timing = time_calls(lambda: session.run(None, {"image": image}), seconds)

    return Latency(name, list(spec.input_size), spec.channels, threads, torch_timing, ort_timing)


def format_table(rows: list[Latency]) -> str:
    header = (
        f"{'model':<16} {'input':>9} {'threads':>7} {'torch ms':>9} {'p90':>8} "
        f"{'onnxrt ms':>10} {'p90':>8} {'speed-up':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        size = f"{r.channels}×" + "×".join(map(str, r.input_size))
        lines.append(
            f"{r.name:<16} {size:>9} {r.threads:>7} {r.torch.median_ms:>9.2f} "
            f"{r.torch.p90_ms:>8.2f} {r.onnxruntime.median_ms:>10.2f} "
            f"{r.onnxruntime.p90_ms:>8.2f} {r.torch.median_ms / r.onnxruntime.median_ms:>7.1f}×"
        )
    return "\n".join(lines)

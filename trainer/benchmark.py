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
    return render(
        ("model", "input C×H×W", "threads", "torch ms", "p90", "onnxrt ms", "p90", "speed-up"),
        [
            (
                r.name,
                size(r.channels, r.input_size),
                str(r.threads),
                f"{r.torch.median_ms:.2f}",
                f"{r.torch.p90_ms:.2f}",
                f"{r.onnxruntime.median_ms:.2f}",
                f"{r.onnxruntime.p90_ms:.2f}",
                f"{r.torch.median_ms / r.onnxruntime.median_ms:.1f}×",
            )
            for r in rows
        ],
        align="lrrrrrrr",
    )

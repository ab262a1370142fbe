"""Single-image CPU latency of each model in torch (eager) and onnxruntime, at a fixed thread
count: what `python -m trainer benchmark` prints."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fer_core.models import create_model, get_spec
from fer_core.zoo import open_session
from trainer.evaluation.latency import PackageLatency, Timing, time_calls
from trainer.evaluation.table import render, size
from trainer.export.package import export_onnx


@dataclass(frozen=True)
class Latency:
    name: str
    input_size: list[int]
    channels: int
    threads: int
    torch: Timing
    onnxruntime: Timing


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

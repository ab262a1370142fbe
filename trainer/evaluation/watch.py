"""The test split after every epoch, recorded and never used to choose.

Published FER2013 figures (Khaireddin & Chen's VGG, LetheSec's ResNet-18, Auto-FERNet) keep the
epoch that scores best on PrivateTest itself. This project chooses on PublicTest; `--watch-test`
records the test split's top-1 in the mirror view beside each epoch (`test-watch.csv`) so that a
run can state both figures, each labelled: the one it chose on validation, and the "best test
epoch" one that those papers report. Nothing in the run reads it back.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path
from typing import Any

from trainer.engine.callbacks import Callback
from trainer.engine.loop import evaluate_split
from trainer.files import atomic_write

FIELDS = ("epoch", "test_top1", "test_macro_f1")


class TestWatch(Callback):
    key = "test_watch"
    __test__ = False  # not a pytest class

    def __init__(self, rows: list[dict[str, float]] | None = None):
        self.rows = list(rows or [])

    def on_fit_start(self, run) -> None:
        dataset = run.dataset
        if not dataset.test or dataset.test == dataset.val:
            raise ValueError(
                f"--watch-test: dataset {dataset.name} has no test split apart from its "
                "validation split"
            )
        self.view = replace(run.view, tta="flip")
        self.data = run.read_as_validation(dataset[dataset.test])

    def on_epoch_end(self, run, row, ckpt) -> None:
        metrics = evaluate_split(
            run.model, self.data, self.view, run.labels, run.device, run.precision
        )
        self.rows.append(
            {"epoch": row.epoch, "test_top1": metrics.top1, "test_macro_f1": metrics.macro_f1}
        )
        ckpt.callbacks[self.key] = self.state_dict()
        if run.is_main:  # every process scores its block of the test split; rank 0 writes
            write_rows(run.out / "test-watch.csv", self.rows, FIELDS)

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        return {"test (watched, mirror)": [(r["epoch"], r["test_top1"]) for r in self.rows]}

    def state_dict(self) -> dict[str, Any]:
        return {"rows": [dict(r) for r in self.rows]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rows = [dict(r) for r in state["rows"]]

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TestWatch:
        return cls(state["rows"])

    def describe(self) -> str:
        return "test split watched (mirror view, not used to choose)"


def write_rows(path: Path, rows: list[dict[str, float]], fields: tuple[str, ...]) -> Path:
    """`rows` as a CSV with the header `fields`, written atomically."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write(path, lambda tmp: Path(tmp).write_text(buf.getvalue()))

"""Training methods that plug into the engine as callbacks (relabeling, snapshots,
distillation) or drive it (k-fold, ensembles, FES)."""

from __future__ import annotations

from typing import Any

from trainer.engine.callbacks import Callback
from trainer.evaluation.plots import Curves
from trainer.evaluation.watch import TestWatch
from trainer.methods.distill import Distill
from trainer.methods.relabel import Relabel, Snapshots

# callbacks that keep state in a run's checkpoints, by key: what a resume rebuilds
STATEFUL: dict[str, Any] = {cls.key: cls for cls in (Relabel, Snapshots, Distill, TestWatch)}


def standard_callbacks(
    teachers: list[str] | None = None, snapshots: bool = True, watch_test: bool = False
) -> list[Callback]:
    """What a run gets: its curves, the snapshots relabel training starts from (not in relabel
    training itself), distillation when teachers are named, and the test split's record when
    asked (`--watch-test`)."""
    return [
        *([Snapshots()] if snapshots else []),
        *([Distill(teachers)] if teachers else []),
        *([TestWatch()] if watch_test else []),
        Curves(),  # last: it draws what the others measured this epoch
    ]


def resumed_callbacks(states: dict[str, dict[str, Any]]) -> list[Callback]:
    """The callbacks a run was trained with, rebuilt from its checkpoint's records."""
    unknown = set(states) - set(STATEFUL)
    if unknown:
        raise ValueError(f"the run used callbacks this trainer lacks: {', '.join(sorted(unknown))}")
    return [*(STATEFUL[key].from_state(state) for key, state in states.items()), Curves()]

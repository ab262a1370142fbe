"""What plugs into the training loop from outside it: relabeling, distillation, snapshots,
curves. A callback overrides the hooks it needs; the loop calls them in list order.

A callback with a `key` keeps state in the run's checkpoints (`state_dict` / `load_state_dict`)
and is recorded there by that key, so a resumed run is refused unless it is given the same
callbacks: a run never silently continues without the method it was started with.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch

if TYPE_CHECKING:
    from trainer.engine.checkpoint import Checkpoint, EpochRow
    from trainer.engine.loop import Run
    from trainer.engine.step import Batch


class Callback:
    key: ClassVar[str] = ""  # its name in the checkpoint; "" = keeps no state

    def on_fit_start(self, run: Run) -> None:
        """The model, data and optimiser are ready (restored, when resuming)."""

    def on_epoch_start(self, run: Run, epoch: int) -> None: ...

    def on_batch(self, run: Run, batch: Batch) -> None:
        """The batch is built, before the forward pass (teachers run here)."""

    def on_logits(self, batch: Batch, logits: torch.Tensor) -> None:
        """The first forward pass's logits (detached, fp32), before the loss is formed: the
        place to change `batch.y` / `batch.targets` from the model's own predictions."""

    def extra_loss(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor | None:
        """A term added to the loss in every forward pass (fp32 logits with gradients)."""
        return None

    def on_epoch_end(self, run: Run, row: EpochRow, ckpt: Checkpoint) -> None:
        """After validation, once `ckpt` (the epoch's record) is built, before `last.pt` is
        written: files written here are complete before the epoch counts as done."""

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        """Top-1 figures this callback measures, drawn in `curves.png` beside the run's own:
        {label: [(epoch, top-1 in 0–1), ...]}."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...

    def describe(self) -> str:
        return self.key or type(self).__name__

"""Knowledge distillation (Hinton, Vinyals and Dean, "Distilling the Knowledge in a Neural
Network"): the student also learns the softened class probabilities of one or more teachers.

Each teacher — a trainer checkpoint or a model package exported with `--torch-weights` — sees
the very batch the student sees (augmented and mixed, before normalisation), in its own view:
resized to its input size, in its channels, with its normalisation, averaged over its live
test-time views (the face and its mirror for a `flip` card). Several teachers are an ensemble:
their logits are averaged. Classes are matched by name, so a teacher with other classes or
another order serves as long as it knows every class of the student. The loss gains

    weight · T² · KL(softmax(teacher / T) ‖ softmax(student / T))

beside the cross-entropy; T (`kd_temperature`) and the weight (`kd_weight`) are recipe fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from trainer.data.labels import canonical
from trainer.engine import checkpoint
from trainer.engine.callbacks import Callback
from trainer.engine.step import Batch
from trainer.engine.views import View, mirrored, normalize


@dataclass
class Teacher:
    source: str
    model: nn.Module
    view: View
    rows: list[int]  # the teacher's output row of each student class

    def logits(self, x01: torch.Tensor, channels_last: bool) -> torch.Tensor:
        if x01.shape[-1] != self.view.size:
            x01 = F.interpolate(
                x01,
                size=(self.view.size,) * 2,
                mode="bilinear",
                antialias=True,
                align_corners=False,
            )
        views = mirrored(self.view, normalize(self.view, x01))
        if channels_last:
            views = [v.contiguous(memory_format=torch.channels_last) for v in views]
        out = torch.stack([self.model(v).float() for v in views]).mean(0)
        return out[:, self.rows]


def load_teacher(source: str, labels: list[str], device: torch.device) -> Teacher:
    model, ckpt = checkpoint.load_model(source)
    own = [canonical(n) for n in ckpt.labels]
    missing = [n for n in labels if canonical(n) not in own]
    if missing:
        raise ValueError(
            f"--teacher {source}: has no class {', '.join(missing)} of the student "
            f"(it knows {', '.join(ckpt.labels)})"
        )
    rows = [own.index(canonical(n)) for n in labels]
    for p in model.parameters():
        p.requires_grad_(False)
    return Teacher(str(source), model.to(device).eval(), ckpt.view, rows)


class Distill(Callback):
    key = "distill"

    def __init__(self, sources: list[str]):
        if not sources:
            raise ValueError("--teacher: name at least one checkpoint or package")
        self.sources = [str(s) for s in sources]
        self.teachers: list[Teacher] = []
        self.temperature, self.weight = 4.0, 1.0

    def on_fit_start(self, run) -> None:
        self.temperature, self.weight = run.recipe.kd_temperature, run.recipe.kd_weight
        if self.temperature <= 0:
            raise ValueError(f"--kd-temperature {self.temperature}: expected > 0")
        self.teachers = [load_teacher(s, run.labels, run.device) for s in self.sources]
        for t in self.teachers:
            run.precision.model(t.model)

    def on_batch(self, run, batch: Batch) -> None:
        with torch.no_grad(), run.precision.autocast(run.device):
            logits = [t.logits(batch.x01, run.precision.channels_last) for t in self.teachers]
        batch.extras["teacher"] = torch.stack(logits).float().mean(0)

    def extra_loss(self, batch: Batch, logits: torch.Tensor) -> torch.Tensor | None:
        if not self.weight:
            return None
        t = self.temperature
        student = F.log_softmax(logits / t, dim=1)
        teacher = F.softmax(batch.extras["teacher"] / t, dim=1)
        return self.weight * t * t * F.kl_div(student, teacher, reduction="batchmean")

    def state_dict(self) -> dict[str, Any]:
        return {"teachers": list(self.sources)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["teachers"]) != self.sources:
            raise ValueError(
                f"resuming: the run distils from {', '.join(state['teachers'])}, "
                f"not {', '.join(self.sources)}"
            )

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Distill:
        return cls(list(state["teachers"]))

    def describe(self) -> str:
        return f"distillation from {' + '.join(self.sources)}"

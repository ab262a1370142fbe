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

What the teachers see is the recipe's `kd_views`. "batch" is the above: consistent teaching
(Beyer et al., "Knowledge distillation: A good teacher is patient and consistent"), at the
teachers' cost every step. "stored" scores each stored training face once before training, as
`evaluate` does (the teacher's own view and test-time views; onnxruntime for a package, so an
exported ensemble serves without torch weights), and each step looks its rows up: the teachers
then cost nothing per step, but their targets no longer follow the batch's shifts, rotations
and erasing, and mixup, which blends two faces, is refused. The scores are kept in the run folder
(`teacher-logits.pt`), keyed by the teachers' digests and the training split's, so that a resume
does not score again: a package is named by the digest of its card, which pins its model files
by sha256 (a package whose files differ from their card does not load).
"""

from __future__ import annotations

import pickle
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from trainer.data.labels import canonical
from trainer.engine import checkpoint
from trainer.engine.callbacks import Callback
from trainer.engine.step import Batch
from trainer.engine.views import View, mirrored, normalize
from trainer.files import save_torch

STORED_CACHE = "teacher-logits.pt"


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


def teacher_rows(source: str, own_labels: list[str], labels: list[str]) -> list[int]:
    """The teacher's output row of each student class, matched by name."""
    own = [canonical(n) for n in own_labels]
    missing = [n for n in labels if canonical(n) not in own]
    if missing:
        raise ValueError(
            f"--teacher {source}: has no class {', '.join(missing)} of the student "
            f"(it knows {', '.join(own_labels)})"
        )
    return [own.index(canonical(n)) for n in labels]


def load_teacher(source: str, labels: list[str], device: torch.device) -> Teacher:
    model, ckpt = checkpoint.load_model(
        source, "a teacher that sees each batch runs in torch; --kd-views stored takes any package"
    )
    rows = teacher_rows(source, list(ckpt.labels), labels)
    for p in model.parameters():
        p.requires_grad_(False)
    return Teacher(str(source), model.to(device).eval(), ckpt.view, rows)


def stored_logits(source: str, run) -> torch.Tensor:
    """A teacher's logits of every training face of the run, in the student's class order, as
    `evaluate` scores them: the teacher's own view and test-time views (onnxruntime for a
    package, which may then hold no torch weights: an exported ensemble)."""
    from trainer.evaluation.evaluate import load_predictor, predict

    predictor = load_predictor(source, device=str(run.device), threads=torch.get_num_threads())
    rows = teacher_rows(source, list(predictor.labels), run.labels)
    scored = predict(predictor, run.dataset, run.dataset.train)
    if len(scored.logits) != len(run.train_data):
        raise ValueError(f"--teacher {source}: scored {len(scored.logits)} of "
                         f"{len(run.train_data)} training faces")  # fmt: skip
    return torch.as_tensor(scored.logits, dtype=torch.float32)[:, rows]


def teacher_digest(source: str) -> str:
    """A checkpoint's sha256, or a package's card's (given as its folder, card or ONNX file)."""
    from fer_core.zoo import CARD, sha256

    path = Path(source)
    if path.suffix in (".pt", ".pth"):
        return sha256(path)
    return sha256((path if path.is_dir() else path.parent) / CARD)


def split_digest(split) -> str:
    """The sha256 of a split's targets and pixels (or image files), in order."""
    import hashlib

    digest = hashlib.sha256(np.ascontiguousarray(split.targets).tobytes())
    if split.images is not None:
        digest.update(np.ascontiguousarray(split.images).tobytes())
    else:
        for path in split.paths:
            digest.update(Path(path).read_bytes())
    return digest.hexdigest()


def cached_stored_logits(sources: list[str], run) -> torch.Tensor:
    """The teachers' averaged stored logits: from the run folder's cache when its key matches
    these teachers, this training split and these classes, else scored and cached."""
    key = {
        "teachers": [teacher_digest(s) for s in sources],
        "train": split_digest(run.dataset[run.dataset.train]),
        "labels": list(run.labels),
    }
    path = Path(run.out) / STORED_CACHE
    if path.is_file():
        try:
            cached = torch.load(path, map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as err:
            print(f"{path}: unreadable ({err}); scoring the teachers again", file=sys.stderr)
            cached = None
        if isinstance(cached, dict) and cached.get("key") == key:
            if run.is_main:
                print(f"teacher scores from {path} (same teachers and training faces)",
                      file=sys.stderr)  # fmt: skip
            return cached["logits"]
    # several processes: each scores the faces itself (no process waits on another's scoring),
    # rank 0 alone keeps the cache
    logits = torch.stack([stored_logits(s, run) for s in sources]).mean(0)
    if run.is_main:
        save_torch({"key": key, "logits": logits}, path)
    return logits


class Distill(Callback):
    key = "distill"

    def __init__(self, sources: list[str]):
        if not sources:
            raise ValueError("--teacher: name at least one checkpoint or package")
        self.sources = [str(s) for s in sources]
        self.teachers: list[Teacher] = []
        self.temperature, self.weight = 4.0, 1.0
        self.stored: torch.Tensor | None = None  # N × classes, with kd_views "stored"

    def on_fit_start(self, run) -> None:
        recipe = run.recipe
        self.temperature, self.weight = recipe.kd_temperature, recipe.kd_weight
        if self.temperature <= 0:
            raise ValueError(f"--kd-temperature {self.temperature}: expected > 0")
        if recipe.kd_views == "stored" and recipe.mixup:
            raise ValueError(
                "--kd-views stored: a stored face's teacher logits cannot follow mixup's blend of "
                "two faces; give --mixup 0, or --kd-views batch"
            )
        if recipe.kd_views == "stored":
            self.stored = cached_stored_logits(self.sources, run).to(run.device)
            return
        self.teachers = [load_teacher(s, run.labels, run.device) for s in self.sources]
        for t in self.teachers:
            run.precision.model(t.model)

    def on_batch(self, run, batch: Batch) -> None:
        if self.stored is not None:
            batch.extras["teacher"] = self.stored[batch.index.to(self.stored.device)]
            return
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

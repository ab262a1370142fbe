"""`python -m trainer evaluate PACKAGE --live`: does a face score as well through the live
engine as its stored crop does through `evaluate`?

Each stored face square is put in a scene the way `python -m trainer framing` does it (upscaled,
padded with its own border), MediaPipe finds it, and the package classifies the engine's aligned
crop (eyes level, framed like the training data, `fer_core.classify`). The same package
classifies the stored square as `evaluate` does, on the same backend with the same test-time
views, so the two figures differ only by the framing: where the detector puts the eyes against
where the dataset put them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from trainer.data import Dataset
from trainer.data.framing import as_scene
from trainer.data.mix import mapped_split
from trainer.engine.metrics import Metrics, compute
from trainer.evaluation.evaluate import scored_split


@dataclass
class LiveCheck:
    source: str
    precision: str
    dataset: str
    split: str  # described: `all`, `test (PrivateTest)`
    tta: str
    images: int  # faces of classes the model has
    found: int  # faces the detector found
    left_out: int  # samples of classes the model does not have
    live: Metrics  # the found faces, the engine's aligned crop
    stored: Metrics  # the same faces, their stored crop
    stored_all: Metrics  # every face, its stored crop (what `evaluate` reports)
    seconds: float

    @property
    def live_top1_all(self) -> float:
        """Top-1 over every face, a face the detector missed counted wrong."""
        return self.live.top1 * self.live.n / max(self.images, 1)

    def report(self) -> str:
        lines = [
            f"{self.source} (onnxruntime, {self.precision}) on {self.dataset} {self.split}, "
            f"TTA {self.tta}: each face through the live engine",
            f"  detector found {self.found} of {self.images} faces "
            f"({100 * self.found / max(self.images, 1):.1f}%)",
            f"  found faces, engine's aligned crop: {self.live.summary()}",
            f"  found faces, stored crop:           {self.stored.summary()}",
            f"  all faces, stored crop (evaluate):  {self.stored_all.summary()}",
            f"  all faces live, a missed face counted wrong: top-1 {100 * self.live_top1_all:.2f}%",
        ]
        if self.left_out:
            lines.append(f"  {self.left_out} samples of classes the model lacks were left out")
        return "\n".join(lines)


def live_check(
    package: str,
    dataset: Dataset,
    split: str | None = None,
    precision: str = "fp32",
    threads: int = 1,
    batch_size: int = 256,
) -> LiveCheck:
    from fer_core.classify import Classifier
    from fer_core.faces import FaceFinder, FaceOptions

    split = scored_split(dataset, split)
    classifier = Classifier(package, "onnxruntime", precision, threads)
    data = mapped_split(dataset[split], dataset.labels, tuple(classifier.labels))
    # BGR as the engine's frames; datasets of mixed sizes keep each square's own
    squares = [
        np.ascontiguousarray(data.decode(i, channels=3)[..., ::-1]) for i in range(len(data))
    ]
    targets = data.targets

    t0 = time.perf_counter()
    live, found = [], []
    # unrelated pictures, not a video: no memory of earlier faces
    with FaceFinder(FaceOptions(zoom=False)) as finder:
        for k, square in enumerate(squares):
            scene = as_scene(square)
            faces, _ = finder.find(scene)
            if faces:
                face = max(faces, key=lambda f: f.box[2] * f.box[3])
                live.append(classifier.preprocess.from_frame(scene, [face.eyes])[0])
                found.append(k)
    found = np.array(found, np.int64)
    stored = np.concatenate([classifier.preprocess.from_stored(q[None]) for q in squares])
    stored_logits = _logits(classifier, stored, batch_size)
    live_logits = _logits(classifier, live, batch_size)
    labels = classifier.labels
    return LiveCheck(
        source=str(classifier.package.path),
        precision=precision,
        dataset=dataset.name,
        split=dataset.describe(split),
        tta=classifier.preprocess.tta,
        images=len(data),
        found=len(found),
        left_out=len(dataset[split]) - len(data),
        live=compute(live_logits, targets[found], labels),
        stored=compute(stored_logits[found], targets[found], labels),
        stored_all=compute(stored_logits, targets, labels),
        seconds=time.perf_counter() - t0,
    )


def _logits(classifier, faces, batch_size: int) -> np.ndarray:
    """Logits of network-sized faces (an array or a list of them), `batch_size` at a time."""
    chunks = [faces[i : i + batch_size] for i in range(0, len(faces), batch_size)] or [faces]
    return np.concatenate([classifier.logits(np.asarray(c)) for c in chunks])

"""`python -m trainer evaluate PACKAGE --personal`: how much a person's profile
(`fer_core.profile`) helps, on a dataset that knows who each face is.

Per subject, a profile is taught from the subject's own images, as the app's "teach me" does
from a few frames, and the subject's other images are read with and without it. Two protocols:

- `taught`: each class the subject shows is taught by the first image (by name) of its first
  sequence, and the subject's remaining images are the queries. On CK+ every sequence gives its
  last three frames and no subject shows one expression twice, so a query is a neighbouring
  frame of the very sequence that taught its class: this is the optimistic case, a person
  showing the same expression as at teaching time.
- `untaught`: each query sequence is read with a profile taught by the subject's other
  sequences only (on CK+: the other expressions), so the query's own class was never taught.
  What it measures is the cost: a profile must not turn an expression it never saw into one it
  did.

Classes the model does not have (CK+ contempt) are left out, as queries and as examples.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fer_core.profile import ModelKey, Profile, ProfileOptions, log_probs
from trainer.data import Dataset
from trainer.engine.metrics import Metrics, compute
from trainer.evaluation.evaluate import Predictor, predict, scored_split

SEQUENCE = re.compile(r"(S\d+)_(\d+)_(\d+)")  # CK+: S<subject>_<sequence>_<frame>
PROTOCOLS = ("taught", "untaught")


def sequence_of(where: str) -> str:
    """The sequence an image belongs to: CK+'s subject_sequence, else the image itself."""
    stem = Path(where.split(":")[0]).stem
    m = SEQUENCE.fullmatch(stem)
    return f"{m[1]}_{m[2]}" if m else stem


@dataclass
class PersonalCheck:
    source: str
    dataset: str
    split: str
    protocol: str
    subjects: int
    examples: int  # images that taught a profile
    left_out: int  # samples of classes the model does not have
    classes: tuple[str, ...]  # the classes among the queries
    model: Metrics  # the queries, the model alone
    personal: Metrics  # the same queries, read with the subject's profile
    nearest: float  # top-1 of the nearest taught class alone (only taught classes can win)
    options: ProfileOptions
    seconds: float

    def report(self) -> str:
        o = self.options
        lines = [
            f"{self.source} on {self.dataset} {self.split}, personal protocol "
            f"{self.protocol!r}: {self.subjects} subjects, {self.examples} teaching images, "
            f"{self.model.n} queries (profile frames=1 image, target {o.target}, "
            f"temperature {o.temperature}, weight {o.weight})",
            f"  model alone:  {self.model.summary()}",
            f"  with profile: {self.personal.summary()}",
        ]
        if self.protocol == "taught":
            lines.append(
                f"  nearest taught class alone: top-1 {100 * self.nearest:.2f}% (the ceiling "
                "when only taught classes may win)"
            )
        width = max(len(n) for n in self.model.labels)
        lines += [
            f"  recall {name:<{width}} {100 * self.model.recall[name]:6.2f}% → "
            f"{100 * self.personal.recall[name]:6.2f}%"
            for name in self.classes
        ]
        if self.left_out:
            lines.append(f"  {self.left_out} samples of classes the model lacks were left out")
        return "\n".join(lines)


def _plans(
    subjects: np.ndarray, sequences: list[str], names: list[str], protocol: str
) -> list[tuple[list[int], list[int]]]:
    """(teaching rows, query rows) pairs, each profile taught from its teaching rows."""
    by_subject: dict[str, list[int]] = defaultdict(list)
    for row, subject in enumerate(subjects):
        by_subject[str(subject)].append(row)
    plans = []
    for rows in by_subject.values():
        by_sequence: dict[str, list[int]] = defaultdict(list)
        for row in sorted(rows, key=lambda r: names[r]):
            by_sequence[sequences[row]].append(row)
        firsts = [seq[0] for seq in by_sequence.values()]
        if protocol == "taught":
            queries = [r for r in rows if r not in firsts]
            if queries:
                plans.append((firsts, queries))
        else:
            for key, seq in by_sequence.items():
                teach = [by_sequence[other][0] for other in by_sequence if other != key]
                if teach:
                    plans.append((teach, seq))
    return plans


def personal_check(
    predictor: Predictor,
    dataset: Dataset,
    protocol: str = "taught",
    options: ProfileOptions | None = None,
    split: str | None = None,
) -> PersonalCheck:
    if protocol not in PROTOCOLS:
        raise ValueError(f"--personal {protocol}: expected one of {', '.join(PROTOCOLS)}")
    options = options or ProfileOptions()
    key = scored_split(dataset, split)
    data = dataset[key]
    if data.groups is None:
        raise ValueError(
            f"--personal: {dataset.name} {key} does not say whose each face is (subject ids); "
            "the personal protocol needs a dataset with subjects, such as ckplus"
        )
    t0 = time.perf_counter()
    p = predict(predictor, dataset, key)
    probs, targets = _softmax(p.logits), p.targets
    names = [data.where[i] if data.where else str(i) for i in p.index]
    plans = _plans(data.groups[p.index], [sequence_of(n) for n in names], names, protocol)
    model = ModelKey(predictor.source, "evaluation", tuple(predictor.labels))
    rows, read, nearest = [], [], 0
    for teach, queries in plans:
        profile = Profile("subject", model)
        for label in sorted({int(targets[r]) for r in teach}):
            shown = [r for r in teach if targets[r] == label]
            profile = profile.taught_with(predictor.labels[label], probs[shown])
        rows += queries
        read.append(profile.apply(probs[queries], options))
        nearest += _nearest_taught(profile, probs[queries], targets[queries], predictor.labels)
    rows_a = np.array(rows, dtype=np.int64)
    personal = np.concatenate(read) if read else np.zeros((0, len(predictor.labels)))
    return PersonalCheck(
        source=predictor.source,
        dataset=dataset.name,
        split=dataset.describe(key),
        protocol=protocol,
        subjects=len({str(data.groups[p.index][r]) for r in rows_a}),
        examples=sum(len(teach) for teach, _ in plans) if protocol == "taught" else
        len({r for teach, _ in plans for r in teach}),
        left_out=p.left_out,
        classes=tuple(predictor.labels[c] for c in sorted(set(targets[rows_a].tolist()))),
        model=compute(np.log(np.clip(probs[rows_a], 1e-9, None)), targets[rows_a],
                      predictor.labels),
        personal=compute(np.log(np.clip(personal, 1e-9, None)), targets[rows_a],
                         predictor.labels),
        nearest=nearest / max(len(rows), 1),
        options=options,
        seconds=time.perf_counter() - t0,
    )  # fmt: skip


def _nearest_taught(profile: Profile, probs, targets, labels) -> int:
    """How many queries the nearest taught class mean (log-probabilities) gets right."""
    logp = log_probs(probs)
    nearest = ((logp[:, None, :] - profile.means) ** 2).sum(axis=-1).argmin(axis=1)
    return int((np.array(profile.taught_index)[nearest] == targets).sum())


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)

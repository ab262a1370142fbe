"""`python -m trainer kfold`: k-fold fine-tuning of a checkpoint on a small dataset (CK+48).

Each fold fine-tunes the checkpoint (`train` with `init=`) on the other folds and is scored on
its held-out fold at the **final epoch**; the result is the mean ± std of those figures. The
held-out fold is only ever reported, never used to choose an epoch or anything else (the
paper's "best epoch on the test fold" figure is test-set selection and is not offered).

Two fold protocols:
- `subject` (the honest one): every subject's images lie in one fold, folds balanced by image
  count. CK+ sequences contribute their last 3 frames, so any split below the subject leaks
  near-identical frames from training into test.
- `paper`: Auto-FERNet's fixed class slices (its test_CK48.py), for comparison with its reported
  figure only. It is NOT subject-independent, and its results are labelled as such.

The run folder holds `fold-01/` … (ordinary training runs; their `best.pt` is chosen on the
test fold and must not be reported), `folds.json` (the plan: protocol, seed, recipe, test
indices) and `kfold.json` (the result). Rerunning skips finished folds and resumes a stopped one.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data import Dataset
from trainer.data.mix import mapped_split, with_faces
from trainer.engine import distributed
from trainer.engine.checkpoint import load as load_checkpoint
from trainer.engine.checkpoint import load_weights
from trainer.engine.recipes import VIEW_FIELDS, Recipe, get_recipe
from trainer.files import atomic_write

PROTOCOLS = {
    "subject": "subject-independent: each subject's images in exactly one fold, folds balanced "
    "by image count",
    "paper": "Auto-FERNet's CK+ folds: fixed class slices, NOT "
    "subject-independent (frames of one sequence fall in train and test); for comparison only",
}
# The paper's CK+48 HDF5: classes in this order, each class's images in file order.
PAPER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")
PAPER_COUNTS = (135, 177, 75, 207, 84, 249, 54)
PAPER_TEST = (12, 18, 9, 21, 9, 24, 6)  # test images per class and fold: 99 per fold
PAPER_FOLDS = 10


@dataclass
class FoldResult:
    fold: int  # 1-based
    n: int  # held-out images
    top1: float  # at the final epoch
    macro_f1: float  # at the final epoch
    epochs: int
    run: str  # the fold's run folder


@dataclass
class KFoldResult:
    protocol: str
    description: str
    k: int
    seed: int
    checkpoint: str
    folds: list[FoldResult]
    mean_top1: float
    std_top1: float  # over folds, population std (ddof 0, as scikit-learn reports)
    mean_macro_f1: float
    std_macro_f1: float
    recipe: Recipe
    note: str = field(
        default="final-epoch figures; the held-out folds were never used to choose anything"
    )


# ------------------------------------------------------------------------------ folds


def subject_folds(groups: np.ndarray, k: int, seed: int = 0) -> list[np.ndarray]:
    """Test indices of `k` folds in which every subject (`groups` value) lies in exactly one
    fold. Subjects go, largest first, to the fold with the fewest images so far, which keeps the
    folds within one subject's size of each other; the seed orders subjects of equal size."""
    groups = np.asarray(groups)
    subjects, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if not 2 <= k <= len(subjects):
        raise ValueError(f"k = {k} folds need 2 ≤ k ≤ the number of subjects ({len(subjects)})")
    shuffled = np.random.default_rng(seed).permutation(len(subjects))
    order = shuffled[np.argsort(-counts[shuffled], kind="stable")]
    load = np.zeros(k, dtype=np.int64)
    fold_of = np.empty(len(subjects), dtype=np.int64)
    for s in order:
        f = int(np.argmin(load))
        fold_of[s] = f
        load[f] += counts[s]
    return [np.flatnonzero(fold_of[inverse] == f) for f in range(k)]


def paper_folds(targets: np.ndarray, labels: tuple[str, ...] | list[str]) -> list[np.ndarray]:
    """Test indices of the paper's 10 CK+ folds (Auto-FERNet's test_CK48.py),
    reproduced index for index. Its data is CK+48 class by class in the order anger, disgust,
    fear, happy, sadness, surprise, contempt; here each class's images are taken in dataset order
    (sorted file names, as `read_ckplus` returns them) and classes are matched by label name.

    Fold f = 1…9 tests on slice f-1 of each class (12/18/9/21/9/24/6 images, 99 in all), fold 10
    on the last such slice of each class. The slices are positions in the concatenated data, as
    in the paper's code, so fold 9's fear slice (positions 72–80 of 75 fear images) runs into the
    first 6 happy images. Folds overlap (fold 10 with folds 8–9 in some classes) and leave some
    images never tested; the protocol is what it is, for comparison only."""
    from trainer.data.labels import canonical

    targets = np.asarray(targets)
    where = {canonical(n): i for i, n in enumerate(labels)}
    missing = [n for n in PAPER_CLASSES if n not in where]
    if missing:
        raise ValueError(f"the paper protocol needs the CK+ classes; labels lack {missing}")
    members = [np.flatnonzero(targets == where[n]) for n in PAPER_CLASSES]
    counts = tuple(len(m) for m in members)
    if counts != PAPER_COUNTS or len(targets) != sum(PAPER_COUNTS):
        raise ValueError(
            f"the paper protocol is defined on CK+48's {sum(PAPER_COUNTS)} images with "
            f"{dict(zip(PAPER_CLASSES, PAPER_COUNTS, strict=True))}; this dataset has "
            f"{len(targets)} images with {dict(zip(PAPER_CLASSES, counts, strict=True))}"
        )
    order = np.concatenate(members)
    starts = np.cumsum((0, *PAPER_COUNTS))
    folds = []
    for f in range(1, PAPER_FOLDS + 1):
        positions = [
            starts[c] + (f - 1) * n + np.arange(n)
            if f < PAPER_FOLDS
            else starts[c + 1] - 1 - np.arange(n)
            for c, n in enumerate(PAPER_TEST)
        ]
        folds.append(np.sort(order[np.concatenate(positions)]))
    return folds


# ------------------------------------------------------------------------------ fine-tuning


def finetune_recipe(recipe: Recipe, stored: dict[str, Any]) -> Recipe:
    """`recipe` with the views of the checkpoint's own recipe (`stored`), so that the network
    keeps the input it was trained for (e.g. 40 px crops of 40/48 of the face)."""
    view = {name: stored[name] for name in VIEW_FIELDS}
    if stored.get("tencrop_train") and not recipe.tencrop_train:
        # it trained on ten crops at the test view's scale: one random crop at that scale
        view["train_crop"] = stored["eval_crop"]
    return recipe.override(**view)


def _fold_dataset(
    dataset: Dataset,
    whole: str,
    test: np.ndarray,
    i: int,
    into: Dataset | None = None,
    repeat: int = 1,
) -> Dataset:
    """The other folds as `train`, the held-out fold as `val` (which `train` reports each epoch;
    nothing is chosen on it here). With `into`, the folds join that dataset: its labels (classes
    matched by name, faces of others left out) and its training faces beside the other folds'
    faces, which are repeated `repeat` times."""
    data = dataset[whole]
    held_out = np.zeros(len(data), dtype=bool)
    held_out[test] = True
    name = f"fold-{i:02d}"
    others = data.subset(np.flatnonzero(~held_out), "train")
    held = data.subset(np.flatnonzero(held_out), name)
    if into is None:
        return Dataset(dataset.name, dataset.labels, {"train": others, name: held}, "train", name)
    return Dataset(
        name=f"{into.name}+{dataset.name}",
        labels=into.labels,
        splits={
            "train": with_faces(into, others, dataset.labels, repeat),
            name: mapped_split(held, dataset.labels, into.labels),
        },
        train="train",
        val=name,
    )  # fmt: skip


def _check_plan(out_dir: Path, plan: dict[str, Any]) -> None:
    """A rerun must continue the same folds: refuse an out_dir planned differently."""
    path = out_dir / "folds.json"
    plan = json.loads(json.dumps(plan))  # tuples → lists, as read back
    if path.exists():
        old = json.loads(path.read_text())
        if old != plan:
            changed = sorted(k for k in plan if old.get(k) != plan[k])
            raise ValueError(
                f"{out_dir} holds k-fold runs with a different {', '.join(changed)}; "
                "use another --out"
            )
        return
    if distributed.is_main():  # several processes: rank 0 writes
        atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(plan, indent=1)))


def kfold(
    checkpoint: str | Path,
    dataset: Dataset,
    k: int = 10,
    protocol: str = "subject",
    recipe: Recipe | None = None,
    out_dir: str | Path = "runs/kfold",
    seed: int = 0,
    device: str = "auto",
    data: str | Path = "",
    split: str = "all",
    command: str = "",
    teachers: list[str] | None = None,
    precision: str = "auto",
    into: Dataset | None = None,
    repeat: int = 1,
    sync_bn: str = "auto",
) -> KFoldResult:
    """Fine-tune `checkpoint` on each fold of `dataset[split]` (default recipe
    `ckplus-finetune`, views taken from the checkpoint's recipe) and score it on the held-out
    fold. The held-out fold is the run's validation split only in name: it is reported, never
    used to choose; each fold's figure is its final epoch. Finished folds are not retrained,
    stopped ones resume from their `last.pt`. `teachers` distil into every fold. With `into`
    (e.g. FER2013), each fold trains as part of that dataset, in its labels, the other folds'
    faces `repeat` times beside its training faces (`_fold_dataset`): the held-out figures are
    then those of a model trained on both, as one trained on all subjects would be shipped."""
    from trainer.engine.loop import TrainConfig, train
    from trainer.methods import standard_callbacks

    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use {' or '.join(PROTOCOLS)}")
    out_dir = Path(out_dir)
    state = load_weights(checkpoint)
    if not state.views:
        raise ValueError(
            f"{checkpoint}: its card has no train.views (how the network saw its training "
            "images), which fine-tuning keeps; re-export the package with this trainer"
        )
    recipe = finetune_recipe(recipe or get_recipe("ckplus-finetune"), state.views)
    whole = dataset[split]
    if protocol == "paper":
        if k != PAPER_FOLDS:
            raise ValueError(f"the paper protocol has {PAPER_FOLDS} folds, not k = {k}")
        folds = paper_folds(whole.targets, dataset.labels)
    else:
        if whole.groups is None:
            raise ValueError(f"{dataset.name} has no subject ids: subject folds are impossible")
        folds = subject_folds(whole.groups, k, seed)
    mix = {} if into is None else {"into": {"dataset": into.name, "repeat": repeat}}
    _check_plan(
        out_dir,
        {
            **mix,
            "protocol": protocol,
            "k": k,
            "seed": seed,
            "recipe": asdict(recipe),
            "teachers": list(teachers or []),
            "test": [f.tolist() for f in folds],
        },
    )

    results = []
    for i, test in enumerate(folds, 1):
        run = out_dir / f"fold-{i:02d}"
        fold_data = _fold_dataset(dataset, split, test, i, into, repeat)
        held_out = len(fold_data[fold_data.val])
        config = TrainConfig(
            model=str(checkpoint),
            dataset=fold_data.name,
            data=str(data),
            out=str(run),
            recipe=recipe,
            seed=seed,
            device=device,
            init=str(checkpoint),
            command=command,
            precision=precision,
            sync_bn=sync_bn,
        )
        if distributed.is_main():
            print(
                f"fold {i}/{len(folds)}: train {len(fold_data['train'])}, test {held_out}",
                file=sys.stderr,
                flush=True,
            )
        last = run / "last.pt"
        done = None
        if last.exists():
            stored = load_checkpoint(last)
            if stored.epoch + 1 >= stored.recipe.epochs:
                done = asdict(stored.history[-1])  # finished: not retrained
        if done is None:
            callbacks = standard_callbacks(teachers)
            run_result = train(config, callbacks, resume=last.exists(), dataset=fold_data)
            done = asdict(run_result.history[-1])
        results.append(
            FoldResult(
                fold=i,
                n=held_out,
                top1=done["val_top1"],
                macro_f1=done["val_macro_f1"],
                epochs=done["epoch"],
                run=str(run),
            )
        )

    top1 = np.array([r.top1 for r in results])
    f1 = np.array([r.macro_f1 for r in results])
    result = KFoldResult(
        protocol=protocol,
        description=PROTOCOLS[protocol],
        k=len(folds),
        seed=seed,
        checkpoint=str(checkpoint),
        folds=results,
        mean_top1=float(top1.mean()),
        std_top1=float(top1.std()),
        mean_macro_f1=float(f1.mean()),
        std_macro_f1=float(f1.std()),
        recipe=recipe,
    )
    if distributed.is_main():
        text = json.dumps(asdict(result), indent=2)
        atomic_write(out_dir / "kfold.json", lambda tmp: Path(tmp).write_text(text))
        print(format_table(result))
    return result


def format_table(result: KFoldResult) -> str:
    from trainer.evaluation.table import render

    pct = lambda v: f"{100 * v:.2f}"  # noqa: E731
    rows = [
        (str(r.fold), str(r.n), pct(r.top1), pct(r.macro_f1), str(r.epochs)) for r in result.folds
    ]
    rows.append(
        (
            "mean ± std",
            "",
            f"{pct(result.mean_top1)} ± {pct(result.std_top1)}",
            f"{pct(result.mean_macro_f1)} ± {pct(result.std_macro_f1)}",
            "",
        )
    )
    table = render(("fold", "n", "top-1 %", "macro-F1 %", "epochs"), rows, "lrrrr")
    return f"{table}\n\nprotocol {result.protocol}: {result.description}\n{result.note}"

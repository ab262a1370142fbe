"""`python -m trainer <verb>`: one command with verbs named like the functions they call."""

from __future__ import annotations

import argparse
import errno
import json
import logging
import shlex
import signal
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from fer_core.view import TTA
from fer_core.zoo import INT8_TOLERANCE
from trainer.engine.rundir import check_run_dir
from trainer.files import progress_bar, signals_handled
from trainer.flags import (
    int_at_least,
    key_value,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    thread_count,
)


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line naming the flag; the usage itself is one --help away."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Verb:
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


def _print_rows(rows: list, as_json: bool, table: Callable[[list], str], note: str) -> None:
    """Result dataclasses as a JSON list (for scripts) or as a table with a note (for people)."""
    if as_json:
        print(json.dumps([asdict(r) for r in rows], indent=2))
    else:
        print(f"{table(rows)}\n\n{note}")


def _set_threads(args: argparse.Namespace) -> None:
    """--threads N caps torch's CPU threads (0 keeps the library default)."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="models to describe (default: all registered)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _models(args: argparse.Namespace) -> int:
    from fer_core.models import list_models
    from trainer.measure.catalog import describe, format_table

    # each model is built and measured (a minute for all of them): the bar tells it is working
    rows = []
    for name in (bar := progress_bar(args.names or list_models(), desc="models", unit="model",
                                     file=sys.stderr)):  # fmt: skip
        bar.set_postfix_str(name)
        rows.append(describe(name))
    _print_rows(
        rows,
        args.json,
        format_table,
        "params: on the executed path in eval mode (no auxiliary head); "
        "MACs: convolutions and matrix products at the native input, batch 1",
    )
    return 0


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", help="run folders written by train (or their metrics.csv)")
    p.add_argument("--plot", metavar="PNG", help="write their curves, one line per variant")
    p.add_argument(
        "--no-group",
        action="store_true",
        help="one row per run (default: runs named NAME-s<seed> are one row, seeds folded in)",
    )


def _compare(args: argparse.Namespace) -> int:
    from trainer.evaluation.compare import format_table, group_runs, plot_curves

    groups = group_runs(args.runs, by_seed=not args.no_group)
    print(format_table(groups))
    print(
        "\nat the last epoch every run of the row reached: mean (range over seeds); "
        "best val: the best epoch of each run"
    )
    if args.plot:
        print(f"curves: {plot_curves(groups, args.plot)}")
    return 0


def _benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="models to time (default: all registered)")
    p.add_argument(
        "--package",
        action="append",
        metavar="NAME_OR_PATH",
        help="time a model package's fp32 and int8 ONNX files instead (repeatable)",
    )
    p.add_argument(
        "--threads", type=thread_count, default=1, help="CPU threads for torch and onnxruntime"
    )
    p.add_argument(
        "--seconds", type=float, default=3.0, help="time spent measuring each model in each backend"
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _benchmark(args: argparse.Namespace) -> int:
    from fer_core.models import list_models
    from trainer.evaluation import latency
    from trainer.measure import benchmark

    if args.package:
        names, measure, table = (
            args.package,
            latency.benchmark_package,
            benchmark.format_package_table,
        )
        note = (
            "one face as the app classifies it (the card's test-time views), each package "
            "file in onnxruntime (CPU provider)"
        )
    else:
        names, measure, table = (
            args.names or list_models(),
            benchmark.benchmark_model,
            benchmark.format_table,
        )
        note = "torch eager in inference mode, onnxruntime CPU provider, untrained weights"
    rows = []
    for name in (bar := progress_bar(names, desc="benchmark", unit="model", file=sys.stderr)):
        bar.set_postfix_str(name)
        rows.append(measure(name, threads=args.threads, seconds=args.seconds))
    _print_rows(rows, args.json, table, f"median of repeated runs after warm-up; {note}")
    return 0


def _throughput_args(p: argparse.ArgumentParser) -> None:
    from trainer.engine.recipes import RECIPES
    from trainer.measure.throughput import DEFAULT_MODELS

    p.add_argument("names", nargs="*", help=f"models to time (default: {' '.join(DEFAULT_MODELS)})")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument(
        "--seconds", type=float, default=10.0, help="time spent measuring each model on each path"
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument(
        "--threads", type=thread_count, default=0, help="torch CPU threads (0: torch's choice)"
    )
    p.add_argument(
        "--workers", type=non_negative_int, default=2, help="the baseline's DataLoader workers"
    )
    p.add_argument(
        "--recipe", choices=sorted(RECIPES), help="augmentation and loss (default: the family's)"
    )
    _precision_flag(p)
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also time a per-image DataLoader baseline (fp32) of each model",
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _throughput(args: argparse.Namespace) -> int:
    from trainer.measure.throughput import DEFAULT_MODELS, format_table, throughput

    names = args.names or list(DEFAULT_MODELS)
    rows = []
    for name in (bar := progress_bar(names, desc="throughput", unit="model", file=sys.stderr)):
        bar.set_postfix_str(name)
        rows.append(
            throughput(
                name,
                args.batch_size,
                args.seconds,
                args.device,
                args.threads,
                args.workers,
                args.recipe,
                args.precision,
                args.baseline,
            )
        )
    _print_rows(
        rows,
        args.json,
        format_table,
        "training images/s on 2048 synthetic grey 48×48 uint8 faces, after 2 warm-up steps, "
        "as `train` steps them: one uint8 tensor on the device, batch augmentation there, the "
        "precision shown; baseline (--baseline): per-image PIL torchvision transforms in a "
        "DataLoader, fp32; both: the same model, recipe augmentation and loss, one crop per "
        "image (the VGG recipe's ten-crop training off)",
    )
    return 0


# Recipe integers that must be at least 1; the others (sizes, patience, ramps) may be 0.
RECIPE_INTS = {"epochs": positive_int, "batch_size": positive_int}
# Recipe numbers are finite and ≥ 0 (`--lr inf` or `nan` trained nothing, silently); a learning
# rate is > 0.
RECIPE_FLOATS = {"lr": positive_float}


def _recipe_flags(p: argparse.ArgumentParser) -> None:
    """One flag per recipe field (`--lr`, `--batch-size`, `--flip/--no-flip`, `--zoom LO HI`);
    unset flags keep the recipe's value."""
    import typing

    from trainer.engine.recipes import CHOICES, Recipe

    group = p.add_argument_group("recipe overrides (default: the recipe's value)")
    for name, hint in typing.get_type_hints(Recipe).items():
        if name in ("name", "description"):
            continue
        flag = "--" + name.replace("_", "-")
        kind = typing.get_origin(hint) or hint
        if kind is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif kind is tuple:
            group.add_argument(
                flag, type=non_negative_float, nargs=2, metavar=("LO", "HI"), default=None
            )
        else:
            if kind is int:
                kind = RECIPE_INTS.get(name, non_negative_int)
            elif kind is float:
                kind = RECIPE_FLOATS.get(name, non_negative_float)
            choices = CHOICES.get(name)
            metavar = "{" + ",".join(choices) + "}" if choices else name.upper()
            group.add_argument(flag, type=kind, default=None, choices=choices, metavar=metavar)


def _data_flags(p: argparse.ArgumentParser) -> None:
    from trainer.data import READERS

    p.add_argument("--dataset", required=True, choices=sorted(READERS), help="dataset format")
    p.add_argument("--data", required=True, help="dataset file or folder")
    _skip_bad_flag(p)


def _skip_bad_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--skip-bad",
        action="store_true",
        help="skip and count malformed records instead of failing",
    )


def _read_dataset(args: argparse.Namespace):
    """The verb's dataset; what the reader left out is told on stderr in one line."""
    return _read(args.dataset, args.data, getattr(args, "skip_bad", False))


def _read_source(text: str, flag: str, skip_bad: bool = False):
    """The dataset a `DATASET=PATH` flag names (`trainer.data.mix.parse_source`)."""
    from trainer.data.mix import parse_source

    name, path = parse_source(text, flag)
    return _read(name, path, skip_bad, told=f"{flag} {name}: ")


def _read(name: str, path: str, skip_bad: bool, told: str = ""):
    from trainer.data import read_dataset

    dataset = read_dataset(name, path, skip_bad=skip_bad)
    if dataset.skipped.total:
        print(f"{told}{dataset.skipped.summary()}", file=sys.stderr)
    return dataset


def _train_args(p: argparse.ArgumentParser) -> None:
    from trainer.engine.recipes import RECIPES

    p.add_argument(
        "--model",
        help="registered model name, a genotype / structure-string file, or a checkpoint / "
        "package to take the architecture of (required unless --resume)",
    )
    _data_flags(p)
    p.add_argument(
        "--add-data",
        action="append",
        default=[],
        metavar="DATASET=PATH",
        help="add this dataset's faces to the training split (repeatable; classes matched by "
        "name, others left out; validation and test stay --dataset's), e.g. "
        "ckplus=../shared/data/ckplus",
    )
    p.add_argument(
        "--add-repeat",
        type=positive_int,
        default=1,
        help="times each --add-data dataset's faces are repeated in the training split",
    )
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics, curves)")
    p.add_argument(
        "--recipe",
        choices=sorted(RECIPES),
        help="hyperparameters (default: the paper recipe of the model's family)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last.pt (on any machine); with a larger "
        "--epochs, extend it. Other flags are refused: the run keeps its own",
    )
    p.add_argument(
        "--max-images",
        type=non_negative_int,
        default=0,
        metavar="N",
        help="train on a seeded subset of N training images (quick runs; 0: all)",
    )
    _teacher_flag(p)
    p.add_argument(
        "--watch-test",
        action="store_true",
        help="record the test split's top-1 (mirror view) after every epoch in test-watch.csv, "
        "never used to choose: the 'best test epoch' figure some papers report, for comparison",
    )
    p.add_argument(
        "--model-option",
        action="append",
        type=key_value,
        default=[],
        metavar="KEY=VALUE",
        help="a builder option of the model, recorded in the checkpoint (repeatable): "
        "layers=8, channels=16 (Auto-FERNet), lw_att=True (ZenNet), ...",
    )
    p.add_argument(
        "--init",
        metavar="CHECKPOINT",
        help="fine-tune: start from these weights, a checkpoint or a package exported with "
        "--torch-weights (output rows matched by label name)",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=thread_count,
        default=0,
        help="CPU threads for torch (0: torch's choice)",
    )
    _sync_bn_flag(p)
    _recipe_flags(p)


def _recipe_overrides(args: argparse.Namespace) -> dict:
    """The recipe flags the user set (see `_recipe_flags`)."""
    from dataclasses import fields

    from trainer.engine.recipes import Recipe

    values = {}
    for f in fields(Recipe):
        value = getattr(args, f.name, None)
        if value is not None and f.name not in ("name", "description"):
            values[f.name] = tuple(value) if isinstance(value, list) else value
    return values


def _recipe_from_args(args: argparse.Namespace, family: str):
    from trainer.engine.recipes import FAMILY_RECIPE, get_recipe

    return get_recipe(args.recipe or FAMILY_RECIPE[family]).override(**_recipe_overrides(args))


def _precision_flag(p: argparse.ArgumentParser) -> None:
    from trainer.engine.step import PRECISIONS

    p.add_argument(
        "--precision",
        default="auto",
        choices=PRECISIONS,
        help="auto: bf16 autocast where the hardware computes bf16 natively (CUDA, CPUs with "
        "AVX512-BF16 or AMX), else fp32; loss and optimiser step stay fp32",
    )


def _sync_bn_flag(p: argparse.ArgumentParser) -> None:
    from trainer.engine.distributed import SYNC_BELOW, SYNC_BN

    p.add_argument(
        "--sync-bn",
        default="auto",
        choices=SYNC_BN,
        help="under torchrun (several processes): BatchNorm statistics over the global batch "
        f"instead of each process's share; auto: when a process takes fewer than {SYNC_BELOW} "
        "images a step (the recipe's batch is the global batch, split over the processes)",
    )


def _teacher_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--teacher",
        nargs="+",
        metavar="MODEL",
        help="distil from these checkpoints or packages with torch weights (several: their "
        "average); temperature and weight: --kd-temperature, --kd-weight",
    )
    _precision_flag(p)


# what a resume may be told: where things are and how to run, never what to train
RESUME_FLAGS = {"out", "data", "dataset", "add_data", "add_repeat", "resume", "epochs", "device",
                "threads", "skip_bad", "precision", "command", "verb", "sync_bn"}  # fmt: skip


def _given_flags(argv: list[str], add_arguments: Callable[[argparse.ArgumentParser], None]):
    """The flags of `argv` the user wrote (defaults left out)."""
    probe = _Parser(add_help=False)
    add_arguments(probe)
    for action in probe._actions:  # required flags are checked by the real parser
        action.required, action.default = False, argparse.SUPPRESS
    return set(vars(probe.parse_known_args(argv)[0]))


def _train(args: argparse.Namespace) -> int:
    from fer_core.models import get_spec
    from trainer.data.mix import add_training
    from trainer.engine import checkpoint
    from trainer.engine.loop import TrainConfig, train
    from trainer.engine.networks import describe_architecture
    from trainer.methods import resumed_callbacks, standard_callbacks

    _set_threads(args)
    if args.resume:
        extra = sorted(_given_flags(args.argv[1:], _train_args) - RESUME_FLAGS)
        if extra:
            flags = ", ".join("--" + f.replace("_", "-") for f in extra)
            raise ValueError(f"{flags}: a resumed run keeps its own; only --epochs may change")
        prior = checkpoint.load(Path(args.out) / "last.pt")
        config = TrainConfig(
            model="", dataset=args.dataset, data=args.data, out=args.out, recipe=None,
            device=args.device, precision=args.precision, skip_bad=args.skip_bad,
            epochs=args.epochs, sync_bn=args.sync_bn,
        )  # fmt: skip
        callbacks = resumed_callbacks(prior.callbacks)
    else:
        if not args.model:
            raise ValueError("--model: required for a new run (or give --resume)")
        family = get_spec(describe_architecture(args.model, 7)["model"]).family
        config = TrainConfig(
            model=args.model,
            dataset=args.dataset,
            data=args.data,
            out=args.out,
            recipe=_recipe_from_args(args, family),
            seed=args.seed,
            device=args.device,
            precision=args.precision,
            skip_bad=args.skip_bad,
            init=args.init,
            command=args.command,
            model_options=dict(args.model_option),
            max_images=args.max_images,
            sync_bn=args.sync_bn,
        )
        callbacks = standard_callbacks(args.teacher, watch_test=args.watch_test)
    _check_run_dir(args)  # in seconds, not after the data
    dataset = _read_dataset(args)
    if args.add_repeat != 1 and not args.add_data:
        raise ValueError("--add-repeat: only with --add-data")
    for text in args.add_data:
        extra = _read_source(text, "--add-data", args.skip_bad)
        dataset = add_training(dataset, extra, args.add_repeat)
    result = train(config, callbacks, resume=args.resume, dataset=dataset)
    _print_best(result, f"checkpoints in {result.out}")
    return 0


def _check_run_dir(args: argparse.Namespace, resume: bool | None = None) -> None:
    """`check_run_dir` of --out, by the process that writes it (rank 0 under torchrun: the
    others never make the folder, which on another machine would be a stray one)."""
    from trainer.engine import distributed

    if distributed.is_main():
        check_run_dir(Path(args.out), resume=args.resume if resume is None else resume)


def _print_best(result, where: str) -> None:
    """A finished run in one line: its best validation epoch, and where to look."""
    from trainer.engine import distributed

    if not distributed.is_main():  # several processes: rank 0 tells
        return
    print(
        f"best validation top-1 {100 * result.best_val_top1:.2f}% at epoch {result.best_epoch}"
        f" of {result.epochs}; {where}"
    )


def _evaluate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "model", help="trainer checkpoint (.pt) or model package (folder, card.json or .onnx file)"
    )
    _data_flags(p)
    p.add_argument(
        "--split",
        help="split to score: train, val, test or the dataset's own name "
        "(PrivateTest, ...); default: the dataset's test split",
    )
    p.add_argument(
        "--tta",
        choices=TTA,
        help="test-time augmentation (default: what the model was validated with)",
    )
    p.add_argument("--int8", action="store_true", help="run the package's model.int8.onnx")
    p.add_argument(
        "--threads", type=thread_count, default=0, help="CPU threads (0: library default)"
    )
    p.add_argument("--out", help="folder for evaluation.json and confusion.png")
    p.add_argument("--json", action="store_true", help="print the evaluation as JSON")
    p.add_argument(
        "--record",
        action="store_true",
        help="a package only: write this evaluation into its card's metrics, as a direct "
        "transfer (refused for a dataset the model trained on)",
    )
    p.add_argument(
        "--personal",
        choices=("taught", "untaught"),
        help="per subject (a dataset with subject ids, such as ckplus): read the subject's faces "
        "with and without a profile taught from the subject's own images (fer_core.profile); "
        "taught: each class from the first image of its sequence, queries the rest (optimistic: "
        "on CK+ a query is a neighbouring frame of the teaching one); untaught: each query "
        "sequence with a profile of the subject's other sequences only (its class never taught)",
    )
    p.add_argument(
        "--live",
        action="store_true",
        help="a package only: also put each face through the live engine (detector, aligned "
        "crop) and compare with its stored crop. It checks the framing, not the resampling: "
        "stored faces are upscaled into the scene, so they hold no detail finer than the "
        "network's pixels (tests/test_resampling.py checks faces larger than the input)",
    )


def _evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluation.evaluate import (
        evaluate,
        load_predictor,
        software_warning,
        write_report,
    )

    _set_threads(args)
    if args.live:
        return _evaluate_live(args)
    predictor = load_predictor(args.model, "int8" if args.int8 else "fp32", threads=args.threads)
    dataset = _read_dataset(args)
    if args.personal:
        from trainer.evaluation.personal import personal_check

        check = personal_check(predictor, dataset, args.personal, split=args.split)
        print(json.dumps(asdict(check), indent=2, default=str) if args.json else check.report())
        return 0
    if args.record and predictor.backend != "onnxruntime":
        raise ValueError(f"--record: {args.model} is a checkpoint; it writes into package cards")
    result = evaluate(predictor, dataset, args.split, args.tta)
    print(json.dumps(asdict(result), indent=2) if args.json else result.report())
    warning = software_warning(result)
    if warning:
        print(warning, file=sys.stderr)
    if args.record:
        from trainer.export.package import record_transfer

        key = record_transfer(args.model, result)
        print(f"recorded as metrics[{key!r}] in {predictor.source}/card.json", file=sys.stderr)
    if args.out:
        files = write_report(result, args.out)
        print(f"wrote {', '.join(str(f) for f in files.values())}", file=sys.stderr)
    return 0


def _evaluate_live(args: argparse.Namespace) -> int:
    from trainer.evaluation.live import live_check

    if Path(args.model).suffix in (".pt", ".pth"):
        raise ValueError(
            f"--live: {args.model} is a checkpoint; the live engine runs model packages "
            "(python -m trainer export)"
        )
    for flag in ("tta", "out", "record"):
        if getattr(args, flag):
            raise ValueError(f"--live takes the package's own views and prints only; drop --{flag}")
    check = live_check(
        args.model,
        _read_dataset(args),
        args.split,
        "int8" if args.int8 else "fp32",
        args.threads or 1,
    )
    print(json.dumps(asdict(check), indent=2) if args.json else check.report())
    return 0


def _saliency_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="trainer checkpoint (.pt)")
    _data_flags(p)
    p.add_argument("--split", help="split to take images from (default: the test split)")
    p.add_argument(
        "--index",
        type=non_negative_int,
        nargs="+",
        default=list(range(8)),
        help="positions of the images in the split (default: the first 8)",
    )
    p.add_argument("--out", required=True, help="PNG file to write")


def _saliency(args: argparse.Namespace) -> int:
    import numpy as np

    from trainer.engine.views import as_batch_tensor
    from trainer.evaluation.saliency import saliency_figure

    dataset = _read_dataset(args)
    split = dataset[args.split or dataset.test or dataset.val]
    if max(args.index) >= len(split) or min(args.index) < 0:
        raise ValueError(f"--index must be within 0..{len(split) - 1} for this split")
    picked = split.subset(np.array(args.index))
    if not picked.in_memory:
        picked = picked.materialize(48, 1, progress=False)
    names = [w.rsplit("/", 1)[-1] for w in picked.where] if picked.where else None
    out = saliency_figure(
        args.checkpoint, as_batch_tensor(picked.images), picked.targets, args.out, names
    )
    print(f"wrote {out}")
    return 0


def _kfold_args(p: argparse.ArgumentParser) -> None:
    from trainer.data import READERS
    from trainer.engine.recipes import RECIPES
    from trainer.methods.kfold import PROTOCOLS

    p.add_argument(
        "checkpoint",
        help="checkpoint to fine-tune from (e.g. a FER2013 best.pt), or a package exported with "
        "--torch-weights",
    )
    p.add_argument("--data", required=True, help="dataset folder (CK+48)")
    p.add_argument(
        "--dataset",
        default="ckplus",
        choices=sorted(READERS),
        help="dataset format; it needs one split `all` with subject ids",
    )
    _skip_bad_flag(p)
    p.add_argument(
        "--k",
        type=int_at_least(2, "an integer ≥ 2"),
        default=10,
        help="number of folds (the paper protocol: 10)",
    )
    p.add_argument(
        "--protocol",
        default="subject",
        choices=sorted(PROTOCOLS),
        help="subject: subject-independent folds; paper: Auto-FERNet's CK+ folds "
        "(not subject-independent, for comparison only)",
    )
    p.add_argument("--out", required=True, help="folder of the fold runs and kfold.json")
    p.add_argument(
        "--into",
        metavar="DATASET=PATH",
        help="train each fold as part of this dataset (e.g. fer2013=../shared/data/fer2013): "
        "its labels, its training faces beside the other folds' faces",
    )
    p.add_argument(
        "--repeat",
        type=positive_int,
        default=1,
        help="with --into: times the other folds' faces are repeated in the mix (default 1)",
    )
    p.add_argument(
        "--recipe",
        default="ckplus-finetune",
        choices=sorted(RECIPES),
        help="fine-tuning hyperparameters; views: the checkpoint's",
    )
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=thread_count, default=0, help="CPU threads for torch (0: default)"
    )
    _teacher_flag(p)
    _sync_bn_flag(p)
    _recipe_flags(p)


def _kfold(args: argparse.Namespace) -> int:
    from trainer.engine.recipes import VIEW_FIELDS
    from trainer.methods.kfold import kfold

    _set_threads(args)
    given = ["--" + f.replace("_", "-") for f in VIEW_FIELDS if getattr(args, f) is not None]
    if given:
        raise ValueError(f"{', '.join(given)}: kfold keeps the views of the checkpoint's recipe")
    _check_run_dir(args, resume=True)  # its fold runs are checked as they start
    dataset = _read_dataset(args)
    into = None
    if args.into:
        into = _read_source(args.into, "--into", args.skip_bad)
    elif args.repeat != 1:
        raise ValueError("--repeat: only with --into (the dataset the folds join)")
    kfold(
        args.checkpoint,
        dataset,
        k=args.k,
        protocol=args.protocol,
        recipe=_recipe_from_args(args, family=""),
        out_dir=args.out,
        seed=args.seed,
        device=args.device,
        data=args.data,
        command=args.command,
        teachers=args.teacher,
        precision=args.precision,
        into=into,
        repeat=args.repeat,
        sync_bn=args.sync_bn,
    )
    return 0


def _export_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="trainer checkpoint (.pt), usually a run's best.pt")
    p.add_argument("--out", required=True, help="package folder, e.g. assets/models/NAME")
    p.add_argument("--name", help="package name (default: the folder's name)")
    _data_flags(p)
    p.add_argument("--no-int8", dest="int8", action="store_false", help="skip model.int8.onnx")
    _int8_tolerance_flag(p)
    _weights_flag(p)
    p.add_argument(
        "--torch-weights",
        action="store_true",
        help="also write model.pt for the app's torch backend (CPU or CUDA)",
    )
    p.add_argument(
        "--tta",
        choices=TTA,
        help="test-time augmentation the card prescribes (default: the training recipe's); "
        "choose it on the validation split",
    )
    p.add_argument(
        "--calibration-images",
        type=positive_int,
        default=512,
        help="training images that calibrate the int8 model",
    )
    p.add_argument(
        "--threads", type=thread_count, default=0, help="CPU threads (0: library default)"
    )
    p.add_argument(
        "--default",
        action="store_true",
        help="make this package the app's default (writes DEFAULT beside it)",
    )
    p.add_argument(
        "--transfer",
        action="append",
        default=[],
        metavar="DATASET=PATH",
        help="also score the package on this dataset's test (or only) split, which the model "
        "never trained on, into the card (repeatable), e.g. ckplus=../shared/data/ckplus",
    )
    p.add_argument(
        "--kfold",
        metavar="KFOLD_JSON",
        help="record this k-fold result (python -m trainer kfold's kfold.json) in the card",
    )
    p.add_argument(
        "--step",
        action="append",
        default=[],
        metavar="COMMAND",
        help="a command that led to the checkpoint (search, training, a resume elsewhere), "
        "repeatable, in order; the card's train.chain lists them and then this export",
    )


def _int8_tolerance_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--int8-tolerance",
        type=non_negative_float,
        default=INT8_TOLERANCE,
        metavar="POINTS",
        help="model.int8.onnx ships only if its validation top-1 is within this many points of "
        f"fp32's and it is faster a face (default {INT8_TOLERANCE}); otherwise the card records "
        "its figures and why it was left out",
    )


def _weights_flag(p: argparse.ArgumentParser) -> None:
    from trainer.export.half_width import WEIGHTS

    p.add_argument(
        "--weights",
        choices=WEIGHTS,
        default="fp16",
        help="how model.onnx stores its weights: fp16 (default) halves the file and computes in "
        "float32 as before, its agreement with the float32 graph measured into the card; fp32 "
        "keeps them full width (model.int8.onnx is quantized from the float32 graph either way)",
    )


def _print_package(result) -> None:
    """What an exported package scored, as its card records it."""
    print(f"wrote {result.path}: fp32 parity max |diff| {result.parity.max_abs_diff:.2e}")
    if result.float32_parity is not None:
        print(f"  weights stored as float16; the float32 graph's parity max |diff| "
              f"{result.float32_parity.max_abs_diff:.2e}")  # fmt: skip
        for agreement in result.card["extra"]["weights"]["agreement_with_float32"]:
            print(
                f"  top-1 as the float32 graph's on {100 * agreement['top1_agreement']:.2f}% of "
                f"{agreement['split']} ({agreement['n']} faces), max |Δprob| "
                f"{agreement['max_abs_prob_diff']:.1e}"
            )
    for key, m in result.card["metrics"].items():
        print(f"  {key:<24} top-1 {100 * m['top1']:.2f}%  macro-F1 {100 * m['macro_f1']:.2f}%")
    if result.int8_agreement is not None:
        int8 = result.card["extra"]["int8"]
        print(
            f"  int8 top-1 agreement with fp32: {100 * result.int8_agreement:.2f}%; {int8['why']}"
        )


def _export(args: argparse.Namespace) -> int:
    from pathlib import Path

    from fer_core.zoo import DEFAULT_FILE
    from trainer.export.package import check_package_folder, export_package

    _set_threads(args)
    check_package_folder(Path(args.out))  # before the slow part; write_package checks again
    dataset = _read_dataset(args)
    result = export_package(
        args.checkpoint,
        args.out,
        dataset,
        name=args.name,
        int8=args.int8,
        int8_tolerance=args.int8_tolerance,
        calibration_images=args.calibration_images,
        threads=args.threads,
        tta=args.tta,
        torch_weights=args.torch_weights,
        transfer=[_read_source(t, "--transfer", args.skip_bad) for t in args.transfer],
        kfold=args.kfold,
        chain=[*args.step, args.command] if args.step else [],
        weights=args.weights,
    )
    _print_package(result)
    if args.default:
        (Path(args.out).parent / DEFAULT_FILE).write_text(Path(args.out).name + "\n")
    return 0


def _store_fp16_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("package", help="model package to rewrite in place (name or folder)")
    _data_flags(p)  # the dataset whose validation and test splits the card's metrics are on
    p.add_argument(
        "--transfer",
        action="append",
        default=[],
        metavar="DATASET=PATH",
        help="a dataset of the card's other metrics (a direct transfer, ckplus/all), measured "
        "again for the file as shipped; each one the card has is required",
    )
    p.add_argument(
        "--threads", type=thread_count, default=0, help="CPU threads (0: library default)"
    )


def _store_fp16(args: argparse.Namespace) -> int:
    from trainer.export.repack import already_stored, store_package_fp16

    _set_threads(args)
    result = already_stored(args.package)  # told before the data is read
    result = result or store_package_fp16(
        args.package,
        _read_dataset(args),
        transfer=[_read_source(t, "--transfer", args.skip_bad) for t in args.transfer],
        threads=args.threads,
        command=args.command,
    )
    print(result.report())
    return 0


def _fes_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--votes", required=True, help="FER+ votes, fer2013new.csv")
    p.add_argument("--out", required=True, help="JSON file to write (a heat-map PNG goes beside)")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.03,
        help="list the class pairs above this similarity (relabel training's τ_f)",
    )


def _fes(args: argparse.Namespace) -> int:
    from trainer.methods.fes import fes_from_votes, write_fes

    fes = fes_from_votes(args.votes)
    files = write_fes(fes, args.out, args.threshold)
    width = max(len(n) for n in fes.labels)
    print(" " * width + "".join(f"{n[:8]:>9}" for n in fes.labels))
    for name, row in zip(fes.labels, fes.matrix, strict=True):
        print(f"{name:<{width}}" + "".join(f"{v:9.5f}" for v in row))
    pairs = ", ".join(f"{a}↔{b}" for a, b, _ in fes.pairs_above(args.threshold))
    print(f"pairs above {args.threshold}: {pairs}")
    if files["png"] is None:
        print(f"wrote {files['json']}; no heat map: --out is not a regular file", file=sys.stderr)
    else:
        print(f"wrote {files['json']}, {files['png']}", file=sys.stderr)
    return 0


def _framing_args(p: argparse.ArgumentParser) -> None:
    _data_flags(p)
    p.add_argument("--split", help="split to sample (default: the training split, or the only one)")
    p.add_argument(
        "--images", type=positive_int, default=600, help="faces to measure (default 600)"
    )
    p.add_argument("--seed", type=int, default=0, help="which faces are sampled")


def _framing(args: argparse.Namespace) -> int:
    import numpy as np

    from trainer.data.framing import measure_framing

    dataset = _read_dataset(args)
    split = dataset[args.split or dataset.train or next(iter(dataset.splits))]
    rng = np.random.default_rng(args.seed)
    picked = split.subset(rng.choice(len(split), min(args.images, len(split)), replace=False))
    images = [picked.decode(i, channels=1) for i in range(len(picked))]
    print(measure_framing(images, f"{dataset.name} {picked.name}").report())
    return 0


def _relabel_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("snapshot", help="checkpoint to start from (a run's snapshot-85.pt / -90.pt)")
    _data_flags(p)
    p.add_argument("--out", required=True, help="run directory (checkpoints, metrics, flips)")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--fes", help="FES JSON (python -m trainer fes): flips need FES > τ_f")
    which.add_argument(
        "--no-fes", action="store_true", help="softmax only: flip whenever p[k] − p[y] < τ_r"
    )
    which.add_argument(
        "--no-relabel",
        action="store_true",
        help="the control: the same fine-tune (recipe, seed, batches) with the rule off, to "
        "measure the relabel effect against",
    )
    p.add_argument("--relabel-threshold", type=float, default=0.2, help="τ_r (default 0.2)")
    p.add_argument("--fes-threshold", type=float, default=0.03, help="τ_f (default 0.03)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    _teacher_flag(p)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads", type=thread_count, default=0, help="CPU threads for torch (0: default)"
    )
    _sync_bn_flag(p)
    _recipe_flags(p)  # defaults: the snapshot's recipe, 100 epochs, its lr at its epoch


def _relabel(args: argparse.Namespace) -> int:
    from trainer.methods import standard_callbacks
    from trainer.methods.relabel import relabel

    _set_threads(args)
    _check_run_dir(args)  # before the data is read
    overrides = _recipe_overrides(args)
    epochs = overrides.pop("epochs", 100)
    lr = overrides.pop("lr", None)
    result = relabel(
        args.snapshot,
        args.dataset,
        args.data,
        args.out,
        None if args.no_fes else args.fes,
        relabel_threshold=args.relabel_threshold,
        fes_threshold=args.fes_threshold,
        epochs=epochs,
        lr=lr,
        overrides=overrides,
        seed=args.seed,
        device=args.device,
        resume=args.resume,
        skip_bad=args.skip_bad,
        command=args.command,
        precision=args.precision,
        callbacks=standard_callbacks(args.teacher, snapshots=False),
        dataset=_read_dataset(args),
        control=args.no_relabel,
        sync_bn=args.sync_bn,
    )
    flips = "" if args.no_relabel else f"; flips in {result.out / 'flips.csv'}"
    _print_best(result, f"checkpoints in {result.out}{flips}")
    return 0


def _ensemble_args(p: argparse.ArgumentParser) -> None:
    from trainer.methods.ensemble import COMBINE, SELECT

    p.add_argument(
        "members",
        nargs="+",
        help="checkpoints (.pt) or model packages; --out needs torch weights for each chosen "
        "member (a checkpoint, or a package exported with --torch-weights)",
    )
    _data_flags(p)
    p.add_argument("--combine", default="logits", choices=COMBINE, help="average logits or probs")
    p.add_argument(
        "--select",
        default="greedy",
        choices=SELECT,
        help="greedy: forward selection on the validation split; all: every member",
    )
    p.add_argument(
        "--max-members", type=non_negative_int, default=0, help="at most this many (0: no limit)"
    )
    p.add_argument(
        "--tta",
        choices=TTA,
        help="every member's test-time views, in scoring and in the package (default: each "
        "member's own, from its card or checkpoint); choose it on the validation split",
    )
    p.add_argument("--out", help="write the ensemble as one model package in this folder")
    p.add_argument("--name", help="package name (default: the folder's name)")
    p.add_argument("--int8", action="store_true", help="also write model.int8.onnx")
    _int8_tolerance_flag(p)
    _weights_flag(p)
    p.add_argument("--report", help="folder for ensemble.json and the confusion PNGs")
    p.add_argument(
        "--threads", type=thread_count, default=0, help="CPU threads (0: library default)"
    )


def _ensemble(args: argparse.Namespace) -> int:
    from pathlib import Path

    from trainer.evaluation.evaluate import write_report
    from trainer.export.package import check_package_folder
    from trainer.methods.ensemble import ensemble, export_ensemble

    _set_threads(args)
    if args.out:
        check_package_folder(Path(args.out))  # before the selection; write_package checks again
    dataset = _read_dataset(args)
    result = ensemble(
        args.members,
        dataset,
        mode=args.combine,
        select=args.select,
        max_members=args.max_members,
        tta=args.tta,
        threads=args.threads,
    )
    print(result.report())
    if args.report:
        for evaluation in (result.val, result.test):
            key = evaluation.split.split()[0]
            write_report(evaluation, Path(args.report) / key)
        text = json.dumps(asdict(result), indent=2, default=str)
        (Path(args.report) / "ensemble.json").write_text(text)
        print(f"wrote {args.report}/ensemble.json and val/, test/ reports", file=sys.stderr)
    if args.out:
        package = export_ensemble(
            result,
            args.members,
            args.out,
            dataset,
            name=args.name,
            int8=args.int8,
            int8_tolerance=args.int8_tolerance,
            threads=args.threads,
            command=args.command,
            weights=args.weights,
        )
        _print_package(package)
    return 0


def _search_args(p: argparse.ArgumentParser) -> None:
    from trainer.data import READERS
    from trainer.search import sgas, zen

    p.add_argument("--method", required=True, choices=("sgas", "zen"), help="search algorithm")
    p.add_argument("--out", required=True, help="search folder (state, log, result, pictures)")
    p.add_argument("--dataset", default="fer2013", choices=sorted(READERS), help="SGAS only")
    p.add_argument("--data", help="dataset file or folder (SGAS only)")
    p.add_argument("--resume", action="store_true", help="continue the search in --out")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    # unset (None) unless given, so that a resumed search keeps its own
    p.add_argument("--seed", type=int, default=None, help="random seed (0)")
    p.add_argument(
        "--threads", type=thread_count, default=None, help="CPU threads for torch (the default)"
    )
    sgas.add_arguments(p.add_argument_group("SGAS (--method sgas, as Auto-FERNet)"))
    zen.add_arguments(p.add_argument_group("Zen-NAS (--method zen)"))


def _search(args: argparse.Namespace) -> int:
    from trainer.search import sgas, zen

    _set_threads(args)
    if args.method == "zen":
        return zen.run(args)
    if not args.data:
        raise ValueError("--method sgas needs --data (the FER2013 csv or its folder)")
    return sgas.run(args, _read_dataset(args))


def _device_pass_args(p: argparse.ArgumentParser) -> None:
    from trainer.device_pass import add_arguments

    add_arguments(p)


def _device_pass(args: argparse.Namespace) -> int:
    from trainer.device_pass import main as device_pass

    return device_pass(args)


VERBS: dict[str, Verb] = {
    "export": Verb(
        "write a model package (ONNX fp32 + int8, card) for a checkpoint", _export_args, _export
    ),
    "store-fp16": Verb(
        "store a package's model.onnx weights as float16 in place (computed in float32), "
        "its card measured again",
        _store_fp16_args,
        _store_fp16,
    ),
    "evaluate": Verb(
        "score a checkpoint or a model package on a dataset split", _evaluate_args, _evaluate
    ),
    "saliency": Verb("write saliency maps of chosen images to a PNG", _saliency_args, _saliency),
    "train": Verb("train a model on a dataset with a recipe", _train_args, _train),
    "kfold": Verb(
        "fine-tune a checkpoint k-fold on CK+ (subject folds, or the paper's)", _kfold_args, _kfold
    ),
    "fes": Verb("FES matrix from FER+ votes (JSON + heat map)", _fes_args, _fes),
    "framing": Verb(
        "where a dataset keeps the eyes in its face squares (for live alignment)",
        _framing_args,
        _framing,
    ),
    "relabel": Verb(
        "fine-tune a snapshot with Auto-FERNet's relabel rule (FES or softmax)",
        _relabel_args,
        _relabel,
    ),
    "ensemble": Verb(
        "average checkpoints / packages, chosen on validation; export one package",
        _ensemble_args,
        _ensemble,
    ),
    "search": Verb(
        "architecture search: SGAS genotype or Zen-NAS structure string", _search_args, _search
    ),
    "compare": Verb(
        "training runs side by side: a table and their curves (seeds folded)",
        _compare_args,
        _compare,
    ),
    "models": Verb("list the registered models with parameters and MACs", _models_args, _models),
    "benchmark": Verb(
        "time single-image CPU inference in torch and onnxruntime", _benchmark_args, _benchmark
    ),
    "throughput": Verb(
        "training images/s: this project's path next to a per-image DataLoader baseline",
        _throughput_args,
        _throughput,
    ),
    "device-pass": Verb(
        "a pass on a lent GPU: slim, pack, unpack, run, bundle, restore, unslim",
        _device_pass_args,
        _device_pass,
    ),
}


NEEDS_TRAIN = "python -m trainer needs the train extra: pip install -e '.[train]'"


def _has_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def build_parser(has_torch: bool = True) -> argparse.ArgumentParser:
    """Without torch the parser still answers --help and VERB --help (people read what the
    extra is for before installing it); a verb whose flags come from modules that import torch
    then lists none, and `main` refuses every verb before it runs."""
    parser = _Parser(prog="python -m trainer", description=__doc__,
                     epilog=None if has_torch else NEEDS_TRAIN)  # fmt: skip
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, verb in VERBS.items():
        p = sub.add_parser(name, help=verb.help, description=verb.help, epilog=parser.epilog)
        if has_torch or _flags_without_torch(verb):
            verb.add_arguments(p)
    return parser


def _flags_without_torch(verb: Verb) -> bool:
    """Whether the verb's flags can be built without torch (tried on a parser thrown away, so
    a half-built verb never reaches the real one)."""
    try:
        verb.add_arguments(argparse.ArgumentParser())
    except ImportError:
        return False
    return True


def _check_device(args: argparse.Namespace) -> None:
    """Refuse --device cuda on a machine without one before any data is read."""
    import torch

    if getattr(args, "device", None) == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA device; use --device cpu or auto")


def _os_error(err: OSError) -> str:
    """The path and the system's words for what failed; our own OSErrors carry a message."""
    if err.strerror is None:
        return f"error: {err}"
    code = errno.errorcode.get(err.errno, err.errno)
    where = "" if err.filename is None else f"{err.filename}: "
    return f"error: {where}{err.strerror} ({code})"


# The failures a user can act on, each told in one line (the first class that matches wins);
# anything else is a bug in the trainer and keeps its traceback. DataError, PackageError and
# RunDirError are ValueErrors. Every file is written whole (a temp file, then a rename), so an
# interrupted verb leaves the files it finished and none half-written.
FAILURES: dict[type[BaseException], Callable[[BaseException], str]] = {
    KeyboardInterrupt: lambda err: (
        "interrupted: files written so far are complete; train, relabel and search continue "
        "with --resume"
    ),
    KeyError: lambda err: f"error: {err.args[0]}",
    OSError: _os_error,
    ValueError: lambda err: f"error: {err}",
}


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    has_torch = _has_torch()
    parser = build_parser(has_torch)
    try:  # without torch, flags the parser could not list are left to the refusal below
        args = parser.parse_args(argv) if has_torch else parser.parse_known_args(argv)[0]
    except SystemExit as stop:  # --help (0), or a usage error already told in one line (2)
        return stop.code
    if not has_torch:  # every verb trains, loads or measures torch networks
        print(NEEDS_TRAIN, file=sys.stderr)
        return 2
    args.command = shlex.join(["python", "-m", "trainer", *argv])  # recorded in checkpoints
    args.argv = argv
    # Our own messages at INFO; the exporters' chatter only when it is a warning.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("fer_core", "trainer"):
        logging.getLogger(name).setLevel(logging.INFO)
    from trainer.engine import distributed

    try:
        _check_device(args)
        # a SIGTERM (kill, timeout, a scheduler) or a SIGHUP (a closed terminal) ends a verb as
        # Ctrl-C does: cleanups run (an export's staging folder is removed), one line is said,
        # status 2
        with signals_handled((signal.SIGTERM, signal.SIGHUP), _raise_interrupt):
            _join_run(args)
            code = VERBS[args.verb].run(args)
        distributed.stop()
        return code
    except tuple(FAILURES) as err:
        tell = next(tell for kind, tell in FAILURES.items() if isinstance(err, kind))
        line = distributed.tell(tell(err), err)  # under torchrun: once for the whole run
    except RuntimeError as err:  # under torchrun: a collective lost another process
        if not (distributed.current().distributed and distributed.lost_contact(err)):
            raise
        line = distributed.tell(f"error: {err}", err)
    if line:
        print(line, file=sys.stderr)
    return 2


# the verbs that train, and so may run on several processes under torchrun
DISTRIBUTED_VERBS = ("train", "relabel", "kfold")


def _join_run(args: argparse.Namespace) -> None:
    """Under torchrun: join the run's other processes (`trainer.engine.distributed.start`)."""
    from trainer.engine import distributed
    from trainer.engine.loop import resolve_device

    if not distributed.launched():
        return
    world = distributed.start(resolve_device(getattr(args, "device", "auto")))
    if args.verb not in DISTRIBUTED_VERBS:
        raise ValueError(
            f"{args.verb}: runs on one process; under torchrun ({world.size} processes) only "
            f"{', '.join(DISTRIBUTED_VERBS)} run"
        )

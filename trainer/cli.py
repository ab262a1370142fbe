"""`python -m trainer <verb>`: one command with verbs named like the functions they call."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass


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


def _models_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="models to describe (default: all registered)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _models(args: argparse.Namespace) -> int:
    from trainer.catalog import catalog, format_table

    _print_rows(
        catalog(args.names or None),
        args.json,
        format_table,
        "params: on the executed path in eval mode (no auxiliary head); "
        "MACs: convolutions and matrix products at the native input, batch 1",
    )
    return 0


def _benchmark_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("names", nargs="*", help="models to time (default: all registered)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch and onnxruntime")
    p.add_argument(
        "--seconds", type=float, default=3.0, help="time spent measuring each model in each backend"
    )
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")


def _benchmark(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from fer_core.models import list_models
    from trainer.benchmark import benchmark_model, format_table

    names = args.names or list_models()
    rows = []
    for name in (bar := tqdm(names, desc="benchmark", unit="model", file=sys.stderr)):
        bar.set_postfix_str(name)
        rows.append(benchmark_model(name, threads=args.threads, seconds=args.seconds))
    _print_rows(
        rows,
        args.json,
        format_table,
        "single image (batch 1), median of repeated runs after warm-up; "
        "torch eager in inference mode, onnxruntime CPU provider",
    )
    return 0


VERBS: dict[str, Verb] = {
    "models": Verb("list the registered models with parameters and MACs", _models_args, _models),
    "benchmark": Verb(
        "time single-image CPU inference in torch and onnxruntime", _benchmark_args, _benchmark
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__)
    sub = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for name, verb in VERBS.items():
        verb.add_arguments(sub.add_parser(name, help=verb.help, description=verb.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Our own messages at INFO; the exporters' chatter only when it is a warning.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    for name in ("fer_core", "trainer"):
        logging.getLogger(name).setLevel(logging.INFO)
    try:
        import torch  # noqa: F401
    except ImportError:
        print("python -m trainer needs the train extra: pip install -e '.[train]'", file=sys.stderr)
        return 2
    try:
        return VERBS[args.verb].run(args)
    except (KeyError, ValueError, FileNotFoundError) as err:
        print(f"error: {err.args[0] if isinstance(err, KeyError) else err}", file=sys.stderr)
        return 2

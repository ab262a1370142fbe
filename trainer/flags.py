"""Argument types shared by the command line and the searches' flags: argparse names the flag
in the one-line error it prints."""

from __future__ import annotations

import argparse
import ast
import math
from collections.abc import Callable
from typing import Any

from fer_core.zoo import MAX_THREADS, THREADS_EXPECTED


def at_least(kind: type, low: float, expected: str, high: float = math.inf) -> Callable[[str], Any]:
    """An argparse type for `kind` numbers from `low` to `high` (NaN and infinity are not);
    argparse names the flag in its message."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high or not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


def int_at_least(low: int, expected: str) -> Callable[[str], int]:
    return at_least(int, low, expected)


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "an integer ≥ 0")
non_negative_float = at_least(float, 0.0, "a number ≥ 0")
positive_float = at_least(float, math.ulp(0.0), "a finite number > 0")
# torch and onnxruntime start every thread asked for: 100000 hung the machine
thread_count = at_least(int, 0, THREADS_EXPECTED, MAX_THREADS)


def key_value(text: str) -> tuple[str, Any]:
    """A builder option `KEY=VALUE` (`--model-option`); numbers and booleans become such."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. layers=8, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value

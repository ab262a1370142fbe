"""Argument types shared by the command line and the searches' flags: argparse names the flag
in the one-line error it prints."""

from __future__ import annotations

import argparse
import ast
from collections.abc import Callable
from typing import Any


def int_at_least(low: int, expected: str) -> Callable[[str], int]:
    """An argparse type for integers ≥ `low`; argparse names the flag in its message."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1, "a positive integer")
non_negative_int = int_at_least(0, "an integer ≥ 0")


def key_value(text: str) -> tuple[str, Any]:
    """A builder option `KEY=VALUE` (`--model-option`); numbers and booleans become such."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, e.g. layers=8, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value

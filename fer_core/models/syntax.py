"""Errors for architecture descriptions (genotypes, structure strings) that point at the token."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class ArchitectureSyntaxError(ValueError):
    """A malformed architecture description; the message quotes the text and marks the token."""

    def __init__(self, what: str, text: str, position: int, message: str, length: int = 1):
        self.what = what
        self.text = text
        self.position = position
        self.detail = message
        self.length = length
        excerpt, offset = _window(text, position)
        marker = " " * offset + "^" * max(1, min(length, len(excerpt) - offset))
        super().__init__(
            f"{what}: {message} (at character {position + 1})\n  {excerpt}\n  {marker}"
        )


def _window(text: str, position: int, width: int = 100) -> tuple[str, int]:
    """A one-line excerpt of `text` around `position` and the position inside it."""
    start = max(0, position - width // 2)
    excerpt = text[start : start + width].replace("\n", " ")
    prefix = "…" if start > 0 else ""
    return prefix + excerpt, position - start + len(prefix)


def parse_file(path: str | Path, parse: Callable[[str], T], what: str) -> T:
    """Parse a description file; a syntax error names the file."""
    path = Path(path)
    text = path.read_text()
    try:
        return parse(text)
    except ArchitectureSyntaxError as err:
        raise ArchitectureSyntaxError(
            f"{what} file {path}", err.text, err.position, err.detail, err.length
        ) from None

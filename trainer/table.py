"""Plain-text tables for the verbs that print results for people."""

from __future__ import annotations


def render(header: tuple[str, ...], rows: list[tuple[str, ...]], left: int = 1) -> str:
    """Aligned columns under a header and a rule; the first `left` columns are left-aligned
    (names), the rest right-aligned (numbers), except a last column named 'description'."""
    widths = [max(len(cell) for cell in col) for col in zip(header, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(w) if i < left or header[i] == "description" else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def size(channels: int, input_size: list[int]) -> str:
    return "×".join(map(str, (channels, *input_size)))

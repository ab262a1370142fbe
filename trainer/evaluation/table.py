"""Plain-text tables for the verbs that print results for people."""

from __future__ import annotations


def render(header: tuple[str, ...], rows: list[tuple[str, ...]], align: str) -> str:
    """Aligned columns under a header and a rule; `align` has one letter per column,
    'l' for text (left-aligned) and 'r' for numbers (right-aligned)."""
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align needs one of 'l'/'r' per column, got {align!r}")
    widths = [max(len(cell) for cell in col) for col in zip(header, *rows, strict=True)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            cell.ljust(w) if a == "l" else cell.rjust(w)
            for cell, w, a in zip(cells, widths, align, strict=True)
        ).rstrip()

    return "\n".join([line(header), line(tuple("-" * w for w in widths)), *map(line, rows)])


def size(channels: int, input_size: list[int]) -> str:
    return "×".join(map(str, (channels, *input_size)))

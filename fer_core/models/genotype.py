"""Auto-FERNet / DARTS cell genotypes as data: parse, validate and print them (no torch needed).

Two spellings are accepted, so that a genotype printed by a DARTS-style search or written by
hand builds without code changes:

    Genotype(normal=[('sep_conv_3x3', 0), ('conv_3x3', 1), ...], normal_concat=range(2, 6),
             reduce=[...], reduce_concat=range(2, 6))
    {"normal": [["sep_conv_3x3", 0], ...], "normal_concat": [2, 3, 4, 5], "reduce": [...]}

Each cell lists two (operation, input) edges per intermediate node; input 0 is c_{k-2}, 1 is
c_{k-1}, and 2, 3, … are the earlier nodes of the same cell.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from fer_core.models.syntax import ArchitectureSyntaxError, parse_file

# The 8 DARTS operations plus Auto-FERNet's ghost, conv_1x1 and conv_3x3 (its search space).
PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
    "ghost",
    "conv_1x1",
    "conv_3x3",
)

Edge = tuple[str, int]


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Edge, ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[Edge, ...]
    reduce_concat: tuple[int, ...]

    @classmethod
    def parse(cls, text: str) -> Genotype:
        return _Parser(text).genotype()

    @classmethod
    def from_file(cls, path: str | Path) -> Genotype:
        return parse_file(path, cls.parse, "genotype")

    def to_text(self) -> str:
        """The DARTS spelling, which `parse` reads back to an equal genotype."""

        def edges(cell: tuple[Edge, ...]) -> str:
            return "[" + ", ".join(f"({op!r}, {i})" for op, i in cell) + "]"

        return (
            f"Genotype(normal={edges(self.normal)}, normal_concat={list(self.normal_concat)}, "
            f"reduce={edges(self.reduce)}, reduce_concat={list(self.reduce_concat)})"
        )


# Published Auto-FERNet cell (its genotypes.py, names `FER2013_search_space` = `Auto_FERNet`).
AUTO_FERNET = Genotype(
    normal=(
        ("sep_conv_3x3", 0), ("conv_3x3", 1),
        ("dil_conv_5x5", 0), ("conv_1x1", 2),
        ("ghost", 2), ("dil_conv_5x5", 3),
        ("skip_connect", 0), ("conv_1x1", 1),
    ),
    normal_concat=(2, 3, 4, 5),
    reduce=(
        ("max_pool_3x3", 0), ("max_pool_3x3", 1),
        ("max_pool_3x3", 0), ("dil_conv_5x5", 2),
        ("avg_pool_3x3", 1), ("skip_connect", 2),
        ("avg_pool_3x3", 0), ("sep_conv_3x3", 2),
    ),
    reduce_concat=(2, 3, 4, 5),
)  # fmt: skip


class _Parser:
    """Walks the Python/JSON literal syntax tree; never evaluates the text."""

    FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")

    def __init__(self, text: str):
        self.text = text
        self.line_starts = [0]
        for line in text.splitlines(keepends=True):
            self.line_starts.append(self.line_starts[-1] + len(line))

    def fail(self, node: ast.AST | None, message: str) -> ArchitectureSyntaxError:
        if node is None:
            return ArchitectureSyntaxError("genotype", self.text, 0, message)
        start = self.line_starts[node.lineno - 1] + node.col_offset
        end = (
            self.line_starts[node.end_lineno - 1] + node.end_col_offset
            if node.end_lineno is not None and node.end_col_offset is not None
            else start + 1
        )
        return ArchitectureSyntaxError("genotype", self.text, start, message, end - start)

    def genotype(self) -> Genotype:
        try:
            tree = ast.parse(self.text, mode="eval").body
        except SyntaxError as err:
            line = (err.lineno or 1) - 1
            pos = self.line_starts[min(line, len(self.line_starts) - 1)] + max(
                0, (err.offset or 1) - 1
            )
            raise ArchitectureSyntaxError(
                "genotype", self.text, pos, f"not parseable: {err.msg}"
            ) from None
        fields = self._fields(tree)
        for name in ("normal", "reduce"):
            if name not in fields:
                raise self.fail(tree, f"missing the '{name}' cell")
        normal = self._edges(fields["normal"], "normal")
        reduce = self._edges(fields["reduce"], "reduce")
        return Genotype(
            normal=normal,
            normal_concat=self._concat(fields.get("normal_concat"), len(normal) // 2),
            reduce=reduce,
            reduce_concat=self._concat(fields.get("reduce_concat"), len(reduce) // 2),
        )

    def _fields(self, tree: ast.expr) -> dict[str, ast.expr]:
        if isinstance(tree, ast.Call):
            if not (isinstance(tree.func, ast.Name) and tree.func.id == "Genotype"):
                raise self.fail(tree.func, "expected Genotype(...) or a {...} mapping")
            if tree.args:
                raise self.fail(tree.args[0], "use keyword fields (normal=..., reduce=...)")
            pairs = [(kw.arg, kw.value, kw) for kw in tree.keywords]
        elif isinstance(tree, ast.Dict):
            pairs = []
            for key, value in zip(tree.keys, tree.values, strict=True):
                if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
                    raise self.fail(key or value, "field names must be strings")
                pairs.append((key.value, value, key))
        else:
            raise self.fail(tree, "expected Genotype(...) or a {...} mapping")
        fields: dict[str, ast.expr] = {}
        for name, value, where in pairs:
            if name not in self.FIELDS:
                raise self.fail(where, f"unknown field {name!r}; expected one of {self.FIELDS}")
            fields[name] = value
        return fields

    def _edges(self, node: ast.expr, cell: str) -> tuple[Edge, ...]:
        if not isinstance(node, ast.List | ast.Tuple):
            raise self.fail(node, f"the {cell} cell must be a list of (operation, input) pairs")
        if not node.elts or len(node.elts) % 2:
            raise self.fail(
                node, f"the {cell} cell needs two edges per node, got {len(node.elts)} edges"
            )
        edges = []
        for k, item in enumerate(node.elts):
            step = k // 2
            if not (isinstance(item, ast.List | ast.Tuple) and len(item.elts) == 2):
                raise self.fail(item, "each edge must be a pair (operation, input)")
            op_node, in_node = item.elts
            if not (isinstance(op_node, ast.Constant) and isinstance(op_node.value, str)):
                raise self.fail(op_node, "the operation must be a quoted name")
            if op_node.value not in PRIMITIVES or op_node.value == "none":
                raise self.fail(
                    op_node,
                    f"unknown operation {op_node.value!r} in the {cell} cell; expected one of "
                    + ", ".join(p for p in PRIMITIVES if p != "none"),
                )
            if not (isinstance(in_node, ast.Constant) and type(in_node.value) is int):
                raise self.fail(in_node, "the input must be an integer state index")
            if not 0 <= in_node.value < 2 + step:
                raise self.fail(
                    in_node,
                    f"node {step} of the {cell} cell can only read states 0..{1 + step} "
                    f"(the two cell inputs and earlier nodes), got {in_node.value}",
                )
            edges.append((op_node.value, in_node.value))
        return tuple(edges)

    def _concat(self, node: ast.expr | None, steps: int) -> tuple[int, ...]:
        if node is None:
            return tuple(range(2, 2 + steps))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "range"
            and all(isinstance(a, ast.Constant) and type(a.value) is int for a in node.args)
            and 1 <= len(node.args) <= 3
        ):
            values = list(range(*[a.value for a in node.args]))  # type: ignore[union-attr]
        elif isinstance(node, ast.List | ast.Tuple) and all(
            isinstance(e, ast.Constant) and type(e.value) is int for e in node.elts
        ):
            values = [e.value for e in node.elts]  # type: ignore[union-attr]
        else:
            raise self.fail(node, "concat must be range(a, b) or a list of state indices")
        if not values or any(not 2 <= v < 2 + steps for v in values):
            raise self.fail(node, f"concat indices must lie in 2..{1 + steps} (the cell's nodes)")
        return tuple(values)

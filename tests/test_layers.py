"""The architecture, enforced: `fer_core` never imports Qt or the trainer, `app` never imports
the trainer, the trainer's subpackages depend only on the layers listed before them, and no
module imports one that imports it back (imports inside functions count; `TYPE_CHECKING`-only
imports do not)."""

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

# the trainer's layers, lowest first: each may import its own and earlier layers only
TRAINER_LAYERS = ("files", "flags", "provenance", "data", "engine", "evaluation", "export",
                  "methods", "search", "measure", "device_pass", "cli", "__main__")  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module `path` imports, wherever in the file, except under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text())
    skipped = {
        id(n)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING"
        for n in ast.walk(node)
    }
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def top(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("fer_core", ("PySide6", "pyqtgraph", "trainer", "app")), ("app", ("trainer",))],
)
def test_packages_keep_their_side(package, forbidden):
    wrong = [
        f"{module_name(p)} imports {name}"
        for p in sources(package)
        for name in imports(p)
        if any(top(name, f) for f in forbidden)
    ]
    assert not wrong, wrong


def layer(module: str) -> int:
    return TRAINER_LAYERS.index(module.split(".")[1])


def test_trainer_layers_point_down():
    upward = [
        f"{module_name(p)} imports {name}"
        for p in sources("trainer")
        for name in imports(p)
        if top(name, "trainer") and name != "trainer" and layer(name) > layer(module_name(p))
    ]
    assert not upward, upward


def test_no_import_cycles():
    modules = {module_name(p): p for p in [*sources("trainer"), *sources("fer_core")]}
    graph = {
        m: {n for n in imports(p) if n in modules and n != m and not m.startswith(n + ".")}
        for m, p in modules.items()
    }
    cycles, state = [], {}

    def visit(m: str, path: list[str]) -> None:
        state[m] = "open"
        for n in sorted(graph[m]):
            if state.get(n) == "open":
                cycles.append(" → ".join([*path[path.index(n) :], n]))
            elif n not in state:
                visit(n, [*path, n])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles

"""The architecture, enforced by import-linter's contracts in pyproject.toml
(`[tool.importlinter]`): `fer_core` never imports Qt, the app or the trainer; the headless
commands and the launch checks never import Qt; `app` never imports the trainer; the
trainer's subpackages import only their own layer and those below it; no package's modules
import each other in a cycle. Imports inside functions count; `TYPE_CHECKING`-only imports do
not."""

import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_the_import_contracts_hold():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "lint-imports is missing: pip install -e '.[test]'"
    done = subprocess.run([lint, "--no-cache", "pyproject.toml"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_headless_paths_load_no_qt():
    """What the contracts cannot see: imports by name at run time (`import_module`)."""
    code = ("import sys, app.__main__, app.launch, app.analyze, app.benchmark, app.cameras; "
            "from app.verbs import VERBS; from importlib import import_module; "
            "[import_module(module) for module, _ in VERBS.values()]; "
            "qt = ('PySide6', 'pyqtgraph'); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in qt))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"

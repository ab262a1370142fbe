"""The README is a guide: its Python example runs as printed, it cites nothing that is not
in the repository, and the research notes live in trainer/README.md."""

import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT

README = (ROOT / "README.md").read_text()


@pytest.mark.slow
def test_the_python_example_runs(tmp_path):
    (example,) = re.findall(r"```python\n(.*?)```", README, re.S)
    done = subprocess.run([sys.executable, "-c", example], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={"PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    *_, last = done.stdout.strip().splitlines()
    assert last == "neutral Eileen"  # her smile taught as her neutral face reads neutral
    assert (tmp_path / "eileen.profile.json").is_file()


def test_no_reference_to_a_file_outside_the_repository():
    """The design notes stay outside the repository: the docs, docstrings, help texts and
    recipe descriptions (which runs record) name the papers instead."""
    cited = ("REF" + "ERENCE", "\u00a7")  # split, so that this file passes its own check
    files = [ROOT / "README.md", *(ROOT / "trainer").glob("*.md")]
    for package in ("app", "fer_core", "trainer", "tests"):
        files += (f for f in (ROOT / package).rglob("*.py") if "runs" not in f.parts)
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not any(c in line for c in cited), f"{path.relative_to(ROOT)}:{number}: {line}"


def test_the_readme_is_short_and_the_research_notes_are_in_the_trainers():
    assert len(README.splitlines()) < 250
    notes = (ROOT / "trainer" / "README.md").read_text()
    for paper in ("Auto-FERNet", "SGAS", "Zen-NAS", "POSTER V2", "Khaireddin"):
        assert paper in notes

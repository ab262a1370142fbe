import json
import subprocess
import sys

import pytest

from trainer.cli import NEEDS_TRAIN, main


@pytest.mark.slow
def test_models_json_lists_every_model_with_its_size():
    out = subprocess.run(
        [sys.executable, "-m", "trainer", "models", "--json"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"autofernet", "autofernet-l20", "zennet-m-sa", "zennet-r-sa", "poster-v2",
            "poster-v2-8", "vgg-fer"} <= set(rows)  # fmt: skip
    for row in rows.values():
        assert {"name", "params", "macs", "input_size", "channels"} <= set(row)
    assert rows["autofernet"]["params"] == 2_164_831
    assert rows["autofernet"]["input_size"] == [48, 48] and rows["autofernet"]["channels"] == 1
    assert rows["poster-v2"]["params"] == 43_753_941
    assert rows["zennet-r-sa"]["input_size"] == [224, 224]
    assert rows["vgg-fer"]["macs"] > 3e8


@pytest.mark.slow
def test_models_table_and_unknown_name(capsys):
    assert main(["models", "vgg-fer"]) == 0
    table = capsys.readouterr().out
    assert "vgg-fer" in table and "29.891M" in table and "1×40×40" in table
    assert main(["models", "no-such-model"]) == 2
    assert "unknown model 'no-such-model'" in capsys.readouterr().err


def test_models_says_it_is_working_before_the_first_model_is_measured(capsys, monkeypatch):
    """`models` measured every network (a minute) before printing anything."""
    from trainer.measure import catalog

    said_before = {}

    def describe(name):
        said_before[name] = capsys.readouterr().err
        return catalog.ModelRow(name, "vgg", 1, 2, [40, 40], 1, 7, "fake")

    monkeypatch.setattr(catalog, "describe", describe)
    assert main(["models", "vgg-fer", "autofernet", "--json"]) == 0
    assert "models" in said_before["vgg-fer"] and "0/2" in said_before["vgg-fer"]
    assert "autofernet" in said_before["autofernet"]  # the bar names the one being measured
    rows = json.loads(capsys.readouterr().out)  # stdout stays one JSON list
    assert [r["name"] for r in rows] == ["vgg-fer", "autofernet"]


@pytest.mark.slow
def test_benchmark_table(capsys):
    assert main(["benchmark", "vgg-fer", "--seconds", "0.1"]) == 0
    header, rule, row = capsys.readouterr().out.splitlines()[:3]
    columns = " ".join(header.split())
    assert columns == "model input C×H×W threads torch ms p90 onnxrt ms p90 speed-up"
    assert set(rule.replace(" ", "")) == {"-"}
    assert row.split()[:3] == ["vgg-fer", "1×40×40", "1"]


@pytest.mark.slow
def test_benchmark_prints_both_backends(capsys):
    assert main(["benchmark", "zennet-r-sa", "--seconds", "0.2", "--json"]) == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["name"] == "zennet-r-sa" and row["threads"] == 1
    assert row["torch"]["median_ms"] > 0 and row["onnxruntime"]["median_ms"] > 0
    assert row["torch"]["runs"] >= 5


def test_help_works_without_torch_and_verbs_are_refused_in_one_line():
    """`fer-trainer --help` was refused without the train extra: people could not read what
    it is for before installing it."""
    code = (
        "import contextlib, io, json, sys; sys.modules['torch'] = None\n"  # torch imports fail
        "from trainer.cli import main\n"
        "said = []\n"
        "for argv in (['--help'], ['train', '--help'], ['models', '--help'],\n"
        "             ['train', '--data', 'x'], ['models']):\n"
        "    out, err = io.StringIO(), io.StringIO()\n"
        "    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "        said.append([main(argv), out.getvalue(), err.getvalue()])\n"
        "print(json.dumps(said))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    top, train, models, train_run, models_run = json.loads(run.stdout)
    assert top[0] == 0 and "VERB" in top[1] and "train" in top[1] and NEEDS_TRAIN in top[1]
    assert train[0] == 0 and "usage: python -m trainer train" in train[1]
    assert models[0] == 0 and "--json" in models[1]  # flags that need no torch are listed
    for refused in (train_run, models_run):
        assert refused == [2, "", NEEDS_TRAIN + "\n"]

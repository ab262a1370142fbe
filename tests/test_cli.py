import json
import subprocess
import sys

import pytest

from trainer.cli import main


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

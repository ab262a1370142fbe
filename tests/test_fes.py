"""The FES matrix (Auto-FERNet): the formula on hand-made votes, the FER2013 class order by
name, the JSON and picture, and the published values on the real FER+ votes."""

import json

import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from trainer.cli import main
from trainer.data.core import DataError
from trainer.methods.fes import FES, compute_fes, fes_from_votes, read_votes

HEADER = (
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF"
)
FERPLUS_VOTES = SHARED_DATA / "fer2013" / "fer2013new.csv"

# Auto-FERNet's matrix, upper triangle in FER2013 order (angry, disgust, fear, happy, sad, surprise,
# neutral), recomputed from the shipped votes.
PUBLISHED = {
    ("angry", "disgust"): 0.02719, ("angry", "fear"): 0.02188, ("angry", "happy"): 0.02003,
    ("angry", "sad"): 0.04878, ("angry", "surprise"): 0.03223, ("angry", "neutral"): 0.05838,
    ("disgust", "fear"): 0.00952, ("disgust", "happy"): 0.01147, ("disgust", "sad"): 0.02775,
    ("disgust", "surprise"): 0.01382, ("disgust", "neutral"): 0.03206,
    ("fear", "happy"): 0.01525, ("fear", "sad"): 0.02792, ("fear", "surprise"): 0.04620,
    ("fear", "neutral"): 0.03384, ("happy", "sad"): 0.02575, ("happy", "surprise"): 0.03453,
    ("happy", "neutral"): 0.05580, ("sad", "surprise"): 0.03472, ("sad", "neutral"): 0.13839,
    ("surprise", "neutral"): 0.05298,
}  # fmt: skip


def write_votes(path, rows):
    """FER+ rows (neutral, happiness, surprise, sadness, anger, disgust, fear, contempt,
    unknown, NF) in the real fer2013new.csv layout."""
    lines = [HEADER] + [
        f"Training,fer{i:07d}.png," + ",".join(str(v) for v in row) for i, row in enumerate(rows)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_formula_on_hand_made_votes(tmp_path):
    votes = write_votes(
        tmp_path / "fer2013new.csv",
        [
            # neu hap sur sad ang dis fea con unk NF
            [6, 0, 0, 4, 0, 0, 0, 0, 0, 0],  # neutral 6, sad 4: sad~neutral += 4/6
            [0, 0, 5, 0, 0, 0, 5, 0, 0, 0],  # surprise 5, fear 5: fear~surprise += 1
            [2, 8, 0, 0, 0, 0, 0, 0, 0, 0],  # happy 8, neutral 2: happy~neutral += 2/8
            [0, 0, 0, 0, 0, 0, 0, 10, 0, 0],  # contempt only: no FER2013 pair
        ],
    )
    fes = fes_from_votes(votes)
    assert fes.labels == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert fes.images == 4
    assert fes.value("sad", "neutral") == pytest.approx((4 / 6) / 4)
    assert fes.value("neutral", "sad") == fes.value("sad", "neutral")
    assert fes.value("fear", "surprise") == pytest.approx(1 / 4)
    assert fes.value("happy", "neutral") == pytest.approx((2 / 8) / 4)
    assert fes.value("angry", "disgust") == 0
    assert np.allclose(np.diag(fes.matrix), 1) and np.allclose(fes.matrix, fes.matrix.T)


def test_matrix_follows_model_label_order_by_name():
    fes = compute_fes(np.array([[3, 1, 0], [0, 2, 2]]), ("sad", "neutral", "fear"))
    reordered = fes.in_order(["neutral", "contempt", "sad"])
    assert reordered[0, 2] == reordered[2, 0] == pytest.approx(fes.value("sad", "neutral"))
    assert reordered[1].tolist() == [0, 1, 0]  # a class FES lacks is similar to nothing


def test_cli_writes_json_and_picture_and_reads_back(tmp_path, capsys):
    votes = write_votes(tmp_path / "votes.csv", [[5, 0, 0, 5, 0, 0, 0, 0, 0, 0]] * 3)
    assert main(["fes", "--votes", str(votes), "--out", str(tmp_path / "FES.json")]) == 0
    assert "sad↔neutral" in capsys.readouterr().out
    data = json.loads((tmp_path / "FES.json").read_text())
    assert data["labels"][0] == "angry" and len(data["matrix"]) == 7
    assert (tmp_path / "FES.png").read_bytes()[:4] == b"\x89PNG"
    assert FES.load(tmp_path / "FES.json").value("sad", "neutral") == pytest.approx(1.0)


def test_bad_votes_name_the_line(tmp_path):
    votes = write_votes(tmp_path / "v.csv", [[1, 0, 0, 0, 0, 0, 0, 0, 0, 0]])
    votes.write_text(votes.read_text() + "Training,fer9.png,1,x,0,0,0,0,0,0,0,0\n")
    with pytest.raises(DataError, match=r"v\.csv:3: column 'happiness' holds 'x'"):
        read_votes(votes)
    bad = tmp_path / "bad.json"
    bad.write_text('{"labels": ["sad", "neutral"], "matrix": [[1, 0]]}')
    with pytest.raises(ValueError, match=r"bad\.json: field 'matrix' is 1×2, expected 2×2"):
        FES.load(bad)


@pytest.mark.data
def test_real_fer_plus_votes_give_the_published_matrix():
    if not FERPLUS_VOTES.is_file():
        pytest.skip(f"real FER+ votes not found at {FERPLUS_VOTES}")
    fes = fes_from_votes(FERPLUS_VOTES)
    assert fes.images == 35_887
    for (a, b), value in PUBLISHED.items():
        assert fes.value(a, b) == pytest.approx(value, abs=1e-3), (a, b)
    allowed = {(a, b) for a, b, _ in fes.pairs_above(0.03)}
    assert allowed == {
        ("angry", "sad"), ("angry", "surprise"), ("angry", "neutral"), ("disgust", "neutral"),
        ("fear", "surprise"), ("fear", "neutral"), ("happy", "surprise"), ("happy", "neutral"),
        ("sad", "surprise"), ("sad", "neutral"), ("surprise", "neutral"),
    }  # fmt: skip


def test_out_to_a_fifo_writes_the_json_through_and_no_picture_beside_it(tmp_path, capsys):
    import os
    import threading

    votes = write_votes(tmp_path / "votes.csv", [[5, 0, 0, 5, 0, 0, 0, 0, 0, 0]] * 3)
    fifo = tmp_path / "FES.json"
    os.mkfifo(fifo)
    read = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_bytes()))
    reader.start()
    assert main(["fes", "--votes", str(votes), "--out", str(fifo)]) == 0
    reader.join(10)
    assert json.loads(read[0])["labels"][0] == "angry"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["FES.json", "votes.csv"]
    assert "no heat map: --out is not a regular file" in capsys.readouterr().err

"""Model packages that cannot run are refused when they load, in one line naming the file:
a card with more labels than the model has outputs, an empty model whose checksum matches;
the headless analysis stops before the first frame with status 2."""

import json
import shutil

import pytest

from app.__main__ import main
from fer_core.demo import write_demo_video
from fer_core.recognizer import Recognizer, RecognizerOptions
from fer_core.zoo import PackageError, default_package, sha256


@pytest.fixture
def package(tmp_path):
    """A copy of the default package to spoil."""
    folder = tmp_path / "spoilt"
    shutil.copytree(default_package().path, folder)
    return folder


def edit_card(folder, **changes):
    card = json.loads((folder / "card.json").read_text())
    card.update(changes)
    (folder / "card.json").write_text(json.dumps(card))


def test_a_card_with_more_labels_than_outputs_fails_at_load(package, tmp_path, capsys):
    labels = json.loads((package / "card.json").read_text())["labels"]
    edit_card(package, labels=[*labels, "contempt"])
    with pytest.raises(PackageError, match=r"lists 8 labels but the model outputs 7 classes"):
        Recognizer(RecognizerOptions(model=package))
    video = write_demo_video(tmp_path / "v.avi", 3)
    assert main(["analyze", str(video), "--model", str(package), "--csv",
                 str(tmp_path / "f.csv"), "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "card.json: lists 8 labels" in err[0]
    assert not (tmp_path / "f.csv").exists() and not list(tmp_path.glob("*partial*"))


@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_an_empty_model_whose_checksum_matches_is_one_clear_error(package, precision):
    card = json.loads((package / "card.json").read_text())
    for name in ("model.onnx", "model.int8.onnx"):
        (package / name).write_bytes(b"")
        card["sha256"][name] = sha256(package / name)
    edit_card(package, sha256=card["sha256"])
    with pytest.raises(PackageError, match=r"model.*\.onnx: onnxruntime cannot load this model"):
        Recognizer(RecognizerOptions(model=package, precision=precision))

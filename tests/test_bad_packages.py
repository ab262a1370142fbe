"""Model packages that cannot run are refused when they load, in one line naming the file:
a card with more labels than the model has outputs, an empty model whose checksum matches;
the headless analysis stops before the first frame with status 2."""

import json
import shutil

import pytest

from app.__main__ import main
from fer_core.demo import write_demo_video
from fer_core.recognizer import Recognizer, RecognizerOptions
from fer_core.zoo import PackageError, default_package, load_package, sha256


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


@pytest.mark.parametrize(
    ("card", "said"),
    [
        (b"null", "holds null; expected a JSON object"),
        (b"5", "holds 5; expected a JSON object"),
        (b"\xff\xfe{}", "byte 0 is not UTF-8"),
        ({"sha256": []}, "field 'sha256' should be an object"),
        ({"sha256": {"model.onnx": 5}}, "field 'sha256' is"),
        ({"labels": [1, 2, 3, 4, 5, 6, 7]}, "field 'labels' is [1, 2"),
        ({"labels": ["a", "a", "b", "c", "d", "e", "f"]}, "field 'labels'"),
        ({"mean": None}, "field 'mean' should be a list"),
        ({"mean": [None]}, "field 'mean' is [null]"),
        ({"channels": True}, "field 'channels' should be an integer"),
        ({"input_size": [100000, 100000]}, "field 'input_size' is [100000, 100000]"),
        ({"std": [0]}, "field 'std' is [0]; expected positive numbers"),
        ({"scale": 0}, "field 'scale' is 0; expected a positive number"),
        ({"tta": "bogus"}, "field 'tta' is \"bogus\"; expected one of none, flip"),
        ({"crop": {"fraction": 2}}, "field 'crop'"),
    ],
)
def test_a_bad_card_is_one_package_error_naming_the_field(package, card, said):
    """Issue 31: these cards were tracebacks at startup, or (std 0, scale 0) ran and labelled
    every face "angry 0.66"; each is one PackageError naming card.json and the field."""
    if isinstance(card, bytes):
        (package / "card.json").write_bytes(card)
    else:
        edit_card(package, **card)
    with pytest.raises(PackageError) as caught:
        load_package(package)
    assert str(caught.value).startswith(f"{package / 'card.json'}: ")
    assert said in str(caught.value)


def test_analyze_with_a_bad_card_is_one_line(package, tmp_path, capsys):
    edit_card(package, std=[0])
    video = write_demo_video(tmp_path / "v.avi", 3)
    assert main(["analyze", str(video), "--model", str(package), "--csv",
                 str(tmp_path / "f.csv"), "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "field 'std' is [0]" in err[0]

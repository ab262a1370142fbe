"""Faces of one dataset added to another's training split (`train --add-data`), on tiny
fixtures in the real FER2013 and CK+48 layouts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from tests.conftest import fer2013_rows, write_fer2013_csv
from trainer.data import labels as L
from trainer.data import read_dataset
from trainer.data.mix import add_training, mapped_split, parse_source

CK = {  # CK+48 class folder → file names (subject first)
    "anger": ["S005_001_00000011.png", "S010_002_00000014.png"],
    "contempt": ["S010_003_00000009.png"],  # FER2013 has no contempt: left out
    "happy": ["S011_004_00000020.png"],
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("mix")
    fer = write_fer2013_csv(
        root / "fer2013.csv", fer2013_rows({"Training": 14, "PublicTest": 7, "PrivateTest": 7})
    )
    for folder, names in CK.items():
        (root / "CK+48" / folder).mkdir(parents=True)
        for i, name in enumerate(names):
            cv2.imwrite(str(root / "CK+48" / folder / name), np.full((48, 48), 10 * i, np.uint8))
    return read_dataset("fer2013", fer), read_dataset("ckplus", root), fer, root


def test_added_faces_join_the_training_split_in_the_base_labels(data):
    fer, ck, _, _ = data
    mixed = add_training(fer, ck, repeat=3)
    assert mixed.name == "fer2013+ckplus" and mixed.labels == fer.labels
    train = mixed[mixed.train]
    assert len(train) == 14 + 3 * 3  # contempt left out, the rest three times
    added = [fer.labels[t] for t in train.targets[14:17]]
    assert added == ["angry", "angry", "happy"]
    np.testing.assert_array_equal(train.images[:14], fer["train"].images)
    assert train.images.shape[1:] == (48, 48)
    assert len(mixed["val"]) == len(fer["val"]) and len(mixed["test"]) == len(fer["test"])
    assert train.where[-1].endswith("S011_004_00000020.png")


def test_votes_of_the_base_get_one_hot_rows_for_added_faces(data):
    fer, ck, _, _ = data
    fer["train"].soft = np.full((14, 7), 1 / 7, np.float32)  # as ferplus7 trains on votes
    try:
        train = add_training(fer, ck)["train"]
    finally:
        fer["train"].soft = None
    assert train.soft.shape == (17, 7)
    np.testing.assert_array_equal(train.soft[14], np.eye(7)[L.FER2013.index("angry")])


def test_a_dataset_with_no_shared_class_and_bad_flags_are_refused(data):
    fer, ck, _, _ = data
    only_contempt = mapped_split(ck["all"], ck.labels, ("contempt",))
    assert len(only_contempt) == 1 and only_contempt.targets.tolist() == [0]
    ck_contempt = type(ck)("ckplus", ck.labels, {"all": ck["all"].subset([2])})
    with pytest.raises(ValueError, match="no face of a class fer2013 has"):
        add_training(fer, ck_contempt)
    assert parse_source("ckplus=a/b=c", "--add-data") == ("ckplus", "a/b=c")
    for bad in ("ckplus", "nosuch=path", "ckplus="):
        with pytest.raises(ValueError, match="expected DATASET=PATH"):
            parse_source(bad, "--add-data")


@pytest.mark.slow
def test_train_verb_adds_data_and_resume_needs_it_again(data, tmp_path, capsys):
    from trainer.cli import main
    from trainer.engine.checkpoint import load

    _, _, fer_path, ck_path = data
    out = tmp_path / "run"
    common = ["--dataset", "fer2013", "--data", str(fer_path), "--out", str(out), "--device", "cpu"]
    added = ["--add-data", f"ckplus={ck_path}", "--add-repeat", "2"]
    rc = main(["train", "--model", "vgg-fer-s", *common, *added, "--recipe", "cpu-fast",
               "--epochs", "1", "--batch-size", "8"])  # fmt: skip
    assert rc == 0, capsys.readouterr().err
    run = load(out / "last.pt")
    assert run.data.name == "fer2013+ckplus" and run.data.fingerprint["train"] == 14 + 2 * 3
    assert main(["train", "--resume", *common, "--epochs", "2"]) == 2
    assert "give the run's --dataset and --add-data again" in capsys.readouterr().err
    assert main(["train", "--resume", *common, *added, "--epochs", "2"]) == 0
    assert main(["train", "--model", "vgg-fer-s", *common[:-4], "--out", str(tmp_path / "b"),
                 "--add-repeat", "2"]) == 2  # fmt: skip
    assert "--add-repeat: only with --add-data" in capsys.readouterr().err

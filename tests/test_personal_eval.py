"""`evaluate --personal`: the protocols split each subject's images as they say (taught: the
first image of each sequence teaches, the rest are queries; untaught: a sequence is never read
with its own images), and the check runs end to end on a CK+-format folder."""

import cv2
import numpy as np
import pytest

from trainer.evaluation.personal import _plans, sequence_of


def test_sequence_names_and_protocol_splits():
    assert sequence_of("/d/happy/S010_004_00000017.png") == "S010_004"
    assert sequence_of("/d/x/photo.png") == "photo"
    names = ["S1_001_01", "S1_001_02", "S1_002_01", "S1_002_02", "S2_001_01", "S2_001_02"]
    subjects = np.array(["S1", "S1", "S1", "S1", "S2", "S2"])
    sequences = [sequence_of(n) for n in names]
    taught = _plans(subjects, sequences, names, "taught")
    assert taught == [([0, 2], [1, 3]), ([4], [5])]
    untaught = _plans(subjects, sequences, names, "untaught")
    assert untaught == [([2], [0, 1]), ([0], [2, 3])]  # S2 has no other sequence: left out


@pytest.mark.slow
def test_the_personal_check_runs_on_a_ckplus_folder(tiny_run, tmp_path, capsys):
    from trainer.cli import main

    rng = np.random.default_rng(0)
    for c, label in enumerate(("anger", "happy", "contempt")):
        (tmp_path / "CK+48" / label).mkdir(parents=True)
        for subject in (10, 11):
            for frame in range(3):
                face = rng.integers(0, 255, (48, 48), np.uint8)
                name = f"S{subject:03d}_{c + 1:03d}_{frame:08d}.png"
                cv2.imwrite(str(tmp_path / "CK+48" / label / name), face)
    best = tiny_run[0] / "best.pt"
    argv = ["evaluate", str(best), "--dataset", "ckplus", "--data", str(tmp_path)]
    assert main([*argv, "--personal", "taught"]) == 0
    report = capsys.readouterr().out
    assert "personal protocol 'taught': 2 subjects, 4 teaching images, 8 queries" in report
    assert "6 samples of classes the model lacks were left out" in report  # contempt
    assert "recall angry" in report and "recall neutral" not in report
    assert main([*argv, "--personal", "untaught"]) == 0
    assert "12 queries" in capsys.readouterr().out

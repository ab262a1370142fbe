"""Dataset readers on tiny fixtures written in each dataset's real layout (plus the real CK+48
where it is present): split sizes, labels by name, targets, subjects, pixels, and errors that
name the file and line."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import SHARED_DATA
from trainer.data import READERS, DataError, read_dataset
from trainer.data import labels as L

RNG = np.random.default_rng(0)


def grey(h: int = 48, w: int = 48) -> np.ndarray:
    return RNG.integers(0, 256, (h, w), dtype=np.uint8)


def write(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image)
    return path


# --- FER2013 / FER+ ---------------------------------------------------------------------------

FER_ROWS = [  # emotion, Usage (line numbers 2..7 in the file)
    (3, "Training"),
    (0, "Training"),
    (6, "Training"),
    (4, "PublicTest"),
    (5, "PublicTest"),
    (1, "PrivateTest"),
]


def fer_csv(folder: Path, gz: bool = False, bad: str | None = None):
    """fer2013.csv[.gz] with FER_ROWS; `bad` is inserted as line 3. Returns path and images."""
    images = [grey() for _ in FER_ROWS]
    lines = ["emotion,pixels,Usage"]
    lines += [
        f"{e},{' '.join(map(str, i.ravel()))},{u}"
        for (e, u), i in zip(FER_ROWS, images, strict=True)
    ]
    if bad is not None:
        lines.insert(2, bad)
    path = folder / ("fer2013.csv.gz" if gz else "fer2013.csv")
    with gzip.open(path, "wt") if gz else path.open("w") as f:
        f.write("\n".join(lines) + "\n")
    return path, images


@pytest.mark.parametrize("gz", [False, True])
def test_fer2013_reads_csv_and_gzip(tmp_path, gz):
    path, images = fer_csv(tmp_path, gz)
    data = read_dataset("fer2013", tmp_path)
    assert data.labels == L.FER2013
    assert (data.train, data.val, data.test) == ("train", "val", "test")
    assert {s: len(data[s]) for s in data.splits} == {"train": 3, "val": 2, "test": 1}
    assert data["train"].targets.tolist() == [3, 0, 6]
    assert data.labels[data["test"].targets[0]] == "disgust"
    got = np.concatenate([data[s].images for s in ("train", "val", "test")])
    np.testing.assert_array_equal(got, np.stack(images))
    assert data["val"].where == [f"{path}:5", f"{path}:6"]
    assert data.skipped.total == 0


BAD_FER = {
    "pixel count": ("2," + " ".join(["7"] * 100) + ",Training", "expected 2304"),
    "non-numeric pixel": ("2," + " ".join(["7"] * 2303) + " x,Training", "'x'"),
    "emotion 9": ("9," + " ".join(["7"] * 2304) + ",Training", "emotion '9'"),
    "usage": ("2," + " ".join(["7"] * 2304) + ",Validation", "Usage 'Validation'"),
}


@pytest.mark.parametrize("case", BAD_FER)
def test_fer2013_bad_rows_name_file_and_line(tmp_path, case):
    row, reason = BAD_FER[case]
    fer_csv(tmp_path, bad=row)
    with pytest.raises(DataError, match=r"fer2013\.csv:3\b") as err:
        read_dataset("fer2013", tmp_path)
    assert reason in str(err.value)
    data = read_dataset("fer2013", tmp_path, skip_bad=True)
    assert data.skipped.total == 1 and len(data.skipped.counts) == 1
    assert sum(len(s) for s in data.splits.values()) == len(FER_ROWS)


def ferplus_votes(tmp_path):
    """fer2013new.csv for the rows of `fer_csv`: one case of each kind."""
    header = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
    votes = [  # one per FER2013 row, same order
        ("Training", "fer0000000.png", "0,8,1,0,0,0,0,1,0,0"),  # happy
        ("Training", "", "10,0,0,0,0,0,0,0,0,0"),  # not a face: no image name
        ("Training", "fer0000002.png", "5,0,0,0,0,0,0,5,0,0"),  # tie: no strict majority
        ("PublicTest", "fer0000003.png", "1,0,0,6,0,0,0,0,0,0"),  # sad
        ("PublicTest", "fer0000004.png", "0,0,0,0,0,0,0,0,2,8"),  # NF wins
        ("PrivateTest", "fer0000005.png", "0,0,0,0,0,0,0,3,1,0"),  # contempt 3 of 3
    ]
    lines = [header + "unknown,NF"] + [f"{u},{n},{v}" for u, n, v in votes]
    (tmp_path / "fer2013new.csv").write_text("\n".join(lines) + "\n")


def test_ferplus_majority_by_name_and_left_out_rows(tmp_path):
    _, images = fer_csv(tmp_path)
    ferplus_votes(tmp_path)
    data = read_dataset("ferplus", tmp_path)
    assert data.labels == L.FERPLUS
    assert {s: len(data[s]) for s in data.splits} == {"train": 1, "val": 1, "test": 1}
    assert [data.labels[data[s].targets[0]] for s in ("train", "val", "test")] == [
        "happy",
        "sad",
        "contempt",
    ]
    for split, row in (("train", 0), ("val", 3), ("test", 5)):
        np.testing.assert_array_equal(data[split].images[0], images[row])
        np.testing.assert_allclose(data[split].soft.sum(axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(data["train"].soft[0], [0, 0.8, 0.1, 0, 0, 0, 0, 0.1], atol=1e-6)
    assert data.skipped.total == 3


def test_ferplus7_trains_on_the_votes_and_scores_on_fer2013s_own_labels(tmp_path):
    fer_csv(tmp_path)
    ferplus_votes(tmp_path)
    plain, data = read_dataset("fer2013", tmp_path), read_dataset("ferplus7", tmp_path)
    assert data.labels == plain.labels == L.FER2013
    # training: the faces with a vote among the seven (not the row FER+ says is no face)
    assert len(data["train"]) == 2 and data.skipped.total == 1
    first = np.zeros(7)
    first[[L.FER2013.index("happy"), L.FER2013.index("surprise")]] = 8 / 9, 1 / 9
    np.testing.assert_allclose(data["train"].soft[0], first, atol=1e-6)  # contempt dropped
    assert data["train"].soft[1][L.FER2013.index("neutral")] == 1  # neutral 5, contempt 5
    # choosing and scoring: FER2013's own rows and labels, every one of them
    for split in ("val", "test"):
        np.testing.assert_array_equal(data[split].targets, plain[split].targets)
        assert data[split].soft is None


def test_label_index_map_by_name():
    assert L.index_map(L.FER2013, L.FERPLUS) == [4, 5, 6, 1, 3, 2, 0]
    assert L.index_map(L.FER2013, L.CKPLUS) == [0, 2, 3, 4, 5, 6, None]
    assert L.index_map(L.CKPLUS, L.FER2013) == [0, None, 1, 2, 3, 4, 5]
    assert L.index_map(L.FERPLUS, L.AFFECTNET8) == [0, 1, 3, 2, 6, 5, 4, 7]
    assert L.index_map(("Anger", "HA", "sadness"), L.FER2013) == [0, 3, 4]


def test_every_registered_reader_exists():
    import importlib

    for spec in READERS.values():
        module, function = spec.split(":")
        assert callable(getattr(importlib.import_module(module), function)), spec


# --- CK+ --------------------------------------------------------------------------------------

CK_FILES = {  # class folder → (file stem, subject)
    "anger": [("S005_001_00000011", "S005"), ("S010_002_00000014", "S010")],
    "contempt": [("S010_003_00000009", "S010")],
    "sadness": [("S005_004_00000020", "S005"), ("S132_001_00000003", "S132")],
}


def ck_fixture(root: Path) -> dict[str, np.ndarray]:
    images = {}
    for folder, files in CK_FILES.items():
        for stem, _ in files:
            images[stem] = grey()
            write(root / "CK+48" / folder / f"{stem}.png", images[stem])
    return images


@pytest.mark.parametrize("below", ["", "CK+48"])
def test_ckplus(tmp_path, below):
    images = ck_fixture(tmp_path)
    data = read_dataset("ckplus", tmp_path / below)
    assert data.labels == L.CKPLUS
    assert (data.train, data.val, data.test) == (None, None, None)
    split = data["all"]
    assert split.images.shape == (5, 48, 48)
    want = [(L.canonical(c), stem, s) for c, files in CK_FILES.items() for stem, s in files]
    assert [data.labels[t] for t in split.targets] == [c for c, _, _ in want]
    assert split.groups.tolist() == [s for _, _, s in want]
    for image, (_, stem, _) in zip(split.images, want, strict=True):
        np.testing.assert_array_equal(image, images[stem])
    assert data.counts("all")["sad"] == 2


def test_ckplus_converts_colour_and_resizes(tmp_path):
    write(tmp_path / "happy" / "S001_001_00000001.png", np.full((96, 96, 3), 200, np.uint8))
    write(tmp_path / "happy" / "S001_001_00000002.png", grey())
    data = read_dataset("ckplus", tmp_path)
    assert data["all"].images.shape == (2, 48, 48)
    assert (data["all"].images[0] == 200).all()


def test_ckplus_bad_file_name(tmp_path):
    ck_fixture(tmp_path)
    bad = write(tmp_path / "CK+48" / "fear" / "face1.png", grey())
    with pytest.raises(DataError, match="S<subject>_<sequence>_<frame>") as err:
        read_dataset("ckplus", tmp_path)
    assert str(bad) in str(err.value)
    data = read_dataset("ckplus", tmp_path, skip_bad=True)
    assert len(data["all"]) == 5 and data.skipped.total == 1


def test_real_ckplus48():
    root = SHARED_DATA / "ckplus" / "CK+48"
    if not root.is_dir():
        pytest.skip(f"real CK+48 not found at {root}")
    data = read_dataset("ckplus", root)
    assert data["all"].images.shape == (981, 48, 48)
    assert data.counts("all") == {
        "angry": 135,
        "contempt": 54,
        "disgust": 177,
        "fear": 75,
        "happy": 207,
        "sad": 84,
        "surprise": 249,
    }
    assert len(set(data["all"].groups)) == 118


# --- JAFFE ------------------------------------------------------------------------------------


def test_jaffe(tmp_path):
    names = {  # file → label, subject
        "KA.AN1.39.tiff": ("angry", "KA"),
        "KA.HA2.45.tiff": ("happy", "KA"),
        "sub/YM.SU1.58.tiff": ("surprise", "YM"),
        "YM.NE3.49.tiff": ("neutral", "YM"),
    }
    images = {n: grey(64, 64) for n in names}
    for n, image in images.items():
        write(tmp_path / n, image)
    write(tmp_path / "KM.DI1.1.tiff", grey(40, 40))  # odd size: resized to the common 64×64
    (tmp_path / "README").write_text("The Japanese Female Facial Expression database")
    data = read_dataset("jaffe", tmp_path)
    assert data.labels == L.FER2013
    split = data["all"]
    assert split.images.shape == (5, 64, 64)
    by_name = {Path(w).relative_to(tmp_path).as_posix(): i for i, w in enumerate(split.where)}
    for name, (label, subject) in names.items():
        i = by_name[name]
        assert data.labels[split.targets[i]] == label and split.groups[i] == subject
        np.testing.assert_array_equal(split.images[i], images[name])
    assert data.labels[split.targets[by_name["KM.DI1.1.tiff"]]] == "disgust"


@pytest.mark.parametrize("name", ["KA.XX1.39.tiff", "photo.tiff"])
def test_jaffe_bad_file_name(tmp_path, name):
    write(tmp_path / "KA.AN1.39.tiff", grey(32, 32))
    bad = write(tmp_path / name, grey(32, 32))
    with pytest.raises(DataError, match=r"KA\.AN1\.39\.tiff") as err:
        read_dataset("jaffe", tmp_path)
    assert str(err.value).startswith(f"{bad}:")
    assert read_dataset("jaffe", tmp_path, skip_bad=True).skipped.total == 1


# --- RAF-DB -----------------------------------------------------------------------------------

RAF_LINES = ["train_00001.jpg 5", "train_00002.jpg 1", "test_0001.jpg 7", "test_0002.jpg 4"]


def raf_fixture(root: Path, lines=RAF_LINES, aligned: bool = True) -> Path:
    listing = root / "basic" / "EmoLabel" / "list_patition_label.txt"
    listing.parent.mkdir(parents=True)
    listing.write_text("\n".join(lines) + "\n")
    for line in RAF_LINES:
        stem = line.split(".")[0]
        name = f"{stem}_aligned.jpg" if aligned else f"{stem}.jpg"
        write(root / "basic" / "Image" / ("aligned" if aligned else "original") / name, grey())
    return listing


@pytest.mark.parametrize("aligned", [True, False])
def test_rafdb(tmp_path, aligned):
    listing = raf_fixture(tmp_path, aligned=aligned)
    data = read_dataset("rafdb", tmp_path)
    assert data.labels == L.RAFDB
    assert (data.train, data.val, data.test) == ("train", "test", "test")
    assert [data.labels[t] for t in data["train"].targets] == ["sad", "surprise"]
    assert [data.labels[t] for t in data["test"].targets] == ["neutral", "happy"]
    first = data["train"].paths[0]
    assert first.name == ("train_00001_aligned.jpg" if aligned else "train_00001.jpg")
    assert data["train"].decode(0, 1).shape == (48, 48)
    assert data["test"].where == [f"{listing}:3", f"{listing}:4"]


def test_rafdb_bad_label_names_line(tmp_path):
    raf_fixture(tmp_path, ["train_00001.jpg 5", "train_00002.jpg 9", "test_0001.jpg 7"])
    with pytest.raises(DataError, match=r"list_patition_label\.txt:2: label '9'"):
        read_dataset("rafdb", tmp_path)
    data = read_dataset("rafdb", tmp_path, skip_bad=True)
    assert data.skipped.total == 1 and len(data["train"]) == 1


def test_rafdb_missing_image_names_path(tmp_path):
    raf_fixture(tmp_path, [*RAF_LINES, "train_00003.jpg 2"])
    missing = tmp_path / "basic" / "Image" / "aligned" / "train_00003_aligned.jpg"
    with pytest.raises(DataError, match="image file is missing") as err:
        read_dataset("rafdb", tmp_path)
    assert str(err.value).startswith(f"{missing}:")
    assert len(read_dataset("rafdb", tmp_path, skip_bad=True)["train"]) == 2


# --- AffectNet --------------------------------------------------------------------------------

AFFECTNET_HEADER = [
    "subDirectory_filePath",
    "face_x",
    "face_y",
    "face_width",
    "face_height",
    "facial_landmarks",
    "expression",
    "valence",
    "arousal",
]


def affectnet_fixture(root: Path, train: list, val: list) -> Path:
    lists = root / "Manually_Annotated_file_lists"
    lists.mkdir(parents=True)
    for name, expressions in (("training.csv", train), ("validation.csv", val)):
        with (lists / name).open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(AFFECTNET_HEADER)
            for i, e in enumerate(expressions):
                out.writerow(
                    [f"{i % 3}/{name[0]}{i}.jpg", 10, 10, 80, 80, "1.0;2.0;3.0", e, 0.1, -0.2]
                )
    (root / "Manually_Annotated_Images").mkdir()
    return lists


@pytest.mark.parametrize(("name", "classes"), [("affectnet", 8), ("affectnet7", 7)])
def test_affectnet(tmp_path, name, classes):
    lists = affectnet_fixture(tmp_path, [0, 1, 7, 8, 6, 10, 9], [3, 7, 5])
    image = write(tmp_path / "Manually_Annotated_Images" / "0" / "t0.jpg", grey())
    data = read_dataset(name, tmp_path)
    assert data.labels == (L.AFFECTNET8 if classes == 8 else L.AFFECTNET7)
    assert (data.train, data.val, data.test) == ("train", "val", "val")
    kept = [e for e in [0, 1, 7, 6] if e < classes]
    assert data["train"].targets.tolist() == kept
    assert data["val"].targets.tolist() == [e for e in [3, 7, 5] if e < classes]
    assert [data.labels[t] for t in data["train"].targets[:2]] == ["neutral", "happy"]
    assert data["train"].paths[0] == image
    assert data["train"].where[0] == f"{lists / 'training.csv'}:2"
    dropped = 3 + 2 * (classes == 7)  # 8, 9, 10 (and contempt twice for 7 classes)
    assert data.skipped.counts == {f"not one of the {classes} expression classes": dropped}
    assert data["train"].decode(0, 3).shape == (48, 48, 3)
    with pytest.raises(DataError, match="image file is missing"):
        data["train"].decode(1, 1)


def test_affectnet_bad_expression_names_line(tmp_path):
    affectnet_fixture(tmp_path, [0, 1, "happy", 2], [3])
    with pytest.raises(DataError, match=r"training\.csv:4: expression 'happy'"):
        read_dataset("affectnet", tmp_path)
    for i in (0, 1, 3):  # skip_bad checks the files too
        write(tmp_path / "Manually_Annotated_Images" / f"{i % 3}" / f"t{i}.jpg", grey())
    assert len(read_dataset("affectnet", tmp_path, skip_bad=True)["train"]) == 3


def test_affectnet_missing_column(tmp_path):
    lists = affectnet_fixture(tmp_path, [0], [1])
    (lists / "validation.csv").write_text("subDirectory_filePath,valence\n0/a.jpg,0.3\n")
    with pytest.raises(DataError, match=r"validation\.csv: line 1: .*expression"):
        read_dataset("affectnet", tmp_path)


# --- class folders: CAER-S and ImageFolder ----------------------------------------------------


def folder_tree(root: Path, splits: dict[str, dict[str, int]], suffix: str = ".png") -> None:
    for split, classes in splits.items():
        for cls, n in classes.items():
            for i in range(n):
                write(root / split / cls / f"{i:04d}{suffix}", grey(24, 24))


def test_caer(tmp_path):
    folder_tree(
        tmp_path,
        {
            "train": {"Anger": 2, "Happy": 3, "Neutral": 1},
            "test": {"Anger": 1, "Happy": 1, "Neutral": 2},
        },
    )
    data = read_dataset("caer", tmp_path)
    assert data.name == "caer"
    assert data.labels == ("angry", "happy", "neutral")
    assert (data.train, data.val, data.test) == ("train", "test", "test")
    assert data.counts("train") == {"angry": 2, "happy": 3, "neutral": 1}
    assert data["test"].targets.tolist() == [0, 1, 2, 2]
    assert data["test"].decode(0, 1).shape == (24, 24)


def test_caer_needs_train_and_test(tmp_path):
    folder_tree(tmp_path, {"train": {"Anger": 1}})
    with pytest.raises(DataError, match="train/ and test/"):
        read_dataset("caer", tmp_path)


def test_folder_single_split(tmp_path):
    folder_tree(tmp_path, {".": {"sadness": 2, "Surprised": 1, "anger": 2}})
    write(tmp_path / "anger" / "UPPER.PNG", grey())
    (tmp_path / "anger" / "notes.txt").write_text("not an image")
    data = read_dataset("folder", tmp_path)
    assert list(data.splits) == ["all"] and data.train is None
    assert data.labels == ("angry", "sad", "surprise")
    assert data.counts("all") == {"angry": 3, "sad": 2, "surprise": 1}
    assert data["all"].where[0] == str(data["all"].paths[0])


@pytest.mark.parametrize("val", ["val", "valid", "validation", None])
def test_folder_split_folders(tmp_path, val):
    classes = {"happy": 2, "fear": 1}
    folder_tree(tmp_path, {"train": classes, "test": classes} | ({val: classes} if val else {}))
    data = read_dataset("folder", tmp_path)
    assert list(data.splits) == ["train", "val", "test"] if val else ["train", "test"]
    assert (data.train, data.val, data.test) == ("train", "val" if val else None, "test")
    assert data.labels == ("fear", "happy")
    assert data["train"].targets.tolist() == [0, 1, 1]


def test_folder_unknown_class_names_folder(tmp_path):
    folder_tree(tmp_path, {".": {"happy": 1, "bored": 1}})
    with pytest.raises(DataError, match="'bored' is not an expression class") as err:
        read_dataset("folder", tmp_path)
    assert str(err.value).startswith(f"{tmp_path / 'bored'}:")


def test_folder_split_class_mismatch_names_both(tmp_path):
    folder_tree(tmp_path, {"train": {"happy": 1, "sad": 1}, "test": {"happy": 1}})
    with pytest.raises(DataError, match="differ") as err:
        read_dataset("folder", tmp_path)
    assert str(tmp_path / "test") in str(err.value) and str(tmp_path / "train") in str(err.value)


def test_a_csv_with_only_its_header_is_one_clear_error(tmp_path):
    """Issue 31: every verb read it as a dataset and failed later with "logits of shape
    (0, 0)"."""
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels,Usage\n")
    with pytest.raises(DataError, match=rf"^{path}: holds no images; expected a fer2013"):
        read_dataset("fer2013", path)


def test_folder_reads_names_that_are_not_utf8_and_checks_headers_itself(tmp_path):
    """Issue 31: cv2.haveImageReader given a name that is not UTF-8 crashed the process
    (segmentation fault); the header is now checked from the file's bytes."""
    import os

    face = grey()
    for kind in (".png", ".jpg", ".bmp", ".webp", ".tif", ".pgm"):
        write(tmp_path / "happy" / f"a{kind}", face)
    odd = tmp_path / "happy" / os.fsdecode(b"caf\xe9.png")
    odd.write_bytes(cv2.imencode(".png", face)[1].tobytes())
    (tmp_path / "happy" / "fake.png").write_text("not an image")
    data = read_dataset("folder", tmp_path, skip_bad=True)
    assert data.counts("all") == {"happy": 7}
    assert data.skipped.total == 1 and "fake.png" in data.skipped.summary()
    decoded = data["all"].decode(list(data["all"].paths).index(odd), 1)
    assert (decoded == face).all()

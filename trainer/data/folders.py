"""Readers for datasets that come as image files: a generic class-folder tree (`read_folder`,
like torchvision's ImageFolder), CK+48, JAFFE, RAF-DB (basic), AffectNet (8 or 7 classes) and
CAER-S.

Small grey sets (CK+, JAFFE) are decoded into memory; large ones keep paths and decode lazily.
Label names are canonical (`labels.canonical`), so class sets map between datasets by name.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import numpy as np

from trainer.data import labels as L
from trainer.data.core import (
    EMPTY_IMAGE,
    IMAGE_SUFFIXES,
    UNREADABLE_IMAGE,
    DataError,
    Dataset,
    Rejector,
    Skipped,
    Split,
    convert_channels,
    read_image,
)
from trainer.data.fer2013 import csv_rows

SPLIT_FOLDERS = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "test": "test",
}
CKPLUS_NAME = re.compile(r"(S\d+)_\d+_\d+")  # S<subject>_<sequence>_<frame>
JAFFE_NAME = re.compile(r"([A-Za-z]{2})\.([A-Za-z]{2})\d*\.\d+")  # KA.AN1.39: subject, code
JAFFE_CODES = {
    "AN": "angry",
    "DI": "disgust",
    "FE": "fear",
    "HA": "happy",
    "NE": "neutral",
    "SA": "sad",
    "SU": "surprise",
}
RAFDB_LISTS = ("list_patition_label.txt", "list_partition_label.txt")  # official name misspelt
AFFECTNET_IMAGES = ("Manually_Annotated_Images", "Manually_Annotated/Manually_Annotated_Images")

Record = tuple[Path, int, str]  # image file, target, subject


# --- shared helpers -------------------------------------------------------------------------


def _image_files(folder: Path) -> list[Path]:
    """Image files under `folder` (any depth), sorted; other files and hidden ones (macOS `._*`
    forks) are not images of the dataset."""
    return sorted(
        p
        for p in folder.rglob("*")
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


def _image_problem(file: Path) -> str | None:
    """Why `file` cannot be read as an image (missing, empty, a header no decoder knows), or
    None. For lazily decoded sets: only the header is read, as decoding every file here would
    take as long as an epoch."""
    if not file.is_file():
        return "image file is missing"
    if file.stat().st_size == 0:
        return EMPTY_IMAGE
    with open(file, "rb") as f:
        head = f.read(16)
    if not any(re.match(signature, head) for signature in IMAGE_SIGNATURES):
        return UNREADABLE_IMAGE
    return None


# The first bytes of the image formats of IMAGE_SUFFIXES that OpenCV decodes: the header is
# checked here, not by cv2.haveImageReader, which crashes the process on a name that is not
# UTF-8.
IMAGE_SIGNATURES = (
    rb"\x89PNG\r\n\x1a\n",
    rb"\xff\xd8\xff",  # JPEG
    rb"BM",
    rb"II\*\x00|MM\x00\*",  # TIFF
    rb"(?s)RIFF.{4}WEBP",
    rb"P[1-6]\s",  # PBM / PGM / PPM
)


def _readable(files: list[Path], reject: Rejector) -> list[Path]:
    """The files that pass `_image_problem`; the others are rejected (counted with skip_bad)."""
    kept = []
    for f in files:
        if problem := _image_problem(f):
            reject(problem, str(f))
        else:
            kept.append(f)
    return kept


def _class_folders(root: Path) -> dict[str, Path]:
    """Canonical label → class folder, for the subfolders of `root`."""
    found: dict[str, Path] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            label = L.canonical(folder.name)
        except ValueError:
            raise DataError(
                f"{folder}: folder name {folder.name!r} is not an expression class; expected "
                f"class folders named like {', '.join(L.CANONICAL)} (or anger, happiness, ...)"
            ) from None
        if label in found:
            raise DataError(f"{folder}: holds the same class ({label}) as {found[label]}")
        found[label] = folder
    if not found:
        raise DataError(f"{root}: no class folders; expected <class>/<image>, e.g. happy/1.png")
    return found


def _find(root: Path, names: tuple[str, ...], folder: bool = False, depth: int = 4) -> Path | None:
    """The shallowest file (or folder) under `root` named one of `names`. Searched level by level
    so that the huge image folders of AffectNet are not walked when the lists sit above them."""
    level = [root]
    for i in range(depth + 1):
        hits = [p for d in level for n in names if (p := d / n).exists() and p.is_dir() == folder]
        if hits:
            return min(hits)
        if i < depth:  # the last level's contents are never listed
            level = sorted(p for d in level for p in d.iterdir() if p.is_dir())
    return None


def _decode_grey(
    records: list[Record], reject: Rejector, size: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[Record]]:
    """Decode records into one grey uint8 N×H×W array, resized to `size` (H, W) or, if None, to
    the most common size; returns the images and the records that decoded."""
    import cv2

    images, kept = [], []
    for record in records:
        try:
            images.append(convert_channels(read_image(record[0]), 1))
            kept.append(record)
        except DataError as e:  # read_image names the path; do not name it twice
            reject(str(e).removeprefix(f"{record[0]}: "), str(record[0]))
    if not images:
        return np.empty((0, *(size or (0, 0))), np.uint8), kept
    h, w = size or Counter(i.shape for i in images).most_common(1)[0][0]
    images = [
        i if i.shape == (h, w) else cv2.resize(i, (w, h), interpolation=cv2.INTER_AREA)
        for i in images
    ]
    return np.stack(images), kept


def _in_memory(
    name: str, records: list[Record], reject: Rejector, size: tuple[int, int] | None = None
) -> Split:
    images, kept = _decode_grey(records, reject, size)
    return Split(
        name,
        np.array([r[1] for r in kept], np.int64),
        images=images,
        groups=np.array([r[2] for r in kept], dtype=str),
        where=[str(r[0]) for r in kept],
    )


def _lazy(name: str, paths: list[Path], targets: list[int], where: list[str]) -> Split:
    return Split(name, np.array(targets, np.int64), paths=paths, where=where)


def _require_dir(path: Path, expected: str) -> None:
    if not path.is_dir():
        raise DataError(f"{path}: not a folder; expected {expected}")


# --- class-folder trees -----------------------------------------------------------------------


def read_folder(path: Path, skip_bad: bool = False, name: str = "folder") -> Dataset:
    """Class folders (`<class>/<image>`) directly under `path` → split `all`; or split folders
    `train`, `val`/`valid`/`validation`, `test` each holding the same class folders."""
    path = Path(path)
    _require_dir(path, "class folders, or train/val/test folders of class folders")
    tops: dict[str, Path] = {}
    for p in sorted(path.iterdir()):
        role = SPLIT_FOLDERS.get(p.name.lower())
        if role and p.is_dir():
            if role in tops:
                raise DataError(f"{p}: a second {role} split folder besides {tops[role]}")
            tops[role] = p
    tops = {r: tops[r] for r in ("train", "val", "test") if r in tops} or {"all": path}
    classes = {role: _class_folders(folder) for role, folder in tops.items()}
    ref = next(iter(classes))  # train if there is one
    for role, found in classes.items():
        if found.keys() != classes[ref].keys():
            raise DataError(
                f"{tops[role]}: classes {', '.join(sorted(found))} differ from those of "
                f"{tops[ref]} ({', '.join(sorted(classes[ref]))}); split folders must hold the "
                "same class folders"
            )
    labels = tuple(sorted(classes[ref]))  # sorted for determinism, as ImageFolder does
    skipped = Skipped()
    reject = Rejector(skip_bad, skipped)
    splits = {}
    for role, found in classes.items():
        files = [
            (f, labels.index(c))
            for c, d in sorted(found.items())
            for f in _readable(_image_files(d), reject)
        ]
        if not files:
            raise DataError(f"{tops[role]}: no image files ({', '.join(IMAGE_SUFFIXES)})")
        paths = [f for f, _ in files]
        splits[role] = _lazy(role, paths, [t for _, t in files], [str(f) for f in paths])
    role = lambda r: r if r in splits else None  # noqa: E731
    return Dataset(name, labels, splits, role("train"), role("val"), role("test"), skipped)


def read_caer(path: Path, skip_bad: bool = False) -> Dataset:
    """CAER-S: `train/<Class>/*.png` and `test/<Class>/*.png` (Anger ... Surprise)."""
    data = read_folder(path, skip_bad, name="caer")
    if data.train is None or data.test is None:
        raise DataError(f"{path}: expected train/ and test/ folders of class folders (CAER-S)")
    data.val = "test"  # CAER-S has no validation split; papers report on test
    return data


def read_ckplus(path: Path, skip_bad: bool = False) -> Dataset:
    """CK+48: `<class>/S###_###_########.png`, 48×48 grey, decoded into memory. One split `all`
    with the subject in `groups`: CK+ is used with subject-wise k-fold, so the roles are left to
    the fold code."""
    path = Path(path)
    root = path / "CK+48" if (path / "CK+48").is_dir() else path
    _require_dir(root, "the CK+48 folder (<class>/S###_###_########.png)")
    skipped = Skipped()
    reject = Rejector(skip_bad, skipped)
    records: list[Record] = []
    for label, folder in _class_folders(root).items():
        if label not in L.CKPLUS:
            raise DataError(f"{folder}: {label} is not a CK+ class ({', '.join(L.CKPLUS)})")
        for f in _image_files(folder):
            if m := CKPLUS_NAME.fullmatch(f.stem):
                records.append((f, L.CKPLUS.index(label), m[1]))
            else:
                reject(
                    "file name is not S<subject>_<sequence>_<frame> (e.g. S010_004_00000017)",
                    str(f),
                )
    if not records:
        raise DataError(f"{root}: no CK+ images found")
    split = _in_memory("all", records, reject, size=(48, 48))
    return Dataset("ckplus", L.CKPLUS, {"all": split}, skipped=skipped)


def read_jaffe(path: Path, skip_bad: bool = False) -> Dataset:
    """JAFFE: image files named `<subject>.<code><n>.<number>.tiff` (e.g. `KA.AN1.39.tiff`) in
    any folder under `path`; decoded into memory, one split `all`, subject in `groups`."""
    path = Path(path)
    _require_dir(path, "the JAFFE folder of images named like KA.AN1.39.tiff")
    skipped = Skipped()
    reject = Rejector(skip_bad, skipped)
    records: list[Record] = []
    for f in _image_files(path):
        m = JAFFE_NAME.fullmatch(f.stem)
        if m and (label := JAFFE_CODES.get(m[2].upper())):
            records.append((f, L.FER2013.index(label), m[1].upper()))
        else:
            reject(
                f"file name is not <subject>.<code><n>.<number> with code one of "
                f"{', '.join(JAFFE_CODES)} (e.g. KA.AN1.39.tiff)",
                str(f),
            )
    if not records:
        raise DataError(f"{path}: no JAFFE images (named like KA.AN1.39.tiff) found")
    split = _in_memory("all", records, reject)
    return Dataset("jaffe", L.FER2013, {"all": split}, skipped=skipped)


# --- label lists ------------------------------------------------------------------------------


def read_rafdb(path: Path, skip_bad: bool = False) -> Dataset:
    """RAF-DB basic: `EmoLabel/list_patition_label.txt` (`train_00001.jpg 5`, labels 1-7) and
    the aligned faces `Image/aligned/train_00001_aligned.jpg` (else `Image/original/`)."""
    path = Path(path)
    _require_dir(path, "the RAF-DB basic folder (EmoLabel/, Image/)")
    listing = _find(path, RAFDB_LISTS)
    if listing is None:
        raise DataError(f"{path}: no {RAFDB_LISTS[0]} (EmoLabel/) under this folder")
    images = _find(path, ("aligned",), folder=True)
    aligned = images is not None
    images = images or _find(path, ("original",), folder=True)
    if images is None:
        raise DataError(f"{path}: no Image/aligned or Image/original folder under this folder")
    skipped = Skipped()
    reject = Rejector(skip_bad, skipped)
    parts: dict[str, tuple[list, list, list]] = {"train": ([], [], []), "test": ([], [], [])}
    for line, text in enumerate(listing.read_text(encoding="utf-8").splitlines(), 1):
        where = f"{listing}:{line}"
        fields = text.split()
        if not fields:
            continue
        if len(fields) != 2:
            reject(f"expected '<image name> <label 1-7>', got {text!r}", where)
            continue
        name, label = fields
        if label not in {"1", "2", "3", "4", "5", "6", "7"}:
            reject(f"label {label!r} is not an integer 1-7", where)
            continue
        split = name.split("_", 1)[0]
        if split not in parts:
            reject(f"image name {name!r} does not start with train_ or test_", where)
            continue
        stem, suffix = name.rsplit(".", 1) if "." in name else (name, "jpg")
        file = images / (f"{stem}_aligned.{suffix}" if aligned else name)
        if problem := _image_problem(file):
            reject(problem, str(file))
            continue
        for column, value in zip(parts[split], (file, int(label) - 1, where), strict=True):
            column.append(value)
    splits = {name: _lazy(name, *columns) for name, columns in parts.items()}
    # RAF-DB has no validation split; papers validate (and report) on the official test split
    return Dataset("rafdb", L.RAFDB, splits, "train", "test", "test", skipped)


def _read_affectnet(path: Path, skip_bad: bool, labels: tuple[str, ...], name: str) -> Dataset:
    """AffectNet manifests `training.csv` / `validation.csv` (column `expression` 0-10; 8-10 are
    none / uncertain / no face) with images at `Manually_Annotated_Images/<subDirectory_filePath>`.
    The 287k files are checked here only with `skip_bad` (the user chose to pay for counting
    them); otherwise a missing or broken file stops the run when it is decoded."""
    path = Path(path)
    _require_dir(path, "the AffectNet folder with training.csv and validation.csv")
    skipped = Skipped()
    reject = Rejector(skip_bad, skipped)
    splits = {}
    for split, stem in (("train", "training"), ("val", "validation")):
        csv_path = _find(path, (f"{stem}.csv", f"{stem}.csv.gz"), depth=2)
        if csv_path is None:
            raise DataError(f"{path}: no {stem}.csv (AffectNet manifest) under this folder")
        bases = (csv_path.parent, csv_path.parent.parent, path)
        roots = [b / r for b in bases for r in AFFECTNET_IMAGES if (b / r).is_dir()]
        root = roots[0] if roots else csv_path.parent
        paths, targets, wheres = [], [], []
        for line, row in csv_rows(csv_path, ("subDirectory_filePath", "expression")):
            where = f"{csv_path}:{line}"
            try:
                expression = int(row["expression"])
            except (TypeError, ValueError):
                expression = -1
            if not 0 <= expression <= 10:
                reject(f"expression {row['expression']!r} is not an integer 0-10", where)
            elif expression >= len(labels):  # none, uncertain, no face (and contempt for 7)
                skipped.add(f"not one of the {len(labels)} expression classes", where)
            elif not (row["subDirectory_filePath"] or "").strip():
                reject("subDirectory_filePath is empty", where)
            else:
                file = root / row["subDirectory_filePath"].strip()
                if skip_bad and (problem := _image_problem(file)):
                    reject(problem, str(file))
                    continue
                paths.append(file)
                targets.append(expression)
                wheres.append(where)
        splits[split] = _lazy(split, paths, targets, wheres)
    # AffectNet's test set is not public: its validation set is the official test set
    return Dataset(name, labels, splits, "train", "val", "val", skipped)


def read_affectnet(path: Path, skip_bad: bool = False) -> Dataset:
    return _read_affectnet(path, skip_bad, L.AFFECTNET8, "affectnet")


def read_affectnet7(path: Path, skip_bad: bool = False) -> Dataset:
    return _read_affectnet(path, skip_bad, L.AFFECTNET7, "affectnet7")

"""FER2013 (`fer2013.csv` or `.csv.gz`: emotion,pixels,Usage) and FER+ (`fer2013new.csv` votes,
in FER2013 row order, next to it)."""

from __future__ import annotations

import csv
import gzip
import io
import zlib
from pathlib import Path

import numpy as np

from trainer.data import labels as L
from trainer.data.core import DataError, Dataset, Rejector, Skipped, Split

USAGES = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}
SIDE = 48
FERPLUS_EMOTIONS = (
    "neutral",
    "happiness",
    "surprise",
    "sadness",
    "anger",
    "disgust",
    "fear",
    "contempt",
)


def _open_text(path: Path) -> io.TextIOBase:
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    raw = path.open("rb")
    magic = raw.read(2)
    raw.seek(0)
    stream = gzip.GzipFile(fileobj=raw) if magic == b"\x1f\x8b" else raw
    return io.TextIOWrapper(stream, encoding="utf-8", newline="")


def find_csv(path: Path, stem: str) -> Path:
    """`path` itself, or `stem.csv` / `stem.csv.gz` inside the folder `path`."""
    path = Path(path)
    if path.is_dir():
        for name in (f"{stem}.csv", f"{stem}.csv.gz"):
            if (path / name).is_file():
                return path / name
        raise DataError(f"{path}: no {stem}.csv or {stem}.csv.gz in this folder")
    return path


# What a damaged file raises while it is read, and what that means for the user.
DAMAGED = {
    EOFError: "the compressed file ends early (an incomplete download?); fetch it again",
    gzip.BadGzipFile: "not a valid gzip file",
    zlib.error: "the compressed data is corrupt; fetch the file again",
    UnicodeDecodeError: "not UTF-8 text",
    csv.Error: "not valid CSV",
}


def csv_rows(path: Path, required: tuple[str, ...]):
    """(line number, row dict) for each data row, after checking the header."""
    with _open_text(path) as f:
        reader = csv.DictReader(f)
        try:
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise DataError(
                    f"{path}: line 1: header {','.join(header)!r} lacks column(s) "
                    f"{', '.join(missing)}; expected {','.join(required)}"
                )
            for row in reader:
                yield reader.line_num, row
        except tuple(DAMAGED) as err:
            reason = next(text for kind, text in DAMAGED.items() if isinstance(err, kind))
            raise DataError(f"{path}: after line {reader.line_num}: {reason} ({err})") from None


def read_fer2013(path: str | Path, skip_bad: bool = False) -> Dataset:
    path = find_csv(Path(path), "fer2013")
    skipped = Skipped()
    reject = Rejector(skip_bad, skipped)
    parts: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in USAGES.values()}
    for line, row in csv_rows(path, ("emotion", "pixels", "Usage")):
        where = f"{path}:{line}"
        split = USAGES.get(row["Usage"])
        if split is None:
            reject(f"Usage {row['Usage']!r} is not one of {', '.join(USAGES)}", where)
            continue
        try:
            label = int(row["emotion"])
        except (TypeError, ValueError):
            label = -1
        if not 0 <= label < len(L.FER2013):
            reject(f"emotion {row['emotion']!r} is not an integer 0-6", where)
            continue
        image = _pixels(row["pixels"], where, reject)
        if image is None:
            continue
        images, targets, wheres = parts[split]
        images.append(image)
        targets.append(label)
        wheres.append(where)
    splits = {
        name: Split(name, np.array(t, np.int64), images=_stack(i), where=w)
        for name, (i, t, w) in parts.items()
    }
    return Dataset("fer2013", L.FER2013, splits, "train", "val", "test", skipped, dict(USAGES))


def _pixels(text: str | None, where: str, reject: Rejector) -> np.ndarray | None:
    values = (text or "").split()
    if len(values) != SIDE * SIDE:
        reject(f"pixels has {len(values)} values, expected {SIDE * SIDE} (48×48)", where)
        return None
    try:
        pixels = np.array(values, dtype=np.int64)
    except ValueError:
        bad = next(v for v in values if not v.isdigit())
        reject(f"pixels holds {bad!r}, expected integers 0-255", where)
        return None
    if pixels.min() < 0 or pixels.max() > 255:
        reject("pixels are outside 0-255", where)
        return None
    return pixels.astype(np.uint8).reshape(SIDE, SIDE)


def _stack(images: list[np.ndarray]) -> np.ndarray:
    return np.stack(images) if images else np.empty((0, SIDE, SIDE), np.uint8)


def _votes(base: Dataset, path: Path, votes: str | Path | None):
    """The FER+ vote rows for the FER2013 rows of `base`: (split, position in it, the 10 vote
    counts in FERPLUS_EMOTIONS + unknown + NF order, FER+ found a face, where); vote rows with
    no valid FER2013 row are counted in `base.skipped`."""
    csv_path = find_csv(Path(path), "fer2013")
    votes_path = Path(votes) if votes else find_csv(csv_path.parent, "fer2013new")
    # a vote row matches the FER2013 row on the same line of its file
    at_line = {
        int(w.rsplit(":", 1)[1]): (name, i)
        for name, split in base.splits.items()
        for i, w in enumerate(split.where)
    }
    rows = 0
    for line, row in csv_rows(
        votes_path, ("Usage", "Image name", *FERPLUS_EMOTIONS, "unknown", "NF")
    ):
        rows += 1
        where = f"{votes_path}:{line}"
        if line not in at_line:
            base.skipped.add(f"no matching valid row in {csv_path.name}", where)
            continue
        split, i = at_line[line]
        if USAGES.get(row["Usage"]) != split:
            raise DataError(
                f"{where}: Usage {row['Usage']!r} disagrees with line {line} of {csv_path}; "
                "the votes must be in FER2013 row order"
            )
        try:
            counts = np.array([float(row[c]) for c in (*FERPLUS_EMOTIONS, "unknown", "NF")])
        except (TypeError, ValueError):
            raise DataError(f"{where}: vote counts must be numbers") from None
        yield split, i, counts, bool(row["Image name"].strip()), where
    if rows < len(at_line):
        raise DataError(
            f"{votes_path}: {rows} vote rows for {len(at_line)} images in {csv_path}; "
            "expected one vote row per FER2013 row"
        )


def read_ferplus(
    path: str | Path, skip_bad: bool = False, votes: str | Path | None = None
) -> Dataset:
    """FER+ 8 classes: the FER2013 images with the majority vote of 10 raters as the label and
    the vote distribution in `soft`. Rows FER+ marks as not a face (no image name), rows where
    `unknown`/`NF` win, and rows without a strict majority are left out (counted in `skipped`).
    `path` is the folder with both CSVs or `fer2013.csv`; `votes` defaults to
    `fer2013new.csv` beside it."""
    base = read_fer2013(path, skip_bad)
    keep: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in USAGES.values()}
    skipped = base.skipped
    for split, i, counts, face, where in _votes(base, Path(path), votes):
        if not face:
            skipped.add("not a face (FER+ gives no image name)", where)
            continue
        emotions = counts[:8]
        if counts.argmax() >= 8 or emotions.sum() == 0:
            skipped.add("unknown / not a face wins the vote", where)
            continue
        if emotions.max() * 2 <= emotions.sum():
            skipped.add("no strict majority", where)
            continue
        index, targets, soft = keep[split]
        index.append(i)
        targets.append(int(emotions.argmax()))
        soft.append(emotions / emotions.sum())
    splits = {}
    for name, (index, targets, soft) in keep.items():
        source = base.splits[name].subset(np.array(index, np.int64))
        source.targets = np.array(targets, np.int64)
        source.soft = np.array(soft, np.float32).reshape(-1, 8)
        splits[name] = source
    return Dataset("ferplus", L.FERPLUS, splits, "train", "val", "test", skipped, dict(USAGES))


def read_ferplus7(
    path: str | Path, skip_bad: bool = False, votes: str | Path | None = None
) -> Dataset:
    """FER2013's seven classes, trained on FER+ votes: each training face's targets are the
    raters' votes over the seven FER2013 classes (FER+ names mapped by name; the votes for
    contempt, unknown and not-a-face dropped), and faces FER+ marks as not a face, or with no
    vote among the seven, are left out of training (counted in `skipped`). The validation and
    test splits are FER2013's own, every row with its own label: a model trained here is chosen
    and scored exactly as one trained on `fer2013`, so the two compare on the same PrivateTest.
    `Split.targets` of training faces stay FER2013's labels (the accuracy shown while training)."""
    base = read_fer2013(path, skip_bad)
    column = [L.index_map(FERPLUS_EMOTIONS, L.FER2013)[k] for k in range(len(FERPLUS_EMOTIONS))]
    keep, soft = [], []
    for split, i, counts, face, where in _votes(base, Path(path), votes):
        if split != "train":
            continue
        seven = np.zeros(len(L.FER2013))
        for k, c in enumerate(column):
            if c is not None:
                seven[c] += counts[k]
        if not face or seven.sum() == 0:
            base.skipped.add("not a face, or no vote among the seven classes", where)
            continue
        keep.append(i)
        soft.append(seven / seven.sum())
    train = base.splits["train"].subset(np.array(keep, np.int64))
    train.soft = np.array(soft, np.float32).reshape(-1, len(L.FER2013))
    splits = {**base.splits, "train": train}
    return Dataset(
        "ferplus7", L.FER2013, splits, "train", "val", "test", base.skipped, dict(USAGES)
    )

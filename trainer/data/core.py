"""What every dataset reader returns: a `Dataset` of named `Split`s with labels by name.

Small grey datasets hold their pixels in memory as one uint8 array; datasets of image files hold
paths that are decoded when needed (`Split.decode`). A malformed record raises `DataError`
naming the file and line (or path); with `skip_bad` the reader counts it in `Dataset.skipped`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trainer.files import progress_bar

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm")
EMPTY_IMAGE = "empty image file (0 bytes)"
UNREADABLE_IMAGE = "not a readable image (expected PNG, JPEG, BMP, TIFF or WebP)"


class DataError(ValueError):
    """A dataset file that does not hold what its format promises."""


@dataclass
class Skipped:
    """Records a reader left out under `skip_bad`, counted by reason, with a few examples."""

    counts: dict[str, int] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if len(self.examples) < 10:
            self.examples.append(f"{where}: {reason}")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self, reasons: int = 3) -> str:
        """One line: how many, the most common reasons, and the first record left out."""
        common = sorted(self.counts.items(), key=lambda kv: -kv[1])
        told = ", ".join(f"{reason}: {n}" for reason, n in common[:reasons])
        if len(common) > reasons:
            told += f", {len(common) - reasons} more reasons"
        return f"skipped {self.total} malformed records ({told}); first: {self.examples[0]}"


class Rejector:
    """Raise on a bad record, or count it when the user asked to skip bad records."""

    def __init__(self, skip_bad: bool, skipped: Skipped):
        self.skip_bad, self.skipped = skip_bad, skipped

    def __call__(self, reason: str, where: str) -> None:
        if not self.skip_bad:
            raise DataError(f"{where}: {reason} (use --skip-bad to skip and count such records)")
        self.skipped.add(reason, where)


@dataclass
class Split:
    """One split: uint8 `images` (N×H×W grey or N×H×W×3) or image `paths`, and `targets` indexing
    the dataset's labels. `soft` holds vote distributions where the dataset has them, `groups`
    the subject of each image where known (for subject-independent folds), `where` the record
    each item came from (file and line, or path)."""

    name: str
    targets: np.ndarray
    images: np.ndarray | None = None
    paths: list[Path] | None = None
    soft: np.ndarray | None = None
    groups: np.ndarray | None = None
    where: list[str] | None = None

    def __post_init__(self) -> None:
        if (self.images is None) == (self.paths is None):
            raise ValueError("a split holds either images or paths")
        self.targets = np.asarray(self.targets, dtype=np.int64)
        if len(self) != len(self.targets):
            raise ValueError(
                f"split {self.name}: {len(self)} images but {len(self.targets)} labels"
            )

    def __len__(self) -> int:
        return len(self.images) if self.images is not None else len(self.paths)

    @property
    def in_memory(self) -> bool:
        return self.images is not None

    def subset(self, index: np.ndarray, name: str | None = None) -> Split:
        index = np.asarray(index)
        pick = lambda a: None if a is None else a[index]  # noqa: E731
        return Split(
            name=name or self.name,
            targets=self.targets[index],
            images=pick(self.images),
            paths=None if self.paths is None else [self.paths[i] for i in index],
            soft=pick(self.soft),
            groups=pick(self.groups),
            where=None if self.where is None else [self.where[i] for i in index],
        )

    def decode(self, i: int, channels: int) -> np.ndarray:
        """Item `i` as uint8 H×W (channels 1) or H×W×3 RGB (channels 3)."""
        image = self.images[i] if self.images is not None else read_image(self.paths[i])
        return convert_channels(image, channels)

    def materialize(self, size: int, channels: int, progress: bool = True) -> Split:
        """An in-memory copy with every image decoded and resized to size×size."""
        out = np.empty((len(self), size, size) + (() if channels == 1 else (3,)), np.uint8)
        for i in progress_bar(range(len(self)), desc=f"decode {self.name}", disable=not progress):
            out[i] = resize(self.decode(i, channels), size)
        return Split(
            self.name,
            self.targets,
            images=out,
            soft=self.soft,
            groups=self.groups,
            where=self.where,
        )


@dataclass
class Dataset:
    """A dataset's splits, its label names (the order of `targets`) and the roles of its splits:
    `train` to fit, `val` to choose (epochs, members, thresholds), `test` only to report."""

    name: str
    labels: tuple[str, ...]
    splits: dict[str, Split]
    train: str | None = None
    val: str | None = None
    test: str | None = None
    skipped: Skipped = field(default_factory=Skipped)
    aliases: dict[str, str] = field(default_factory=dict)  # the dataset's own split names

    def key(self, split: str) -> str:
        """The split called `split` (its key, its dataset name, or its role)."""
        split = self.aliases.get(split, split)
        split = {"train": self.train, "val": self.val, "test": self.test}.get(split) or split
        if split not in self.splits:
            names = [*self.splits, *self.aliases]
            raise KeyError(f"dataset {self.name} has no split {split!r}; it has {', '.join(names)}")
        return split

    def describe(self, split: str) -> str:
        """`test (PrivateTest)`: the split's key and, where it differs, the dataset's name."""
        key = self.key(split)
        own = [a for a, k in self.aliases.items() if k == key]
        return f"{key} ({own[0]})" if own else key

    def __getitem__(self, split: str) -> Split:
        return self.splits[self.key(split)]

    def counts(self, split: str) -> dict[str, int]:
        hist = np.bincount(self[split].targets, minlength=len(self.labels))
        return dict(zip(self.labels, hist.tolist(), strict=True))


def read_image(path: Path) -> np.ndarray:
    """An image file as uint8 H×W (grey files) or H×W×3 RGB; a clear error if unreadable."""
    import cv2

    data = np.fromfile(path, dtype=np.uint8) if Path(path).is_file() else None
    if data is None:
        raise DataError(f"{path}: image file is missing")
    if not data.size:
        raise DataError(f"{path}: {EMPTY_IMAGE}")
    try:
        image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    except cv2.error:  # some codecs assert on malformed input instead of returning None
        image = None
    if image is None:
        raise DataError(f"{path}: {UNREADABLE_IMAGE}")
    if image.dtype != np.uint8:  # 16-bit PNG/TIFF
        image = (image / (np.iinfo(image.dtype).max / 255)).astype(np.uint8)
    if image.ndim == 3:
        if image.shape[2] == 1:
            return image[:, :, 0]
        code = cv2.COLOR_BGRA2RGB if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
        image = cv2.cvtColor(image, code)
    return image


def convert_channels(image: np.ndarray, channels: int) -> np.ndarray:
    import cv2

    if channels == 1:
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if image.shape[0] == size and image.shape[1] == size:
        return image
    shrink = image.shape[0] > size
    return cv2.resize(
        image, (size, size), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
    )

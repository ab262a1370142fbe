"""Files the engine writes, checked before any work and written so that nothing is lost.

- `check_outputs` refuses, before a video is processed, two outputs naming one file, an
  output naming an input, a folder, or a place where no file can be created.
- `OutputFile` writes a regular file under `<name>.partial` and gives it its name only when
  complete (`commit`); `discard` removes the partial file, which this run wrote. A path that
  exists and is not a regular file (a device such as /dev/full or /dev/stdout, a FIFO) is
  written through, never replaced; a symlink is followed, so the file it names is written.
- Files get the permissions of any file a program creates (0666 less the umask), not the
  0600 of a temporary file.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path


class OutputError(OSError):
    """An output that cannot be written; the message names it and what was expected."""


def write_failed(path: Path, error: OSError) -> OutputError:
    """`error` (a full disk, a closed pipe…) as one line naming the output."""
    return OutputError(f"{path}: cannot be written ({error.strerror or error}); nothing kept")


def file_mode() -> int:
    """The mode `open()` gives a new file: 0666 less the process's umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def is_special(path: Path) -> bool:
    """An existing path (symlinks followed) that is neither a regular file nor a folder."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def check_outputs(
    outputs: dict[str, str | Path | None],
    inputs: Iterable[str | Path] = (),
    regular_only: Iterable[str] = (),
) -> None:
    """Raise `OutputError` for the first output (by its flag) that cannot be written:
    `outputs` maps flags to paths (None: not asked for); `regular_only` names the flags whose
    file must be a regular file (a video needs to seek)."""
    seen: dict[Path, str] = {Path(p).resolve(): "the input" for p in inputs}
    regular = set(regular_only)
    for flag, value in outputs.items():
        if value is None:
            continue
        path = Path(value)
        where = path.resolve()
        if where in seen:
            raise OutputError(
                f"{flag} {path}: {seen[where]} names this file too; give each output its own file"
            )
        seen[where] = flag
        if path.is_dir():
            raise OutputError(f"{flag} {path}: is a folder; expected a file name in it")
        if is_special(path):
            if flag in regular:
                raise OutputError(f"{flag} {path}: not a regular file; expected a file name")
            if not os.access(path, os.W_OK):
                raise OutputError(f"{flag} {path}: cannot be written (permission denied)")
            continue
        _check_creatable(f"{flag} {path}", where.parent)


def _check_creatable(what: str, folder: Path) -> None:
    """Create (and remove) a file in `folder`, creating the folder if needed: the one test
    that also holds for root and read-only mounts."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".fer-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise OutputError(
            f"{what}: no file can be created in {folder} ({error.strerror or error}); "
            "choose a writable folder"
        ) from None


class OutputFile:
    """One output: `stream` is the open binary file to write; `commit()` makes it final,
    `discard()` drops what this run wrote."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.through = is_special(self.path)
        if self.through:
            self.target = self.partial = self.path
            self.stream = open(self.path, "wb", buffering=0 if self.path.is_char_device() else -1)  # noqa: SIM115
            return
        self.target = self.path.resolve()  # a symlink's file is written, the link stays
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.partial = partial_name(self.target)
        self.stream = open(self.partial, "wb")  # noqa: SIM115

    def commit(self) -> None:
        """Flush to disk and give the file its name (errors such as a full disk raise)."""
        if self.stream.closed:
            return
        try:
            self.stream.flush()
            if not self.through:
                os.fsync(self.stream.fileno())
        except OSError as error:
            self.discard()
            raise write_failed(self.path, error) from None
        self.stream.close()
        if not self.through:
            os.replace(self.partial, self.target)

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # the flush of a failed file fails again
            self.stream.close()
        if not self.through:
            self.partial.unlink(missing_ok=True)


def partial_name(path: Path) -> Path:
    """Where `path` is written until complete: `a.csv` → `a.csv.partial`, `a.mp4` →
    `a.partial.mp4` (a video writer picks its container by the suffix)."""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return path.with_name(f"{path.stem}.partial{path.suffix}")
    return path.with_name(path.name + ".partial")


VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".mov", ".m4v")


def write_bytes(path: str | Path, data: bytes) -> Path:
    """`data` as the whole file `path`, atomically (or through, for a device or a FIFO)."""
    out = OutputFile(path)
    try:
        out.stream.write(data)
    except OSError as error:
        out.discard()
        raise write_failed(out.path, error) from None
    out.commit()
    return out.path

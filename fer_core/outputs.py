"""Files the engine writes, checked before any work and written so that nothing is lost.

- `check_outputs` refuses, before a video is processed, two outputs naming one file, an
  output naming an input or a file in an input folder, an input or an output that is another
  output's partial name (`rec.partial.mp4` for `--out rec.mp4`), a folder, or a place where
  no file can be created.
- `OutputFile` writes a regular file under a partial name of its own (`<name>.<pid>-<token>
  .partial`, created exclusively: a file or symlink already there is never written through,
  and two runs writing one output never share one) and gives it its name only when complete
  (`commit`); `discard` removes the partial file only while it is still the one this process
  created. A path that exists and is not a regular file (a device such as /dev/full or
  /dev/stdout, a FIFO) is written through, never replaced; a symlink is followed, so the file
  it names is written. `-` (`STDOUT`) is the process's standard output, written through.
- Files get the permissions of any file a program creates (0666 less the umask), not the
  0600 of a temporary file.
- `stops_as_interrupts`: a SIGTERM (kill, timeout, a scheduler) or a SIGHUP (a closed
  terminal) ends a command as Ctrl-C does, by a KeyboardInterrupt, so what cleans up after
  Ctrl-C (partial files removed, one line said, status 2) runs for them too.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

STDOUT = "-"  # an output named so is written to standard output


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
    sources = [Path(p).resolve() for p in inputs]
    seen: dict[Path, str] = {where: "the input" for where in sources}
    regular = set(regular_only)
    for flag, value in outputs.items():
        if value is None:
            continue
        path = Path(value)
        where = path.resolve()
        if str(value) == STDOUT:
            if flag in regular:
                raise OutputError(f"{flag} -: needs a file it can seek in, not standard output; "
                                  "give a file name")  # fmt: skip
            where = Path("/dev/stdout").resolve()  # as another output naming it resolves
        if where in seen:
            raise OutputError(
                f"{flag} {path}: {seen[where]} names this file too; give each output its own file"
            )
        for source in sources:
            if source.is_dir() and where.is_relative_to(source):
                raise OutputError(
                    f"{flag} {path}: inside the input folder {source}; choose a file outside it"
                )
        # a partial name belongs to its output's writer, which renames it over the output
        for other, owner in seen.items():
            if is_partial_of(other, where):
                raise OutputError(
                    f"{flag} {path}: {owner} {other.name} is this output's partial name (where "
                    f"it is written until complete); give {flag} another name"
                )
            if is_partial_of(where, other):
                raise OutputError(
                    f"{flag} {path}: the partial name of {owner} {other.name}; give each output "
                    "its own file"
                )
        seen[where] = flag
        if str(value) == STDOUT:
            continue
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


class PartialFile:
    """A file this process creates beside `target` to write it in: `<name>.<pid>-<token>
    .partial` (`<stem>.<pid>-<token>.partial.mp4` for a video), created with O_EXCL and
    O_NOFOLLOW, so whatever is already there (a user's file, a planted symlink, another run's
    partial file) is neither written nor deleted. `fd` is its open descriptor."""

    def __init__(self, target: Path):
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        while True:
            self.path = partial_name(target, f"{os.getpid()}-{secrets.token_hex(4)}")
            try:
                self.fd = os.open(self.path, flags, 0o666)  # the umask applies, as for open()
                break
            except FileExistsError:
                continue  # the token was taken: draw another
        created = os.fstat(self.fd)
        self._id = (created.st_dev, created.st_ino)

    def ours(self) -> bool:
        """Whether the name still holds the file this process created."""
        try:
            now = os.lstat(self.path)
        except OSError:
            return False
        return (now.st_dev, now.st_ino) == self._id

    def rename(self, target: Path) -> None:
        if not self.ours():
            raise OutputError(f"{target}: its partial file {self.path} was replaced; nothing kept")
        os.replace(self.path, target)

    def remove(self) -> None:
        if self.ours():
            self.path.unlink(missing_ok=True)


class OutputFile:
    """One output: `stream` is the open binary file to write; `commit()` makes it final,
    `discard()` drops what this run wrote."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if str(path) == STDOUT:
            self.through = True
            self.target = self.partial = self.path
            self.stream = os.fdopen(os.dup(1), "wb")  # its own descriptor: closing keeps fd 1
            return
        self.through = is_special(self.path)
        if self.through:
            self.target = self.partial = self.path
            self.stream = open(self.path, "wb", buffering=0 if self.path.is_char_device() else -1)  # noqa: SIM115
            return
        self.target = self.path.resolve()  # a symlink's file is written, the link stays
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self._own = PartialFile(self.target)
        self.partial = self._own.path
        self.stream = os.fdopen(self._own.fd, "wb")

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
            self._own.rename(self.target)

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # the flush of a failed file fails again
            self.stream.close()
        if not self.through:
            self._own.remove()


def partial_name(path: Path, tag: str = "") -> Path:
    """Where `path` is written until complete: `a.csv` → `a.csv.<tag>.partial`, `a.mp4` →
    `a.<tag>.partial.mp4` (a video writer picks its container by the suffix); without a tag,
    `a.csv.partial` and `a.partial.mp4`."""
    tag = f".{tag}" if tag else ""
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return path.with_name(f"{path.stem}{tag}.partial{path.suffix}")
    return path.with_name(f"{path.name}{tag}.partial")


def is_partial_of(candidate: Path, target: Path) -> bool:
    """Whether `candidate` is a name `target` may be written under until complete, with or
    without a tag (either form: an `--out` without a suffix is written as `.partial.mp4`)."""
    if candidate.parent != target.parent:
        return False
    tag = r"(\.[0-9]+-[0-9a-f]+)?"
    forms = (
        re.escape(target.name) + tag + r"\.partial",
        re.escape(target.stem) + tag + r"\.partial" + re.escape(target.suffix or ".mp4"),
    )
    return any(re.fullmatch(form, candidate.name) for form in forms)


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


# Ctrl-C, a kill / timeout / scheduler, a closed terminal: each stops a command the same way
STOPS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_handled(signals: tuple[int, ...], handler: Callable) -> Iterator[None]:
    """Run the block with `handler` for `signals`, the previous handlers restored after. A
    signal the process ignores stays ignored (`nohup` ignores SIGHUP, a shell ignores SIGINT
    in a background job). Python takes signals in the main thread only, so elsewhere the block
    runs as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = [s for s in signals if signal.getsignal(s) is not signal.SIG_IGN]
    previous = [signal.signal(s, handler) for s in taken]
    try:
        yield
    finally:
        for s, earlier in zip(taken, previous, strict=True):
            signal.signal(s, earlier)


def raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def stops_as_interrupts() -> contextlib.AbstractContextManager[None]:
    """The block with SIGTERM and SIGHUP raising KeyboardInterrupt, as Ctrl-C does."""
    return signals_handled((signal.SIGTERM, signal.SIGHUP), raise_interrupt)

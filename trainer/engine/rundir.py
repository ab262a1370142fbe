"""A run folder claimed for one run: checked before the first epoch (a folder that cannot be
written, or a nearly full disk, is found now rather than when the first checkpoint is saved),
and locked so that a second run into the same `--out` is refused instead of overwriting the
first one's checkpoints."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

MIN_FREE = 64 * 2**20  # room for a few checkpoints of the project's models
LOCK = ".lock"  # left in place on exit: removing a lock file races with the next claimant
# What a run writes into its folder: a new run would overwrite them. best.pt and metrics.csv are
# saved before last.pt, so a run killed between the saves leaves them without a last.pt.
RUN_FILES = ("last.pt", "best.pt", "metrics.csv")


class RunDirError(ValueError):
    """A run folder that cannot be used: not writable, too full, taken, or already a run."""


@contextlib.contextmanager
def claim_run_dir(out: Path, *, resume: bool) -> Iterator[Path]:
    """Create `out` if needed, check it is a writable folder (write and remove a probe file,
    and check free space ≥ 64 MiB), take an exclusive non-blocking fcntl lock on out/.lock
    held until exit (a second run into the same folder gets RunDirError naming the folder
    and saying another run holds it); for a new run (resume False) refuse a folder that
    already holds a run's files (RunDirError naming the file: --resume needs last.pt, or
    another --out)."""
    out = Path(out)
    _check_writable(out)
    _check_free_space(out)
    fd = _lock(out)
    try:
        if not resume:
            _check_no_run(out)
        yield out
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def check_run_dir(out: Path, *, resume: bool) -> None:
    """What `claim_run_dir` checks (a writable folder with room, no other run's files for a
    new run), for a verb to call before it reads its data: a read-only or full disk is told in
    seconds, not after the dataset is read. A folder not made yet is not made here: its
    nearest existing parent is checked."""
    out = Path(out)
    base = next(p for p in (out, *out.parents) if p.exists())
    _check_writable(base, out)
    _check_free_space(base)
    if not resume and base == out:
        _check_no_run(out)


def _check_no_run(out: Path) -> None:
    for name in RUN_FILES:
        if os.path.lexists(out / name):
            if name == "last.pt":
                raise RunDirError(
                    f"{out}: already holds a run (last.pt); use --resume or another --out"
                )
            raise RunDirError(
                f"{out}: already holds a run's {name} but no last.pt to --resume from; use "
                "another --out (or move the old run's files away)"
            )


def _check_writable(out: Path, named: Path | None = None) -> None:
    """Create `out` if needed and a probe file in it; errors name `named` (the run folder)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        # a new file of a unique name (O_EXCL): nothing already in the folder is written
        fd, probe = tempfile.mkstemp(dir=out, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        what = named or out
        raise RunDirError(f"{what}: not a writable folder ({err.strerror or err})") from None


def _check_free_space(out: Path) -> None:
    free = shutil.disk_usage(out).free
    if free < MIN_FREE:
        raise RunDirError(
            f"{out}: only {free / 2**20:.1f} MiB free on its disk; a run needs at least "
            f"{MIN_FREE // 2**20} MiB"
        )


def _lock(out: Path) -> int:
    """An open descriptor of out/.lock holding an exclusive flock (per open file, so a second
    claim is refused even from the same process), with the holder's pid written in it. The
    pid is written into the lock file itself only: a symlink there is not followed, and a
    hard link or anything but a regular file is refused, or the pid would overwrite the
    file it names."""
    path = out / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
    except OSError as err:
        if err.errno != errno.ELOOP:
            raise
        raise RunDirError(
            f"{path}: a symbolic link; expected the run's own lock file (remove the link)"
        ) from None
    found = os.fstat(fd)
    if not stat.S_ISREG(found.st_mode) or found.st_nlink != 1:
        os.close(fd)
        what = "a hard link" if stat.S_ISREG(found.st_mode) else "not a regular file"
        raise RunDirError(f"{path}: {what}; expected the run's own lock file (remove it)")
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunDirError(
            f"{out}: another run (pid {holder}) holds this folder; wait for it to finish or "
            "use another --out"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd

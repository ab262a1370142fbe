"""Files the trainer writes: atomically (a temp file beside the target, then a rename), so an
interrupted write never leaves a truncated file under the final name, with the permissions of
any other file the user creates (mkstemp's 0600 relaxed to the umask's default); a device or a
FIFO (`--out /dev/stdout`) is written through as `analyze` does, never replaced; and the signal
handling that keeps an interrupted verb's files whole (and its progress bars whole)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from fer_core.outputs import STOPS, file_mode, is_special, signals_handled

__all__ = ["atomic_write", "interrupts_deferred", "progress_bar", "save_torch", "signals_handled"]


def atomic_write(path: str | Path, write: Callable[[str], object]) -> Path:
    """Call `write(tmp_path)`, then rename the temp file over `path`; for a device or a FIFO,
    `write(path)`: a rename would put a regular file in the node's place."""
    path = Path(path)
    if is_special(path):
        write(str(path))
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def save_torch(obj: object, path: str | Path) -> Path:
    """`torch.save(obj)` as the file `path`, written whole (`atomic_write`). Saved through a
    Python file, so a failed write (a full disk) raises the system's OSError naming `path` (one
    line, status 2, and the run still resumes from its last whole last.pt); torch given a
    name raises a RuntimeError instead ("PytorchStreamWriter failed writing file")."""
    import torch

    def write(tmp: str) -> None:
        try:
            with open(tmp, "wb") as f:
                torch.save(obj, f)
        except OSError as error:
            raise OSError(error.errno, error.strerror, str(path)) from None

    return atomic_write(path, write)


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold a Ctrl-C (or a SIGTERM, a SIGHUP) until the block ends, then raise it: what the
    block moves is never left half moved, and what it builds (a progress bar) is never left
    half built."""
    caught = []
    with signals_handled(STOPS, lambda signum, _: caught.append(signum)):
        yield
    if caught:
        raise KeyboardInterrupt


def progress_bar(*args, **kwargs):
    """A tqdm bar built with interrupts held: a Ctrl-C or SIGTERM inside tqdm's __init__ leaves
    a half-built bar whose __del__ prints a traceback after the one-line message."""
    from tqdm import tqdm

    with interrupts_deferred():
        return tqdm(*args, **kwargs)

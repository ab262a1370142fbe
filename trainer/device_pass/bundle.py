"""What comes back from the device (the runs' small files and logs, then each job's `last.pt`
when it did not finish, else its `best.pt`) as one tar in parts within the cap, and its safe
extraction into the tree here."""

from __future__ import annotations

import io
import json
import math
import os
import re
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from trainer.device_pass.common import MAX_BACK_FILES, MAX_BACK_PART_MIB, MIB, Say, say
from trainer.files import atomic_write

BUNDLE = "bundle.tar"


def _tar_size(size: int) -> int:
    """Bytes a file takes in a pax tar: its header and an extended header (the float mtime, a
    long name), its data padded to 512-byte blocks."""
    return 512 + 1536 + -(-size // 512) * 512


def read_rc(path: str | Path) -> dict[str, bool]:
    """Job name → finished (status 0), from `run`'s rc.json (or an older pass's `NAME STATUS`
    lines)."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise ValueError(f"--rc {path}: {err.strerror or err}") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = {f[0]: f[1] for f in (line.split() for line in text.splitlines()) if len(f) >= 2}
    if not isinstance(data, dict):
        raise ValueError(f"--rc {path}: expected a JSON object of jobs")
    finished = {}
    for name, value in data.items():
        rc = value.get("rc") if isinstance(value, dict) else value
        finished[name] = str(rc) == "0" and (
            not isinstance(value, dict) or value.get("status", "ok") == "ok"
        )
    return finished


def select_bundle(
    runs: str | Path,
    jobs: dict[str, str],
    finished: dict[str, bool] | None,
    logs: str | Path | None,
    limit: int,
    root: str | Path = ".",
) -> tuple[list[Path], list[Path]]:
    """(chosen, left out), in the order they were considered: the job folders' and the logs'
    files other than checkpoints; then per job its `last.pt` when it did not finish (to continue
    it), else its `best.pt`; then the other of the two; then any other checkpoint — each while
    the tar stays within `limit` bytes. Without `finished`, every job counts as finished."""
    runs, root = Path(runs), Path(root).resolve()
    folders = []
    for job, folder in jobs.items():
        path = runs / folder
        if not path.is_dir():
            raise ValueError(f"--job {job}={folder}: {path} is not a folder")
        folders.append((job, path))
    small = [
        f
        for d in [*(p for _, p in folders), *([Path(logs)] if logs else [])]
        for f in sorted(d.rglob("*"))
        if f.is_file() and not f.is_symlink() and f.suffix != ".pt"
    ]
    first, second = [], []
    for job, path in folders:
        done = True if finished is None else finished.get(job, False)
        order = ("best.pt", "last.pt") if done else ("last.pt", "best.pt")
        present = [path / n for n in order if (path / n).is_file()]
        first += present[:1]
        second += present[1:]
    rest = [
        f for _, p in folders for f in sorted(p.rglob("*.pt")) if f.is_file() and not f.is_symlink()
    ]
    chosen, left_out, seen, total = [], [], set(), 1024 + 10240  # the tar's end blocks
    for f in [*small, *first, *second, *rest]:
        key = f.resolve()
        if key in seen:
            continue
        seen.add(key)
        if not key.is_relative_to(root):
            raise ValueError(f"{f}: outside {root}, the tree the bundle is restored into")
        cost = _tar_size(f.stat().st_size)
        if total + cost <= limit:
            chosen.append(f)
            total += cost
        else:
            left_out.append(f)
    return chosen, left_out


class _SplitWriter(io.RawIOBase):
    """A write-only stream cut into files `base`.00, `base`.01, … of `part` bytes each."""

    def __init__(self, base: Path, part: int):
        self.base, self.part, self.files, self.current, self.used = base, part, [], None, 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        done = 0
        while done < len(view):
            if self.current is None or self.used == self.part:
                if self.current is not None:
                    self.current.close()
                path = Path(f"{self.base}.{len(self.files):02d}")
                self.files.append(path)
                self.current, self.used = open(path, "wb"), 0  # noqa: SIM115 (close())
            n = min(len(view) - done, self.part - self.used)
            self.current.write(view[done : done + n])
            self.used += n
            done += n
        return done

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None
        super().close()


def bundle(
    out: str | Path,
    runs: str | Path,
    jobs: dict[str, str],
    rc: str | Path | None = None,
    logs: str | Path | None = None,
    limit_mib: float = 62.0,
    part_mib: float = 15.0,
    root: str | Path = ".",
    say: Say = say,
) -> tuple[list[Path], list[Path], list[Path]]:
    """What comes back (see `select_bundle`; the logs default to the rc file's folder) as one
    tar, its names relative to `root`, split into `out`/bundle.tar.NN parts of `part_mib` MiB.
    Returns (parts, chosen, left out)."""
    if part_mib > MAX_BACK_PART_MIB:
        raise ValueError(f"--part-mib {part_mib}: the device brings back files of 16 MiB at most")
    count = math.ceil(limit_mib / part_mib)
    if count > MAX_BACK_FILES:
        raise ValueError(
            f"--limit-mib {limit_mib} in parts of --part-mib {part_mib} makes {count} files; "
            f"the device brings back {MAX_BACK_FILES} at most"
        )
    out, root = Path(out), Path(root)
    finished = read_rc(rc) if rc else None
    if logs is None and rc:
        logs = Path(rc).parent
    chosen, left_out = select_bundle(runs, jobs, finished, logs, int(limit_mib * MIB), root)
    out.mkdir(parents=True, exist_ok=True)
    stale = sorted(out.glob(f"{BUNDLE}.*"))
    if stale:
        raise ValueError(f"--out {out}: already holds {stale[0].name}")
    writer = _SplitWriter(out / BUNDLE, int(part_mib * MIB))
    with writer, tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for f in chosen:
            tar.add(f, arcname=f.resolve().relative_to(root.resolve()).as_posix(), recursive=False)
    total = sum(p.stat().st_size for p in writer.files)
    say(f"bundle: {len(chosen)} files, {total / MIB:.1f} MiB in {len(writer.files)} parts "
        f"({writer.files[0].name} …) in {out}")  # fmt: skip
    for f in left_out:
        say(f"left out {f} ({f.stat().st_size / MIB:.1f} MiB)")
    return writer.files, chosen, left_out


class _ChainReader(io.RawIOBase):
    """The parts read one after another as one stream."""

    def __init__(self, paths: list[Path]):
        self.paths, self.current = list(paths), None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while True:
            if self.current is None:
                if not self.paths:
                    return 0
                self.current = open(self.paths.pop(0), "rb")  # noqa: SIM115 (close())
            n = self.current.readinto(buffer)
            if n:
                return n
            self.current.close()
            self.current = None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
        super().close()


def _ordered_parts(parts: list[str | Path]) -> list[Path]:
    """The parts in their numbered order, none missing in between."""
    paths = [Path(p) for p in parts]
    for p in paths:
        if not p.is_file():
            raise ValueError(f"{p}: no such file")
    numbered = [re.fullmatch(r"(.*)\.(\d+)", p.name) for p in paths]
    if not all(numbered):
        return paths
    ordered = sorted(zip(paths, numbered, strict=True), key=lambda x: int(x[1].group(2)))
    numbers = [int(m.group(2)) for _, m in ordered]
    if numbers != list(range(len(numbers))):
        missing = next(i for i in range(len(numbers) + 1) if i not in numbers)
        raise ValueError(f"part .{missing:02d} of {ordered[0][1].group(1)} is missing")
    return [p for p, _ in ordered]


def _members(paths: list[Path]) -> Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]:
    try:
        with _ChainReader(paths) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                yield tar, member
    except (tarfile.TarError, EOFError) as err:
        raise ValueError(f"{paths[0]}…: not a whole tar ({err}); a part missing?") from None


def _check_member(member: tarfile.TarInfo, where: str) -> PurePosixPath:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")):
        raise ValueError(f"{where}: refused {member.name!r}: an absolute path")
    if ".." in name.parts:
        raise ValueError(f"{where}: refused {member.name!r}: a path with '..'")
    if not (member.isfile() or member.isdir()):
        raise ValueError(f"{where}: refused {member.name!r}: not a plain file or folder (a link?)")
    if not name.parts or name == PurePosixPath("."):
        raise ValueError(f"{where}: refused an empty name")
    return name


def _destination(root: Path, member: tarfile.TarInfo, where: str) -> Path:
    """Where a checked member goes in `root`: refused when it would land outside it (through a
    link in the tree) or a file and a folder would swap."""
    dest = root.joinpath(*_check_member(member, where).parts)
    real_root = root.resolve()
    if dest.is_symlink() or not dest.resolve().is_relative_to(real_root):
        raise ValueError(f"{where}: refused {member.name!r}: it leads outside {root}")
    if member.isfile() and dest.is_dir():
        raise ValueError(f"{where}: refused {member.name!r}: a folder in {root}")
    if member.isdir() and dest.exists() and not dest.is_dir():
        raise ValueError(f"{where}: refused {member.name!r}: a file in {root}")
    return dest


def restore(
    parts: list[str | Path], into: str | Path = ".", force: bool = False, say: Say = say
) -> tuple[list[Path], list[Path]]:
    """Join the bundle's parts and extract it into `into`: only plain files and folders with
    relative names inside it; a file in the tree newer than the archive's copy is kept unless
    `force`. Every member is checked before anything is written. Returns (written, kept)."""
    if not parts:
        raise ValueError("restore: give the bundle's parts")
    paths = _ordered_parts(parts)
    root = Path(into)
    if not root.is_dir():
        raise ValueError(f"--into {root}: not a folder")
    where = str(paths[0])
    for _, member in _members(paths):
        _destination(root, member, where)
    written, kept = [], []
    for tar, member in _members(paths):
        dest = _destination(root, member, where)
        if member.isdir():
            dest.mkdir(parents=True, exist_ok=True)
            continue
        if dest.exists() and dest.stat().st_mtime > member.mtime and not force:
            kept.append(dest)
            say(f"kept {dest}: newer than the bundle's copy (--force to overwrite)")
            continue
        source = tar.extractfile(member)

        def write(tmp: str, source=source) -> None:
            with open(tmp, "wb") as f:
                shutil.copyfileobj(source, f, MIB)

        atomic_write(dest, write)
        os.utime(dest, (member.mtime, member.mtime))
        written.append(dest)
        say(f"wrote {dest} ({member.size / MIB:.2f} MiB)")
    say(f"restored {len(written)} files into {root}, kept {len(kept)}")
    return written, kept

"""`python -m trainer device-pass STEP`: prepare, run and bring back a pass on a lent GPU machine.

Such a machine gets a copy of the working tree (at most 64 MiB), runs one shell command of at
most 10 minutes, and brings back at most 8 files of 16 MiB (64 MiB in all) from `$OUT`. The
steps, in the order a pass uses them:

- `slim` / `unslim`: move the tree's large files (tracked, or untracked and not ignored) into a
  stash outside it, so that what travels stays under the cap, and back afterwards;
- `pack` / `unpack`: FER2013 as lossless WebP faces in npz parts small enough to travel (over
  two calls when needed), rebuilt there into the original CSV, byte for byte (its SHA-256 is
  checked);
- `run`: trainer commands side by side under one time budget, each stopped (SIGTERM, which the
  trainer takes as Ctrl-C and leaves a resumable `last.pt`, then SIGKILL) before it runs out;
- `bundle` / `restore`: what comes back (the runs' small files and logs, then each job's
  `last.pt` when it did not finish, else its `best.pt`) as one tar in parts within the cap, and
  its safe extraction into the tree here.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import gzip
import hashlib
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from trainer.files import atomic_write

MIB = 2**20
MANIFEST = "manifest.json"
HEADER = "emotion,pixels,Usage"
FERPLUS = "fer2013new.csv"
SIDE = 48
PART_OVERHEAD = 4096  # an npz part's zip and npy headers, well above what they take
ROW_OVERHEAD = 6  # a face's emotion (uint8), usage code (uint8) and length (uint32)
BUNDLE = "bundle.tar"
MAX_BACK_FILES = 8  # what the device brings back from $OUT: 8 files of 16 MiB at most
MAX_BACK_PART_MIB = 16
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

Say = Callable[[str], None]


def _say(text: str) -> None:
    print(text, flush=True)


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(MIB), b""):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------
# pack / unpack


def find_csv(data: str | Path) -> Path:
    """The FER2013 file `data` names: a .csv or .csv.gz, or a folder holding one."""
    data = Path(data)
    if data.is_dir():
        for name in ("fer2013.csv", "fer2013.csv.gz"):
            if (data / name).is_file():
                return data / name
        raise ValueError(f"{data}: holds neither fer2013.csv nor fer2013.csv.gz")
    if not data.is_file():
        raise ValueError(f"{data}: no such file or folder")
    return data


def _open_csv(path: Path):
    """The file's uncompressed bytes as a binary stream (gzip told by its magic number)."""
    with open(path, "rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gzipped else open(path, "rb")


_PIXEL_TEXT = [str(v) for v in range(256)]


def _row_text(emotion: int, pixels, usage: str) -> str:
    """One row as FER2013 writes it (`pixels`: a flat uint8 array)."""
    return f"{emotion},{' '.join([_PIXEL_TEXT[v] for v in pixels.tolist()])},{usage}"


def _parse_row(line: str, where: str):
    """(emotion, 48×48 uint8 face, usage) of a row whose text `_row_text` rebuilds exactly."""
    import numpy as np

    fields = line.split(",")
    if len(fields) != 3:
        raise ValueError(f"{where}: expected emotion,pixels,Usage, got {len(fields)} fields")
    emotion, pixels, usage = fields
    if not emotion.isdigit() or not 0 <= int(emotion) <= 255:
        raise ValueError(f"{where}: emotion {emotion!r} is not an integer from 0 to 255")
    try:
        with warnings.catch_warnings():  # numpy warns of text it stops at (later: ValueError)
            warnings.simplefilter("error", DeprecationWarning)
            values = np.fromstring(pixels, dtype=np.int32, sep=" ")
    except (ValueError, DeprecationWarning):
        values = None
    if values is None or values.size != SIDE * SIDE or values.min() < 0 or values.max() > 255:
        raise ValueError(f"{where}: expected {SIDE * SIDE} pixel values from 0 to 255")
    face = values.astype(np.uint8)
    if _row_text(int(emotion), face, usage) != line:
        raise ValueError(
            f"{where}: not written as `unpack` would rebuild it (leading zeros, extra spaces?), "
            "so it could not come back byte for byte"
        )
    return int(emotion), face.reshape(SIDE, SIDE), usage


def _encode(face, where: str) -> bytes:
    """A face as lossless WebP, checked to decode back to the same pixels."""
    import cv2

    ok, buf = cv2.imencode(".webp", face, [cv2.IMWRITE_WEBP_QUALITY, 101])  # > 100: lossless
    back = cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE) if ok else None
    if back is None or back.shape != face.shape or (back != face).any():
        raise ValueError(f"{where}: the face does not survive lossless WebP")
    return buf.tobytes()


def _write_part(path: Path, emotions, usages, blobs, usage_names) -> None:
    import numpy as np

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            np.savez(
                f,
                emotion=np.array(emotions, np.uint8),
                usage=np.array([usage_names.index(u) for u in usages], np.uint8),
                usages=np.array(usage_names),
                lengths=np.array([len(b) for b in blobs], np.uint32),
                data=np.frombuffer(b"".join(blobs), np.uint8),
            )

    atomic_write(path, write)


def pack(data: str | Path, out: str | Path, part_mib: float = 15.0, say: Say = _say) -> dict:
    """FER2013 (`data`: csv, csv.gz or their folder) → `out`/fer2013-NN.npz parts, each under
    `part_mib` MiB, and `out`/manifest.json; FER+'s fer2013new.csv beside it is copied as it
    is when it fits in a part. The parts are read back and must rebuild the original text."""
    source = find_csv(data)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"--out {out}: exists and is not an empty folder")
    limit = int(part_mib * MIB)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        try:
            return _pack(source, out, limit, part_mib, say)
        except (EOFError, gzip.BadGzipFile, zlib.error) as err:
            raise ValueError(f"{source}: damaged ({err})") from None
    except BaseException:  # the folder was new or empty: what is in it is this pack's
        for f in out.iterdir():
            f.unlink()
        if created:
            out.rmdir()
        raise


def _pack(source: Path, out: Path, limit: int, part_mib: float, say: Say) -> dict:
    digest, total_bytes, rows = hashlib.sha256(), 0, 0
    parts: list[dict] = []
    usage_names: list[str] = []
    emotions, usages, blobs, size = [], [], [], PART_OVERHEAD
    newline, final_newline = b"\n", True

    def flush() -> None:
        nonlocal emotions, usages, blobs, size
        name = f"fer2013-{len(parts):02d}.npz"
        _write_part(out / name, emotions, usages, blobs, usage_names)
        written = (out / name).stat().st_size
        if written > limit:  # the estimate is generous; this would be a bug
            raise ValueError(f"{out / name}: {written} bytes, over --part-mib {part_mib}")
        parts.append({"name": name, "rows": len(blobs), "bytes": written})
        say(f"{out / name}: {len(blobs)} faces, {written / MIB:.2f} MiB")
        emotions, usages, blobs, size = [], [], [], PART_OVERHEAD

    with _open_csv(source) as f:
        for number, raw in enumerate(f, 1):
            digest.update(raw)
            total_bytes += len(raw)
            where = f"{source} line {number}"
            if number == 1:
                newline = b"\r\n" if raw.endswith(b"\r\n") else b"\n"
            if raw.endswith(newline):
                body = raw[: -len(newline)]
            elif raw.endswith(b"\n"):
                raise ValueError(f"{where}: line ending differs from the header's")
            else:
                body, final_newline = raw, False
            try:
                line = body.decode("ascii")
            except UnicodeDecodeError:
                raise ValueError(f"{where}: not ASCII text") from None
            if number == 1:
                if line != HEADER:
                    raise ValueError(f"{source}: header {line[:60]!r} is not {HEADER!r}")
                continue
            emotion, face, usage = _parse_row(line, where)
            if usage not in usage_names:
                if len(usage_names) == 255:
                    raise ValueError(f"{where}: more than 255 Usage values")
                usage_names.append(usage)
            blob = _encode(face, where)
            cost = ROW_OVERHEAD + len(blob)
            names = sum(4 * len(n) for n in usage_names)  # the Usage names, as numpy's unicode
            if PART_OVERHEAD + names + cost > limit:
                raise ValueError(f"--part-mib {part_mib}: too small for one face ({cost} bytes)")
            if size + names + cost > limit:
                flush()
            emotions.append(emotion)
            usages.append(usage)
            blobs.append(blob)
            size += cost
            rows += 1
    if rows == 0:
        raise ValueError(f"{source}: holds no faces")
    flush()
    for part in parts:
        part["sha256"] = _sha256_file(out / part["name"])
    extras = []
    ferplus = source.parent / FERPLUS
    if ferplus.is_file():
        if ferplus.stat().st_size <= limit:
            shutil.copyfile(ferplus, out / FERPLUS)
            extras.append(
                {"name": FERPLUS, "bytes": ferplus.stat().st_size, "sha256": _sha256_file(ferplus)}
            )
        else:
            say(f"left out {ferplus}: larger than --part-mib {part_mib}")
    manifest = {
        "format": "fer2013 as lossless WebP in npz parts, 1",
        "source": source.name,
        "rows": rows,
        "bytes": total_bytes,
        "sha256": digest.hexdigest(),
        "newline": newline.decode(),
        "final_newline": final_newline,
        "parts": parts,
        "extras": extras,
    }
    text = json.dumps(manifest, indent=2) + "\n"
    atomic_write(out / MANIFEST, lambda tmp: Path(tmp).write_text(text))
    check = hashlib.sha256()
    for chunk in _rebuilt_text(manifest, [out]):
        check.update(chunk)
    if check.hexdigest() != manifest["sha256"]:
        raise ValueError(f"{out}: the parts do not rebuild {source} (a bug: please report it)")
    say(
        f"packed {rows} faces of {source} ({total_bytes / MIB:.1f} MiB of text) into "
        f"{len(parts)} parts, {sum(p['bytes'] for p in parts) / MIB:.1f} MiB, in {out}; "
        f"sha256 {manifest['sha256']}"
    )
    return manifest


def read_manifest(dirs: list[Path]) -> tuple[Path, dict]:
    for d in dirs:
        if (d / MANIFEST).is_file():
            path = d / MANIFEST
            try:
                manifest = json.loads(path.read_text())
                _ = manifest["sha256"], manifest["parts"], manifest["rows"]
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}: not a manifest written by pack") from None
            return path, manifest
    raise ValueError(f"no {MANIFEST} in {', '.join(map(str, dirs))}")


def _find_part(entry: dict, dirs: list[Path], manifest_path: Path) -> Path:
    """The part named in the manifest, in whichever folder holds it, checked whole."""
    name = entry["name"]
    if Path(name).name != name:
        raise ValueError(f"{manifest_path}: part name {name!r} is not a plain file name")
    for d in dirs:
        if (d / name).is_file():
            path = d / name
            if "sha256" in entry and _sha256_file(path) != entry["sha256"]:
                raise ValueError(f"{path}: differs from the part {manifest_path} names")
            return path
    where = ", ".join(map(str, dirs))
    raise ValueError(f"part {name} of {manifest_path} is missing: in none of {where}")


def _rebuilt_text(manifest: dict, dirs: list[Path], manifest_path: Path | None = None):
    """The original CSV's bytes, in chunks, from the parts found in `dirs`."""
    import cv2
    import numpy as np

    manifest_path = manifest_path or dirs[0] / MANIFEST
    newline = manifest.get("newline", "\n")
    paths = [_find_part(entry, dirs, manifest_path) for entry in manifest["parts"]]
    lines = [HEADER]  # then each row after a line ending, then the last ending if there was one
    count = 0
    for path in paths:
        with np.load(path) as z:
            data, lengths = z["data"], z["lengths"].astype(np.int64)
            names = [str(n) for n in z["usages"]]
            ends = np.cumsum(lengths)
            for i, (emotion, usage) in enumerate(zip(z["emotion"], z["usage"], strict=True)):
                blob = data[ends[i] - lengths[i] : ends[i]]
                face = cv2.imdecode(blob, cv2.IMREAD_GRAYSCALE)
                if face is None or face.shape != (SIDE, SIDE):
                    raise ValueError(f"{path}: face {i} does not decode")
                lines.append(newline + _row_text(int(emotion), face.ravel(), names[usage]))
                count += 1
                if len(lines) >= 1024:
                    yield "".join(lines).encode()
                    lines = []
    if count != manifest["rows"]:
        raise ValueError(f"{manifest_path}: names {manifest['rows']} rows, the parts hold {count}")
    lines.append(newline if manifest.get("final_newline", True) else "")
    yield "".join(lines).encode()


def unpack(dirs: list[str | Path], out: str | Path, say: Say = _say) -> dict:
    """Rebuild the CSV packed in `dirs` (the manifest and the parts, in one folder or spread
    over several) into `out`, written only when its SHA-256 is the manifest's; FER+'s file,
    when packed, is put beside it."""
    dirs = [Path(d) for d in dirs]
    out = Path(out)
    manifest_path, manifest = read_manifest(dirs)
    extras = []
    for entry in manifest.get("extras", []):
        found = [d / entry["name"] for d in dirs if (d / entry["name"]).is_file()]
        if not found:
            raise ValueError(f"{entry['name']} of {manifest_path} is missing")
        if _sha256_file(found[0]) != entry["sha256"]:
            raise ValueError(f"{found[0]}: differs from the copy {manifest_path} names")
        extras.append(found[0])

    def write(tmp: str) -> None:
        digest = hashlib.sha256()
        with open(tmp, "wb") as f:
            for chunk in _rebuilt_text(manifest, dirs, manifest_path):
                digest.update(chunk)
                f.write(chunk)
        if digest.hexdigest() != manifest["sha256"]:
            raise ValueError(
                f"{out}: the rebuilt text's sha256 {digest.hexdigest()} is not the "
                f"{manifest['sha256']} of {manifest_path}; nothing written"
            )

    atomic_write(out, write)
    for extra in extras:
        if extra.resolve() != (out.parent / extra.name).resolve():
            atomic_write(out.parent / extra.name, lambda tmp, e=extra: shutil.copyfile(e, tmp))
    say(f"wrote {out}: {manifest['rows']} rows, sha256 {manifest['sha256']} as packed")
    for extra in extras:
        say(f"wrote {out.parent / extra.name}")
    return manifest


# ---------------------------------------------------------------------------------------------
# run


@dataclass(frozen=True)
class Job:
    name: str
    args: tuple[str, ...]
    after: str | None = None  # starts once this job has ended with status 0


def _job_name(name: str, flag: str, text: str) -> str:
    if not NAME.fullmatch(name):
        raise argparse.ArgumentTypeError(
            f"{flag} {text!r}: the name must be letters, digits, '.', '_' or '-' (it names a log)"
        )
    return name


def _job_args(args: str, flag: str, text: str) -> tuple[str, ...]:
    try:
        split = tuple(shlex.split(args))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: {err}") from None
    if not split:
        raise argparse.ArgumentTypeError(f"{flag} {text!r}: no trainer arguments after '='")
    return split


def job_flag(text: str) -> Job:
    """`--job NAME=ARGS`: `python -m trainer ARGS`, started at once."""
    name, sep, args = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected NAME='TRAINER ARGS', got {text!r}")
    return Job(_job_name(name, "--job", text), _job_args(args, "--job", text))


def after_flag(text: str) -> Job:
    """`--after FIRST:NAME=ARGS`: `python -m trainer ARGS`, started once job FIRST succeeded."""
    head, sep, args = text.partition("=")
    first, colon, name = head.partition(":")
    if not sep or not colon:
        raise argparse.ArgumentTypeError(f"expected FIRST:NAME='TRAINER ARGS', got {text!r}")
    return Job(
        _job_name(name, "--after", text),
        _job_args(args, "--after", text),
        _job_name(first, "--after", text),
    )


def check_jobs(jobs: list[Job]) -> None:
    names = [j.name for j in jobs]
    if not jobs:
        raise ValueError("run: give at least one --job NAME='TRAINER ARGS'")
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"--job/--after: the name {name!r} is given twice")
    by_name = {j.name: j for j in jobs}
    for job in jobs:
        seen, first = {job.name}, job.after
        while first is not None:
            if first not in by_name:
                raise ValueError(f"--after {job.after}:{job.name}: no job named {first!r}")
            if first in seen:
                raise ValueError(f"--after {job.after}:{job.name}: the jobs wait on each other")
            seen.add(first)
            first = by_name[first].after


@dataclass
class _Running:
    job: Job
    process: subprocess.Popen
    log: object
    started: float
    stopped: float | None = None  # when SIGTERM was sent
    killed: bool = False


def _last_line(path: Path) -> str:
    """The log's last non-empty line (progress bars' carriage returns count as line ends)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 2000))
            tail = f.read().decode(errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in re.split(r"[\r\n]", tail) if line.strip()]
    return lines[-1][:200] if lines else ""


def run_jobs(
    jobs: list[Job],
    budget: float,
    logs: str | Path,
    margin: float = 30.0,
    grace: float = 15.0,
    min_start: float = 10.0,
    every: float = 30.0,
    command: Iterable[str] = (sys.executable, "-m", "trainer"),
    say: Say = _say,
) -> dict:
    """Run `jobs` side by side: each `--job` at once, each `--after` job once its first job
    ended with status 0 (and more than `min_start` seconds are left). At `budget - margin`
    seconds the jobs still running get SIGTERM, and SIGKILL `grace` seconds later. Each job's
    output goes to `logs`/NAME.log; `logs`/rc.json holds each job's status, rewritten as they
    change: ok, failed, stopped (SIGTERM at the deadline), killed, skipped or interrupted."""
    check_jobs(jobs)
    if not 0 <= margin < budget:
        raise ValueError(f"--margin {margin}: must be at least 0 and under --budget {budget}")
    logs = Path(logs)
    logs.mkdir(parents=True, exist_ok=True)
    command = list(command)
    t0 = time.monotonic()
    deadline = t0 + budget - margin
    results: dict[str, dict] = {}
    running: dict[str, _Running] = {}
    waiting = list(jobs)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    def left() -> float:
        return t0 + budget - time.monotonic()

    def record(job: Job, status: str, rc: int | None, seconds: float, why: str = "") -> None:
        results[job.name] = {
            "status": status,
            "rc": rc,
            "seconds": round(seconds, 1),
            "command": shlex.join(["python", "-m", "trainer", *job.args]),
            **({"after": job.after} if job.after else {}),
            **({"why": why} if why else {}),
        }
        text = json.dumps(results, indent=2) + "\n"
        atomic_write(logs / "rc.json", lambda tmp: Path(tmp).write_text(text))

    def start(job: Job) -> None:
        log = open(logs / f"{job.name}.log", "wb")  # noqa: SIM115 (closed when it ends)
        try:
            process = subprocess.Popen(
                [*command, *job.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,  # its own process group: SIGKILL reaches its workers
            )
        except BaseException:
            log.close()
            raise
        running[job.name] = _Running(job, process, log, time.monotonic())
        say(f"[{left():4.0f} s left] started {job.name}: python -m trainer {shlex.join(job.args)}")

    def stop_all(now: float, why: str) -> None:
        stopping = [r for r in running.values() if r.stopped is None]
        for r in stopping:
            r.stopped = now
            with contextlib.suppress(ProcessLookupError):
                r.process.send_signal(signal.SIGTERM)  # the trainer's Ctrl-C
        if stopping:
            names = ", ".join(r.job.name for r in stopping)
            say(f"[{left():4.0f} s left] {why}: SIGTERM to {names} (SIGKILL {grace:g} s later)")

    def kill_late(now: float) -> None:
        for r in running.values():
            if r.stopped is not None and now - r.stopped >= grace and not r.killed:
                r.killed = True
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(r.process.pid, signal.SIGKILL)

    def reap() -> None:
        for name, r in list(running.items()):
            rc = r.process.poll()
            if rc is None:
                continue
            r.log.close()
            del running[name]
            seconds = time.monotonic() - r.started
            if rc == 0:
                status = "ok"
            elif r.killed:
                status = "killed"
            elif r.stopped is not None:
                status = "stopped"
            else:
                status = "failed"
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(r.process.pid, signal.SIGKILL)  # workers it left behind
            record(r.job, status, rc, seconds)
            line = _last_line(logs / f"{name}.log")
            say(f"[{left():4.0f} s left] {name}: {status} (status {rc}) after {seconds:.0f} s"
                + (f"; last line: {line}" if line else ""))  # fmt: skip

    def start_ready() -> None:
        for job in list(waiting):
            if job.after is not None and job.after not in results:
                continue
            waiting.remove(job)
            if job.after is not None and results[job.after]["status"] != "ok":
                record(job, "skipped", None, 0, f"{job.after} did not succeed")
                say(f"skipped {job.name}: {job.after} did not succeed")
            elif deadline - time.monotonic() < min_start:
                record(job, "skipped", None, 0, "too little time left")
                say(f"skipped {job.name}: too little time left")
            else:
                start(job)

    last_progress = time.monotonic()
    try:
        start_ready()
        while running or waiting:
            time.sleep(0.1)
            now = time.monotonic()
            if now >= deadline:
                stop_all(now, "deadline")
            kill_late(now)
            reap()
            start_ready()
            if running and now - last_progress >= every:
                last_progress = now
                ages = {n: max(0.0, now - r.started) for n, r in running.items()}
                busy = ", ".join(f"{n} ({age:.0f} s)" for n, age in ages.items())
                say(f"[{left():4.0f} s left] running: {busy}")
    except BaseException:  # Ctrl-C, or SIGTERM to this process: end the jobs as the deadline does
        stop_all(time.monotonic(), "interrupted")
        while running:
            time.sleep(0.1)
            kill_late(time.monotonic())
            reap()
        for job in waiting:
            record(job, "skipped", None, 0, "interrupted")
        raise
    done = {name: r["status"] for name, r in results.items()}
    say(f"[{left():4.0f} s left] done: " + ", ".join(f"{n} {s}" for n, s in done.items()))
    return results


# ---------------------------------------------------------------------------------------------
# bundle / restore


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
    say: Say = _say,
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
    parts: list[str | Path], into: str | Path = ".", force: bool = False, say: Say = _say
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


# ---------------------------------------------------------------------------------------------
# slim / unslim


def _git(repo: Path, *args: str) -> bytes:
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=False)
    except FileNotFoundError:
        raise ValueError("slim needs git on the PATH") from None
    if done.returncode:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise ValueError(f"--repo {repo}: git {args[0]}: {message[-1] if message else 'failed'}")
    return done.stdout


def repo_root(repo: str | Path = ".") -> Path:
    return Path(_git(Path(repo), "rev-parse", "--show-toplevel").decode().strip())


def tree_files(root: Path) -> list[str]:
    """What travels: tracked files and untracked ones git does not ignore, that exist as plain
    files (paths relative to `root`)."""
    names = _git(root, "ls-files", "-z") + _git(root, "ls-files", "-z", "--others",
                                                   "--exclude-standard")  # fmt: skip
    seen = dict.fromkeys(n for n in names.decode(errors="surrogateescape").split("\0") if n)
    return [n for n in seen if (root / n).is_file() and not (root / n).is_symlink()]


def travel_size(root: Path) -> int:
    return sum((root / n).stat().st_size for n in tree_files(root))


def _check_stash(root: Path, stash: Path) -> Path:
    stash = stash.resolve()
    if stash.is_relative_to(root.resolve()):
        raise ValueError(f"--stash {stash}: inside the working tree {root}; pick one outside it")
    return stash


def slim(
    repo: str | Path = ".",
    stash: str | Path = "",
    min_kb: float = 200.0,
    keep: Iterable[str] = (),
    say: Say = _say,
) -> list[str]:
    """Move every file of at least `min_kb` kB that would travel (tracked, or untracked and
    not ignored) into `stash`, under the same relative path, except those matching a `keep`
    pattern. Nothing moves when the stash already holds one of them."""
    root = repo_root(repo)
    stash = _check_stash(root, Path(stash))
    keep = list(keep)
    big = [
        n
        for n in tree_files(root)
        if (root / n).stat().st_size >= min_kb * 1000
        and not any(fnmatch.fnmatch(n, pattern) for pattern in keep)
    ]
    clash = [n for n in big if (stash / n).exists()]
    if clash:
        raise ValueError(f"--stash {stash}: already holds {clash[0]}; unslim first")
    moved = 0
    for n in big:
        moved += (root / n).stat().st_size
        (stash / n).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(root / n, stash / n)
    say(f"moved {len(big)} files ({moved / MIB:.1f} MiB) of {min_kb:g} kB or more to {stash}")
    say(
        f"what travels now: {travel_size(root) / MIB:.1f} MiB, and what a call carries (the "
        "device takes 64 MiB in all)"
    )
    return big


def unslim(repo: str | Path = ".", stash: str | Path = "", say: Say = _say) -> tuple[list, list]:
    """Move the stashed files back; one that exists again in the tree (written meanwhile) is
    kept there, its stashed copy left in the stash and named."""
    root = repo_root(repo)
    stash = _check_stash(root, Path(stash))
    if not stash.is_dir():
        raise ValueError(f"--stash {stash}: no such folder")
    back, kept = [], []
    for f in sorted(p for p in stash.rglob("*") if p.is_file() or p.is_symlink()):
        rel = f.relative_to(stash)
        dest = root / rel
        if dest.exists() or dest.is_symlink():
            kept.append(rel.as_posix())
            say(f"kept {rel.as_posix()}: the tree holds one again (the stashed copy stays in "
                f"{stash})")  # fmt: skip
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(f, dest)
        back.append(rel.as_posix())
    for d in sorted((p for p in stash.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            d.rmdir()
    with contextlib.suppress(OSError):
        stash.rmdir()
    say(f"moved {len(back)} files back from {stash}; kept {len(kept)} newer in the tree")
    return back, kept


# ---------------------------------------------------------------------------------------------
# the command line


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not value >= 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {text!r}")
    return value


def _folder_job(text: str) -> tuple[str, str]:
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"expected JOB=RUN_FOLDER, got {text!r}")
    return name, folder


def add_arguments(p: argparse.ArgumentParser) -> None:
    steps = p.add_subparsers(dest="step", required=True, metavar="STEP")

    def step(name: str, what: str) -> argparse.ArgumentParser:
        return steps.add_parser(name, help=what, description=what)

    s = step("pack", "FER2013 → lossless WebP npz parts + manifest.json")
    s.add_argument("data", help="fer2013.csv or .csv.gz, or their folder (FER+'s csv beside it)")
    s.add_argument("--out", required=True, help="an empty or new folder for the parts")
    s.add_argument("--part-mib", type=_positive_float, default=15.0, help="each part under this")

    s = step("unpack", "rebuild fer2013.csv byte for byte from the parts")
    s.add_argument("dirs", nargs="+", metavar="DIR", help="folders holding the manifest and parts")
    s.add_argument("--out", required=True, help="the CSV to write (FER+'s file goes beside it)")

    s = step("run", "trainer commands side by side under a time budget")
    s.add_argument("--budget", type=_positive_float, required=True, help="seconds for all jobs")
    s.add_argument("--logs", required=True, help="folder for NAME.log and rc.json")
    s.add_argument(
        "--job", type=job_flag, action="append", default=[], metavar="NAME='ARGS'",
        help="run `python -m trainer ARGS` at once (repeatable)",
    )  # fmt: skip
    s.add_argument(
        "--after", type=after_flag, action="append", default=[], metavar="FIRST:NAME='ARGS'",
        help="run `python -m trainer ARGS` once job FIRST ended with status 0 (repeatable)",
    )  # fmt: skip
    s.add_argument(
        "--margin", type=_non_negative_float, default=30.0,
        help="seconds kept for what follows: jobs get SIGTERM at budget − margin (default 30)",
    )  # fmt: skip
    s.add_argument(
        "--grace", type=_non_negative_float, default=15.0,
        help="seconds between SIGTERM and SIGKILL (default 15)",
    )  # fmt: skip
    s.add_argument(
        "--min-start", type=_non_negative_float, default=10.0,
        help="an --after job starts only with this many seconds left before SIGTERM",
    )  # fmt: skip
    s.add_argument("--every", type=_positive_float, default=30.0, help="seconds between progress")

    s = step("bundle", "what comes back, within the cap, as tar parts")
    s.add_argument("--out", required=True, help="folder for bundle.tar.NN ($OUT on the device)")
    s.add_argument("--runs", required=True, help="the folder holding the run folders")
    s.add_argument(
        "--job", type=_folder_job, action="append", required=True, metavar="JOB=RUN_FOLDER",
        help="a job of `run` and its run folder under --runs (repeatable, in priority order)",
    )  # fmt: skip
    s.add_argument("--rc", help="run's rc.json: unfinished jobs bring back last.pt, not best.pt")
    s.add_argument("--logs", help="folder of logs to bring back (default: --rc's folder)")
    s.add_argument("--limit-mib", type=_positive_float, default=62.0, help="all parts together")
    s.add_argument("--part-mib", type=_positive_float, default=15.0, help="each part")
    s.add_argument("--root", default=".", help="the tree the names are relative to (default .)")

    s = step("restore", "join bundle parts and extract them into the tree")
    s.add_argument("parts", nargs="+", metavar="PART", help="bundle.tar.00, bundle.tar.01, …")
    s.add_argument("--into", default=".", help="the tree to extract into (default .)")
    s.add_argument("--force", action="store_true", help="overwrite files newer than the bundle's")

    for name, what in (
        ("slim", "move the tree's large files out, so that what travels stays under 64 MiB"),
        ("unslim", "move the files slim moved back into the tree"),
    ):
        s = step(name, what)
        s.add_argument("--stash", required=True, help="a folder outside the working tree")
        s.add_argument("--repo", default=".", help="a folder inside the git working tree")
        if name == "slim":
            s.add_argument(
                "--min-kb", type=_positive_float, default=200.0,
                help="move files of this many kB (1000 bytes) or more (default 200)",
            )  # fmt: skip
            s.add_argument(
                "--keep", action="append", default=[], metavar="PATTERN",
                help="leave files matching this glob (relative to the root) in the tree",
            )  # fmt: skip


def main(args: argparse.Namespace) -> int:
    if args.step == "pack":
        pack(args.data, args.out, args.part_mib)
    elif args.step == "unpack":
        unpack(args.dirs, args.out)
    elif args.step == "run":
        results = run_jobs(
            [*args.job, *args.after],
            args.budget,
            args.logs,
            margin=args.margin,
            grace=args.grace,
            min_start=args.min_start,
            every=args.every,
        )
        return 0 if all(r["status"] == "ok" for r in results.values()) else 1
    elif args.step == "bundle":
        jobs = dict(args.job)
        if len(jobs) != len(args.job):
            raise ValueError("--job: a job is named twice")
        bundle(args.out, args.runs, jobs, args.rc, args.logs, args.limit_mib, args.part_mib,
               args.root)  # fmt: skip
    elif args.step == "restore":
        restore(args.parts, args.into, args.force)
    elif args.step == "slim":
        slim(args.repo, args.stash, args.min_kb, args.keep)
    else:
        unslim(args.repo, args.stash)
    return 0

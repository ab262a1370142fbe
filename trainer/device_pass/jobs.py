"""Trainer commands side by side under one time budget, each stopped (SIGTERM, which the
trainer takes as Ctrl-C and leaves a resumable `last.pt`, then SIGKILL) before it runs out."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from trainer.device_pass.common import NAME, Say, say
from trainer.files import atomic_write


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
    say: Say = say,
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

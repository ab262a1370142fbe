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

Each step lives in its module: `packing`, `jobs`, `bundle`, `tree`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from trainer.device_pass.bundle import bundle, restore
from trainer.device_pass.jobs import Job, after_flag, job_flag, run_jobs
from trainer.device_pass.packing import FERPLUS, MANIFEST, pack, unpack
from trainer.device_pass.tree import slim, unslim
from trainer.flags import non_negative_float, positive_float

__all__ = ["FERPLUS", "MANIFEST", "Job", "bundle", "pack", "restore", "run_jobs", "slim", "unpack",
           "unslim"]  # fmt: skip


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
    s.add_argument("--part-mib", type=positive_float, default=15.0, help="each part under this")

    s = step("unpack", "rebuild fer2013.csv byte for byte from the parts")
    s.add_argument("dirs", nargs="+", metavar="DIR", help="folders holding the manifest and parts")
    s.add_argument("--out", required=True, help="the CSV to write (FER+'s file goes beside it)")

    s = step("run", "trainer commands side by side under a time budget")
    s.add_argument("--budget", type=positive_float, required=True, help="seconds for all jobs")
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
        "--margin", type=non_negative_float, default=30.0,
        help="seconds kept for what follows: jobs get SIGTERM at budget − margin (default 30)",
    )  # fmt: skip
    s.add_argument(
        "--grace", type=non_negative_float, default=15.0,
        help="seconds between SIGTERM and SIGKILL (default 15)",
    )  # fmt: skip
    s.add_argument(
        "--min-start", type=non_negative_float, default=10.0,
        help="an --after job starts only with this many seconds left before SIGTERM",
    )  # fmt: skip
    s.add_argument("--every", type=positive_float, default=30.0, help="seconds between progress")

    s = step("bundle", "what comes back, within the cap, as tar parts")
    s.add_argument("--out", required=True, help="folder for bundle.tar.NN ($OUT on the device)")
    s.add_argument("--runs", required=True, help="the folder holding the run folders")
    s.add_argument(
        "--job", type=_folder_job, action="append", required=True, metavar="JOB=RUN_FOLDER",
        help="a job of `run` and its run folder under --runs (repeatable, in priority order)",
    )  # fmt: skip
    s.add_argument("--rc", help="run's rc.json: unfinished jobs bring back last.pt, not best.pt")
    s.add_argument("--logs", help="folder of logs to bring back (default: --rc's folder)")
    s.add_argument("--limit-mib", type=positive_float, default=62.0, help="all parts together")
    s.add_argument("--part-mib", type=positive_float, default=15.0, help="each part")
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
                "--min-kb", type=positive_float, default=200.0,
                help="move files of this many kB (1000 bytes) or more (default 200)",
            )  # fmt: skip
            s.add_argument(
                "--keep", action="append", default=[], metavar="PATTERN",
                help="leave files matching this glob (relative to the root) in the tree",
            )  # fmt: skip


def _run(args: argparse.Namespace) -> int:
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


def _bundle(args: argparse.Namespace) -> None:
    jobs = dict(args.job)
    if len(jobs) != len(args.job):
        raise ValueError("--job: a job is named twice")
    bundle(args.out, args.runs, jobs, args.rc, args.logs, args.limit_mib, args.part_mib, args.root)


# each step as the command line calls it: `run` returns an exit status, the others what they did
STEPS: dict[str, Callable[[argparse.Namespace], Any]] = {
    "pack": lambda a: pack(a.data, a.out, a.part_mib),
    "unpack": lambda a: unpack(a.dirs, a.out),
    "run": _run,
    "bundle": _bundle,
    "restore": lambda a: restore(a.parts, a.into, a.force),
    "slim": lambda a: slim(a.repo, a.stash, a.min_kb, a.keep),
    "unslim": lambda a: unslim(a.repo, a.stash),
}


def main(args: argparse.Namespace) -> int:
    status = STEPS[args.step](args)
    return status if type(status) is int else 0

"""The working tree slimmed for the trip (its large files moved to a stash outside it, so that
what travels stays under the cap) and restored afterwards."""

from __future__ import annotations

import contextlib
import fnmatch
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from trainer.device_pass.common import MIB, Say, say


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
    say: Say = say,
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


def unslim(repo: str | Path = ".", stash: str | Path = "", say: Say = say) -> tuple[list, list]:
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

"""`python -m trainer device-pass`: FER2013 packed into parts and rebuilt byte for byte, jobs run
side by side under a budget and stopped in time, what comes back chosen within a cap and
restored safely, and the tree slimmed for the trip and restored."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import pytest

from tests.conftest import fer2013_rows, write_fer2013_csv
from trainer import cli
from trainer import device_pass as dp

MIB = 2**20


def quiet(_text: str) -> None:
    pass


def one_line_error(capsys, *argv) -> str:
    code = cli.main(["device-pass", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# ---------------------------------------------------------------------------------------------
# pack / unpack


@pytest.fixture(scope="module")
def small_fer(tmp_path_factory) -> Path:
    """40 faces in FER2013's layout, FER+'s file beside them."""
    folder = tmp_path_factory.mktemp("fer")
    rows = fer2013_rows({"Training": 30, "PublicTest": 5, "PrivateTest": 5})
    write_fer2013_csv(folder / "fer2013.csv.gz", rows)
    (folder / dp.FERPLUS).write_text("Usage,Image name,neutral\nTraining,fer0000000.png,4\n")
    return folder / "fer2013.csv.gz"


def test_pack_unpack_round_trip_is_byte_exact_in_several_parts(small_fer, tmp_path, capsys):
    original = gzip.decompress(small_fer.read_bytes())
    code = cli.main(["device-pass", "pack", str(small_fer), "--out", str(tmp_path / "p"),
                     "--part-mib", "0.03"])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    manifest = json.loads((tmp_path / "p" / dp.MANIFEST).read_text())
    assert manifest["rows"] == 40 and len(manifest["parts"]) >= 3
    assert manifest["sha256"] == hashlib.sha256(original).hexdigest()
    for part in manifest["parts"]:
        assert (tmp_path / "p" / part["name"]).stat().st_size <= 0.03 * MIB
    assert [e["name"] for e in manifest["extras"]] == [dp.FERPLUS]

    # the parts spread over two folders, as over two device calls
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(tmp_path / "p" / manifest["parts"][0]["name"], moved)
    out = tmp_path / "data" / "fer2013.csv"
    code = cli.main(["device-pass", "unpack", str(tmp_path / "p"), str(moved), "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    assert out.read_bytes() == original
    assert (out.parent / dp.FERPLUS).read_bytes() == (small_fer.parent / dp.FERPLUS).read_bytes()


def test_pack_keeps_crlf_and_a_missing_last_line_ending(tmp_path):
    rows = fer2013_rows({"Training": 3})
    text = "emotion,pixels,Usage\r\n" + "\r\n".join(f"{e},{p},{u}" for e, p, u in rows)
    (tmp_path / "fer2013.csv").write_bytes(text.encode())
    dp.pack(tmp_path, tmp_path / "p", say=quiet)  # the folder holding fer2013.csv
    dp.unpack([tmp_path / "p"], tmp_path / "back.csv", say=quiet)
    assert (tmp_path / "back.csv").read_bytes() == text.encode()


def test_pack_refuses_rows_it_could_not_rebuild(tmp_path, capsys):
    (tmp_path / "fer2013.csv").write_text(
        "emotion,pixels,Usage\n0," + " ".join(["007"] + ["1"] * 2303) + ",Training\n"
    )
    err = one_line_error(capsys, "pack", tmp_path / "fer2013.csv", "--out", tmp_path / "p")
    assert "line 2" in err and "byte for byte" in err
    assert not (tmp_path / "p").exists()  # what it began is removed
    err = one_line_error(capsys, "pack", tmp_path / "none.csv", "--out", tmp_path / "q")
    assert "none.csv" in err
    damaged = tmp_path / "cut.csv.gz"
    write_fer2013_csv(tmp_path / "whole.csv.gz", fer2013_rows({"Training": 3}))
    damaged.write_bytes((tmp_path / "whole.csv.gz").read_bytes()[:3000])
    err = one_line_error(capsys, "pack", damaged, "--out", tmp_path / "q")
    assert "cut.csv.gz" in err and "damaged" in err


def test_pack_refuses_parts_too_small_for_a_face(small_fer, tmp_path, capsys):
    err = one_line_error(capsys, "pack", small_fer, "--out", tmp_path / "p", "--part-mib", "0.001")
    assert "--part-mib" in err


def test_unpack_refuses_a_manifest_that_does_not_match(small_fer, tmp_path, capsys):
    dp.pack(small_fer, tmp_path / "p", part_mib=0.03, say=quiet)
    path = tmp_path / "p" / dp.MANIFEST
    manifest = json.loads(path.read_text())
    out = tmp_path / "fer2013.csv"

    wrong = {**manifest, "sha256": "0" * 64}
    path.write_text(json.dumps(wrong))
    err = one_line_error(capsys, "unpack", tmp_path / "p", "--out", out)
    assert "sha256" in err and "nothing written" in err
    assert not out.exists()

    path.write_text(json.dumps(manifest))
    part = tmp_path / "p" / manifest["parts"][1]["name"]
    part.rename(tmp_path / "elsewhere.npz")
    err = one_line_error(capsys, "unpack", tmp_path / "p", "--out", out)
    assert manifest["parts"][1]["name"] in err and "missing" in err
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# run

FAKE_TRAINER = textwrap.dedent(
    """
    import signal, sys, time
    def stop(signum, frame):
        if sys.argv[1] != "stubborn":
            print("interrupted: saved last.pt", flush=True)
            sys.exit(2)
    signal.signal(signal.SIGTERM, stop)
    print("epoch 1", flush=True)
    time.sleep(float(sys.argv[2]))
    sys.exit(int(sys.argv[3]) if len(sys.argv) > 3 else 0)
    """
)


@pytest.fixture
def fake_trainer(tmp_path) -> list[str]:
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    return [sys.executable, str(script)]


def test_run_two_trainer_verbs_side_by_side(tmp_path, capsys):
    logs = tmp_path / "logs"
    code = cli.main(["device-pass", "run", "--budget", "120", "--logs", str(logs), "--margin", "5",
                     "--job", "a=models --help", "--job", "b=models --no-such-flag",
                     "--after", "b:d=models --help"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1  # b failed
    rc = json.loads((logs / "rc.json").read_text())
    assert {n: r["status"] for n, r in rc.items()} == {"a": "ok", "b": "failed", "d": "skipped"}
    assert rc["a"]["rc"] == 0 and rc["b"]["rc"] == 2 and rc["d"]["after"] == "b"
    assert rc["a"]["command"] == "python -m trainer models --help"
    assert "registered models" in (logs / "a.log").read_text()
    assert "--no-such-flag" in (logs / "b.log").read_text()
    assert "s left]" in out and "skipped d" in out


def test_run_stops_a_job_past_its_budget_and_records_it(tmp_path, fake_trainer):
    jobs = [
        dp.Job("slow", ("polite", "30")),
        dp.Job("stubborn", ("stubborn", "30")),
        dp.Job("quick", ("polite", "0")),
        dp.Job("later", ("polite", "0"), after="slow"),
        dp.Job("next", ("polite", "0"), after="quick"),
    ]
    lines = []
    start = time.monotonic()
    results = dp.run_jobs(jobs, 2, tmp_path, margin=0.5, grace=0.5, min_start=0,
                          command=fake_trainer, say=lines.append)  # fmt: skip
    assert time.monotonic() - start < 6
    assert results["quick"]["status"] == "ok"
    assert results["slow"] == {**results["slow"], "status": "stopped", "rc": 2}
    assert results["stubborn"]["status"] == "killed" and results["stubborn"]["rc"] == -9
    assert results["later"]["status"] == "skipped" and results["next"]["status"] == "ok"
    assert json.loads((tmp_path / "rc.json").read_text()) == results
    assert "saved last.pt" in (tmp_path / "slow.log").read_text()
    assert any("deadline: SIGTERM to slow, stubborn" in line for line in lines)


def test_run_flags_are_checked(tmp_path, capsys):
    logs = tmp_path / "logs"
    err = one_line_error(capsys, "run", "--budget", "10", "--logs", logs, "--job", "a b=models")
    assert "--job" in err
    err = one_line_error(capsys, "run", "--budget", "10", "--logs", logs, "--job", "a=models",
                         "--after", "x:b=models")  # fmt: skip
    assert "no job named 'x'" in err
    err = one_line_error(capsys, "run", "--budget", "10", "--logs", logs, "--margin", "20",
                         "--job", "a=models")  # fmt: skip
    assert "--margin" in err
    assert not logs.exists()


# ---------------------------------------------------------------------------------------------
# bundle / restore


def write(path: Path, size: int, mtime: float | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return path


@pytest.fixture
def runs_tree(tmp_path) -> Path:
    """A tree with two runs: `done` finished (status 0), `cut` stopped at the deadline."""
    root = tmp_path / "tree"
    runs = root / "trainer" / "runs"
    for run in ("done", "cut"):
        write(runs / run / "metrics.csv", 2000, mtime=1_700_000_000)
        write(runs / run / "best.pt", 40_000)
        write(runs / run / "last.pt", 60_000)
    write(runs / "other" / "best.pt", 10_000)
    logs = runs / "gpu-logs"
    write(logs / "done.log", 500)
    rc = {"done": {"status": "ok", "rc": 0}, "cut": {"status": "stopped", "rc": 2}}
    (logs / "rc.json").write_text(json.dumps(rc))
    return root


def test_bundle_brings_back_small_files_then_what_continues_each_run(runs_tree, tmp_path, capsys):
    runs = runs_tree / "trainer" / "runs"
    out = tmp_path / "out"
    parts, chosen, left = dp.bundle(
        out, runs, {"cut": "cut", "done": "done"}, rc=runs / "gpu-logs" / "rc.json",
        limit_mib=0.13, part_mib=0.05, root=runs_tree, say=quiet,
    )  # fmt: skip
    names = [f.relative_to(runs).as_posix() for f in chosen]
    # the small files first, then the stopped run's last.pt, the finished run's best.pt
    assert names == ["cut/metrics.csv", "done/metrics.csv", "gpu-logs/done.log",
                     "gpu-logs/rc.json", "cut/last.pt", "done/best.pt"]  # fmt: skip
    assert {f.relative_to(runs).as_posix() for f in left} == {"cut/best.pt", "done/last.pt"}
    assert [p.name for p in parts] == [f"bundle.tar.{i:02d}" for i in range(len(parts))]
    assert len(parts) >= 2 and all(p.stat().st_size <= 0.05 * MIB for p in parts)
    assert sum(p.stat().st_size for p in parts) <= 0.13 * MIB
    assert "other" not in " ".join(names)

    # restore into a copy of the tree where one file is newer than the bundle's copy
    target = tmp_path / "here"
    (target / "trainer" / "runs" / "done").mkdir(parents=True)
    newer = write(target / "trainer" / "runs" / "done" / "metrics.csv", 10)
    code = cli.main(["device-pass", "restore", *map(str, reversed(parts)), "--into", str(target)])
    out_text = capsys.readouterr().out
    assert code == 0
    for f in chosen:
        rel = f.relative_to(runs_tree)
        if rel.as_posix() != "trainer/runs/done/metrics.csv":
            assert (target / rel).read_bytes() == f.read_bytes(), rel
            assert (target / rel).stat().st_mtime == f.stat().st_mtime
    assert newer.stat().st_size == 10
    assert "kept" in out_text and "done/metrics.csv" in out_text

    _, kept = dp.restore(parts, target, force=True, say=quiet)
    assert kept == [] and newer.read_bytes() == (runs / "done" / "metrics.csv").read_bytes()


def test_bundle_checks_its_limits(runs_tree, tmp_path, capsys):
    runs = runs_tree / "trainer" / "runs"
    err = one_line_error(capsys, "bundle", "--out", tmp_path / "o", "--runs", runs,
                         "--job", "a=done", "--limit-mib", "62", "--part-mib", "5")  # fmt: skip
    assert "8" in err and "--part-mib" in err
    err = one_line_error(capsys, "bundle", "--out", tmp_path / "o", "--runs", runs,
                         "--job", "a=nowhere")  # fmt: skip
    assert "nowhere" in err


def tar_parts(tmp_path: Path, add) -> list[Path]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        add(tar)
    path = tmp_path / "evil.tar.00"
    path.write_bytes(buffer.getvalue())
    return [path]


def file_member(tar: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    ("name", "why"),
    [("../outside.txt", "'..'"), ("a/../../outside.txt", "'..'"), ("/tmp/abs.txt", "absolute")],
)
def test_restore_refuses_members_that_leave_the_tree(tmp_path, capsys, name, why):
    target = tmp_path / "tree"
    target.mkdir()

    def add(tar):
        file_member(tar, "fine.txt")
        file_member(tar, name)

    err = one_line_error(capsys, "restore", *tar_parts(tmp_path, add), "--into", target)
    assert why in err
    assert not (target / "fine.txt").exists()  # nothing written: every member is checked first
    assert not (tmp_path / "outside.txt").exists()


def test_restore_refuses_links(tmp_path, capsys):
    target = tmp_path / "tree"
    target.mkdir()

    def add(tar):
        link = tarfile.TarInfo("link")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)

    err = one_line_error(capsys, "restore", *tar_parts(tmp_path, add), "--into", target)
    assert "link" in err and not (target / "link").exists()


def test_restore_names_a_missing_part(runs_tree, tmp_path, capsys):
    runs = runs_tree / "trainer" / "runs"
    parts, _, _ = dp.bundle(tmp_path / "o", runs, {"done": "done"}, limit_mib=0.15, part_mib=0.02,
                            root=runs_tree, say=quiet)  # fmt: skip
    assert len(parts) >= 3
    err = one_line_error(capsys, "restore", parts[0], parts[2], "--into", tmp_path)
    assert ".01" in err and "missing" in err


# ---------------------------------------------------------------------------------------------
# slim / unslim


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_slim_and_unslim_round_trip(tmp_path, capsys):
    repo = tmp_path / "repo"
    (repo / "assets").mkdir(parents=True)
    git(repo, "init", "-q")
    (repo / ".gitignore").write_text("ignored/\n")
    big_tracked = write(repo / "assets" / "model.pt", 3000)
    small = write(repo / "small.txt", 100)
    write(repo / "keepme.pt", 3000)
    git(repo, "add", ".")
    big_untracked = write(repo / "runs" / "last.pt", 4000)
    ignored = write(repo / "ignored" / "huge.bin", 5000)
    stash = tmp_path / "stash"

    code = cli.main(["device-pass", "slim", "--stash", str(stash), "--repo", str(repo),
                     "--min-kb", "2", "--keep", "keep*.pt"])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert not big_tracked.exists() and not big_untracked.exists()
    assert small.exists() and ignored.exists() and (repo / "keepme.pt").exists()
    assert (stash / "assets" / "model.pt").stat().st_size == 3000
    assert (stash / "runs" / "last.pt").stat().st_size == 4000
    assert "what travels now" in out

    written_meanwhile = write(big_untracked, 7)  # written again while the files were away
    code = cli.main(["device-pass", "unslim", "--stash", str(stash), "--repo", str(repo)])
    out = capsys.readouterr().out
    assert code == 0
    assert big_tracked.stat().st_size == 3000
    assert written_meanwhile.stat().st_size == 7  # kept, named, its stashed copy left
    assert "kept runs/last.pt" in out
    assert (stash / "runs" / "last.pt").stat().st_size == 4000
    assert not (stash / "assets").exists()


def test_slim_refuses_a_stash_inside_the_tree(tmp_path, capsys):
    git(tmp_path, "init", "-q")
    err = one_line_error(capsys, "slim", "--stash", tmp_path / "stash", "--repo", tmp_path)
    assert "--stash" in err and "inside" in err

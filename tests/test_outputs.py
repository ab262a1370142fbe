"""Outputs that must lose nothing: devices, FIFOs and symlinks are written through (never
replaced), two outputs naming one file or an unwritable place are refused before any work,
failed writes leave neither a partial file nor a damaged old one, and new files get the
usual permissions."""

import os
import stat
import threading
from pathlib import Path

import pytest

from fer_core.outputs import OutputError, OutputFile, check_outputs, file_mode, write_bytes


def test_a_device_is_written_through_and_stays_a_device():
    out = OutputFile("/dev/null")
    out.stream.write(b"rows")
    out.commit()
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)


def test_a_full_device_raises_and_stays_a_device():
    with pytest.raises(OSError):
        write_bytes("/dev/full", b"x" * 100_000)
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_a_fifo_is_written_through(tmp_path):
    fifo = tmp_path / "rows"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    write_bytes(fifo, b"face rows\n")
    reader.join(10)
    assert got == [b"face rows\n"] and stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_a_symlink_stays_a_link_and_its_file_is_written(tmp_path):
    target = tmp_path / "real.csv"
    target.write_text("old")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    write_bytes(link, b"new")
    assert link.is_symlink() and target.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.csv", "real.csv"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_partial(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("old")
    out = OutputFile(path)
    out.stream.write(b"half")
    out.discard()
    assert path.read_text() == "old" and sorted(tmp_path.iterdir()) == [path]


def test_new_files_get_the_usual_mode_not_a_temporary_files(tmp_path):
    old = os.umask(0o022)
    try:
        assert file_mode() == 0o644
        write_bytes(tmp_path / "a.png", b"png")
        assert stat.S_IMODE(os.stat(tmp_path / "a.png").st_mode) == 0o644
    finally:
        os.umask(old)


def test_outputs_are_checked_before_any_work(tmp_path):
    video = tmp_path / "in.avi"
    video.write_bytes(b"v")
    same = str(tmp_path / "x")
    with pytest.raises(OutputError, match=r"--json .*--csv names this file too"):
        check_outputs({"--csv": same, "--json": same})
    with pytest.raises(OutputError, match="the input names this file too"):
        check_outputs({"--csv": str(video)}, inputs=[video])
    with pytest.raises(OutputError, match=r"--out .*is a folder"):
        check_outputs({"--out": tmp_path})
    with pytest.raises(OutputError, match="--out /dev/null: not a regular file"):
        check_outputs({"--out": "/dev/null"}, regular_only=["--out"])
    with pytest.raises(OutputError, match=r"--timeline .*t.png: no file can be created in"):
        check_outputs({"--timeline": read_only_place(tmp_path) / "t.png"})
    check_outputs({"--csv": "/dev/null", "--out": tmp_path / "new" / "a.mp4"})
    assert not list((tmp_path / "new").iterdir())  # the probe file is gone


def read_only_place(tmp_path: Path) -> Path:
    """A folder no file can be created in: mode 0555, or /proc for root (who ignores modes)."""
    if os.geteuid() == 0:
        return Path("/proc")
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    return folder

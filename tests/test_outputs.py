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


def test_an_input_is_never_an_outputs_partial_name(tmp_path):
    """Issue 31: `analyze rec.partial.mp4 --out rec.mp4` deleted its input (what an
    interrupted recording leaves)."""
    left = tmp_path / "rec.partial.mp4"
    left.write_bytes(b"video")
    for out in ("rec.mp4", "rec"):
        with pytest.raises(OutputError, match=r"--out .*: the input rec\.partial\.mp4 is this "):
            check_outputs({"--out": tmp_path / out}, inputs=[left], regular_only=["--out"])
    tagged = tmp_path / "rec.123-0a1b2c3d.partial.mp4"
    tagged.write_bytes(b"video")
    with pytest.raises(OutputError, match="is this output's partial name"):
        check_outputs({"--out": tmp_path / "rec.mp4"}, inputs=[tagged])
    check_outputs({"--out": tmp_path / "rec-2.mp4"}, inputs=[left, tagged])
    assert left.read_bytes() == b"video"


def test_an_output_is_never_in_an_input_folder(tmp_path):
    """Issue 31: `analyze imgs --timeline imgs/1.jpg` overwrote a photo it was reading."""
    photos = tmp_path / "imgs"
    photos.mkdir()
    (photos / "1.jpg").write_bytes(b"jpeg")
    for inside in (photos / "1.jpg", photos / "new.csv", photos / "sub" / "t.png"):
        with pytest.raises(OutputError, match=f"--timeline {inside}: inside the input folder"):
            check_outputs({"--timeline": inside}, inputs=[photos])
    check_outputs({"--timeline": tmp_path / "imgs.png"}, inputs=[photos])
    assert (photos / "1.jpg").read_bytes() == b"jpeg"


def test_an_output_is_never_another_outputs_partial_name(tmp_path):
    """Issue 31: `--csv a.csv --json a.csv.partial` left the JSON in `a.csv`."""
    csv, partial = tmp_path / "a.csv", tmp_path / "a.csv.partial"
    with pytest.raises(OutputError, match=r"--json .*a\.csv\.partial: the partial name of --csv"):
        check_outputs({"--csv": csv, "--json": partial})
    with pytest.raises(OutputError, match=r"--csv .*a\.csv: --json a\.csv\.partial is this"):
        check_outputs({"--json": partial, "--csv": csv})
    check_outputs({"--csv": csv, "--json": tmp_path / "a.csv.jsonl"})


@pytest.mark.parametrize("planted", ["a user's file", "a symlink"])
def test_what_is_at_a_partial_name_is_never_written_or_deleted(tmp_path, planted):
    """Issue 31: a `.partial` already there was written through (a link: into its target)
    and deleted; partial files are now created exclusively, under a name of their own."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    there = tmp_path / "a.csv.partial"
    if planted == "a symlink":
        there.symlink_to(victim)
    else:
        there.write_text("precious")
    write_bytes(tmp_path / "a.csv", b"rows")
    failed = OutputFile(tmp_path / "a.csv")
    failed.stream.write(b"half")
    failed.discard()
    assert (tmp_path / "a.csv").read_bytes() == b"rows"
    assert there.is_symlink() == (planted == "a symlink") and there.read_text() == "precious"
    assert victim.read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "a.csv.partial", "victim"]


def test_two_writers_of_one_output_never_mix_and_each_file_is_whole(tmp_path):
    path = tmp_path / "a.csv"
    first, second = OutputFile(path), OutputFile(path)
    assert first.partial != second.partial and first.partial.name.endswith(".partial")
    for line in range(3):
        first.stream.write(b"first %d\n" % line)
        second.stream.write(b"second %d\n" % line)
    first.commit()
    assert path.read_bytes() == b"first 0\nfirst 1\nfirst 2\n"
    second.commit()
    assert path.read_bytes() == b"second 0\nsecond 1\nsecond 2\n"
    assert sorted(tmp_path.iterdir()) == [path]


def test_a_partial_file_replaced_meanwhile_is_not_this_runs_to_delete(tmp_path):
    out = OutputFile(tmp_path / "a.csv")
    (tmp_path / "theirs").write_text("theirs")
    os.replace(tmp_path / "theirs", out.partial)
    out.discard()
    assert out.partial.read_text() == "theirs"


def test_a_video_never_writes_over_a_file_at_its_partial_name(tmp_path):
    import numpy as np

    from fer_core.recording import AnnotatedVideo

    left = tmp_path / "rec.partial.mp4"
    left.write_bytes(b"an interrupted recording")
    with AnnotatedVideo(tmp_path / "rec.mp4", 25.0) as video:
        for _ in range(2):
            video.write(np.zeros((32, 32, 3), np.uint8))
    assert left.read_bytes() == b"an interrupted recording"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.mp4", "rec.partial.mp4"]

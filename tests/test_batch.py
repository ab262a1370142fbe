"""`python -m app analyze` over many inputs on a Dask cluster (app.batch, app.cluster): each
input's files are the files `analyze` writes for it alone, a broken input is a failure in the
summary (status 1) that stops no other, a rerun skips what is complete, nothing partial is left
(Ctrl-C included), and bad arguments are one line, status 2, before anything starts."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from app.__main__ import main
from app.batch import is_batch, names
from fer_core.demo import write_demo_video
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """Four short real-face videos, two of them named alike in two folders, and a file of junk
    bytes named as a video."""
    root = tmp_path_factory.mktemp("inputs")
    (root / "more").mkdir()
    videos = [
        write_demo_video(root / "a.avi", 8),
        write_demo_video(root / "b.avi", 8, faces=3),
        write_demo_video(root / "clip.avi", 8, faces=2),
        write_demo_video(root / "more" / "clip.avi", 8, face_width=90),
    ]
    broken = root / "broken.mp4"
    broken.write_bytes(b"not a video at all " * 50)
    return root, videos, broken


@pytest.fixture(scope="module")
def scheduler():
    """One local cluster of 2 workers for the module's runs (`--scheduler`): its start costs
    seconds."""
    import dask
    from distributed import LocalCluster

    with (
        dask.config.set({"distributed.scheduler.worker-saturation": 1.0}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
    ):
        yield cluster.scheduler_address


def files(folder):
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.slow
def test_each_input_gets_the_files_analyze_writes_for_it_alone(inputs, scheduler, tmp_path,
                                                                capsys):  # fmt: skip
    root, videos, broken = inputs
    out = tmp_path / "out"
    batch = ["analyze", str(root), str(root / "more" / "clip.avi"), "--out-dir", str(out),
             "--csv", "--json", "--timeline", "--video", "--scheduler", scheduler,
             "--no-progress"]  # fmt: skip
    assert main(batch) == 1  # the broken one failed, the others were done
    printed = capsys.readouterr().out
    rows = re.findall(r"^(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+\s+(\d+)$", printed, re.M)
    assert len(rows) == 2  # a row per worker
    assert sum(int(r[1]) for r in rows) == 4 and sum(int(r[4]) for r in rows) == 1
    assert re.search(r"^all, in [\d.]+ s\s+4\s+32\s+\d+\s+[\d.]+\s+1$", printed, re.M)
    (failed,) = [line for line in printed.splitlines() if line.startswith("failed:")]
    assert str(broken) in failed and "cannot be read as a video" in failed

    clips = names([videos[2], videos[3]])
    assert clips[0] != clips[1] and all(n.startswith("clip-") for n in clips)
    for video, name in zip(videos, ["a", "b", *clips], strict=True):
        alone = tmp_path / f"alone-{name}"
        flags = {"--out": ".mp4", "--csv": ".csv", "--json": ".jsonl", "--timeline": ".png"}
        argv = [part for flag, suffix in flags.items() for part in (flag, f"{alone}{suffix}")]
        assert main(["analyze", str(video), *argv, "--no-progress"]) == 0
        for suffix in (".csv", ".jsonl", ".png", ".mp4"):
            together = (out / f"{name}{suffix}").read_bytes()
            assert together == (tmp_path / f"alone-{name}{suffix}").read_bytes(), name + suffix
    assert len(files(out)) == 16  # four files for each of the four videos, nothing partial

    # a rerun, of the same inputs listed in a file, skips the complete ones (their files
    # untouched) and tries the broken one again
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    listed = tmp_path / "inputs.txt"
    listed.write_text(f"# yesterday's batch\n{root}\n\n{root / 'more' / 'clip.avi'}\n")
    capsys.readouterr()
    assert main(["analyze", "--list", str(listed), *batch[3:]]) == 1
    printed = capsys.readouterr().out
    assert "skipped 4 inputs whose files are complete" in printed
    assert re.search(r"^all, in [\d.]+ s\s+0\s+0\s+0\s+[\d.]+\s+1$", printed, re.M)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == written


@pytest.mark.slow
def test_ctrl_c_stops_the_workers_in_order_and_leaves_nothing(tmp_path):
    """A terminal's Ctrl-C reaches its whole process group, the local cluster's workers too:
    they ignore it, the client stops the videos in hand and removes their partial files."""
    folder = tmp_path / "long"
    folder.mkdir()
    for name in ("a", "b"):
        write_demo_video(folder / f"{name}.avi", 200)
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "app", "analyze", str(folder), "--out-dir", str(out), "--csv",
         "--video", "--workers", "2", "--no-progress"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while len(list(out.glob("*partial*"))) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(out.glob("*partial*"))) == 4  # both workers are writing
    os.killpg(run.pid, signal.SIGINT)
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 2, stderr
    assert stderr.strip().splitlines() == [
        "error: interrupted; the inputs finished before are kept, nothing partial left"
    ]
    assert files(out) == [] and files(folder) == ["a.avi", "b.avi"]


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["{v}", "{v2}", "--csv"], r"make a batch: give --out-dir DIR"),
        (["{v}", "{v2}", "--out-dir", "{o}", "--csv", "f.csv"],
         r"--csv f\.csv: in a batch each input's file is named after it"),
        (["{v}", "{v2}", "--out-dir", "{o}", "--out", "a.mp4"], r"--out: .* give --video"),
        (["{v}", "{v2}", "--out-dir", "{o}"], r"nothing to write: give --video, --csv"),
        (["{v}", "--out-dir", "{o}", "--csv", "--workers", "2", "--scheduler", "tcp://h:1"],
         r"--workers: sizes the local cluster"),
        (["{v}", "--csv"], r"--csv: expected a file name \(a bare --csv is for a batch"),
        (["{v}", "--csv", "f.csv", "--video"], r"--video: for a batch .*give --out FILE"),
        (["--list", "{list}", "--out-dir", "{o}", "--csv"],
         r"--list .*list\.txt, line 3: .*missing\.avi: no such file or folder"),
        (["{d}", "--out-dir", "{d}/out", "--csv"], r"--out-dir .*: inside the input folder"),
        (["{d}", "--out-dir", "{o}", "--csv", "--model", "nosuch"],
         r"nosuch: not a model package"),
    ],
)  # fmt: skip
def test_bad_arguments_are_one_line_before_anything_runs(tmp_path, capsys, args, said):
    folder = tmp_path / "videos"
    folder.mkdir()
    for name in ("v.avi", "v2.avi"):
        (folder / name).write_bytes(b"never read")
    listed = tmp_path / "list.txt"
    listed.write_text("# the day's videos\nvideos/v.avi\nvideos/missing.avi\n")
    where = {"v": folder / "v.avi", "v2": folder / "v2.avi", "o": tmp_path / "out",
             "list": listed, "d": folder}  # fmt: skip
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    started = time.perf_counter()
    assert main(["analyze", *(a.format(**where) for a in args), "--no-progress"]) == 2
    assert time.perf_counter() - started < 5  # no cluster, no engine
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.match(r"error: .*" + said, err[0]), err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_folder_is_a_batch_only_when_it_holds_videos(tmp_path):
    photos, videos = tmp_path / "photos", tmp_path / "videos"
    for folder, name in ((photos, "1.jpg"), (videos, "1.mp4")):
        folder.mkdir()
        (folder / name).write_bytes(b"")
    assert not is_batch([str(photos)], None, None)  # one input: its photos, as before
    assert is_batch([str(videos)], None, None)
    assert is_batch([str(photos)], None, str(tmp_path / "out"))  # --out-dir: a batch of one
    assert not is_batch([str(tmp_path / "clip.mp4")], None, None)


def test_inputs_named_alike_get_names_of_their_own(tmp_path):
    paths = [tmp_path / "x" / "clip.mp4", tmp_path / "y" / "clip.mp4", tmp_path / "Clip.avi",
             tmp_path / "other.mp4"]  # fmt: skip
    first = names(paths)
    assert first[3] == "other"
    assert len(set(first)) == 4 and all(re.fullmatch(r"[Cc]lip-[0-9a-f]{6}", n) for n in first[:3])
    assert names(paths) == first  # a rerun names them alike


def test_without_the_cluster_extra_a_batch_says_what_to_install(tmp_path, capsys, monkeypatch):
    import app

    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    monkeypatch.delitem(sys.modules, "app.cluster", raising=False)
    monkeypatch.delattr(app, "cluster", raising=False)
    video = write_demo_video(tmp_path / "v.avi", 1)
    assert main(["analyze", str(video), "--out-dir", str(tmp_path / "o"), "--csv"]) == 2
    assert capsys.readouterr().err.strip() == (
        "error: a batch runs on Dask, which is not installed: pip install -e '.[cluster]' "
        "(or pip install 'fer-desktop[cluster]')"
    )


def test_the_app_imports_no_dask_until_a_batch_runs():
    code = ("import sys, app.__main__, app.analyze, app.batch; print(sorted(m for m in "
            "sys.modules if m.split('.')[0] in ('dask', 'distributed')))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.slow
def test_a_restarted_engine_reads_a_video_as_a_new_one():
    """A worker keeps one Recognizer for video after video: restarted, it gives the next video
    the ids, smoothing and results a new one would."""
    from fer_core.demo import demo_frame
    from fer_core.recognizer import Recognizer

    frames = [demo_frame(i, faces=2, label=False) for i in range(4)]

    def read(recognizer):
        results = [recognizer.process(frame, i) for i, frame in enumerate(frames)]
        return [[(f.track_id, f.box, f.label, f.probs) for f in r.faces] for r in results]

    with Recognizer() as recognizer:
        first = read(recognizer)
        recognizer.restart()
        assert read(recognizer) == first
    assert {face[0] for frame in first for face in frame} == {1, 2}

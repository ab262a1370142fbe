"""Bad input and faults end in one line naming the file, field or flag, exit status 2, no
traceback, and nothing lost: exports that never delete what they did not write, safe search
state, non-finite parity, damaged data, bad flags, Ctrl-C, unwritable folders, skipped records,
and run folders claimed by one run at a time."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from fer_core.zoo import (
    CARD,
    FORMAT,
    PackageError,
    default_package,
    list_packages,
    load_package,
    usable_packages,
)
from tests.conftest import ROOT, fer2013_rows, write_fer2013_csv
from trainer import cli
from trainer.data import DataError, read_dataset
from trainer.engine.rundir import RunDirError, claim_run_dir
from trainer.export.package import (
    check_package_folder,
    export_onnx,
    onnx_parity,
    swap_in,
)
from trainer.files import interrupts_deferred, signals_handled


def one_line(code: int, err: str, *words: str) -> str:
    """The single stderr line of a verb that failed as a user's mistake, holding `words`."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def run(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main([str(a) for a in argv])
    return code, capsys.readouterr().err


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fer") / "fer2013.csv.gz"
    return write_fer2013_csv(
        path, fer2013_rows({"Training": 14, "PublicTest": 7, "PrivateTest": 7})
    )


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# --- 1. export never deletes what it did not write --------------------------------------------


def test_export_into_a_run_folder_is_refused_and_the_run_kept(tmp_path, small_csv, capsys):
    run_dir = tmp_path / "runs" / "vgg"
    run_dir.mkdir(parents=True)
    for name in ("last.pt", "best.pt", "metrics.csv"):
        (run_dir / name).write_bytes(os.urandom(64))
    before = files_of(run_dir)
    args = ("export", run_dir / "best.pt", "--out", run_dir, "--dataset", "fer2013")
    code, err = run(capsys, *args, "--data", small_csv)
    one_line(code, err, str(run_dir), "not a model package")
    assert files_of(run_dir) == before
    assert [p.name for p in run_dir.parent.iterdir()] == ["vgg"]  # no .old or staging copy


@pytest.mark.parametrize(
    "card, extra, words",
    [
        ({"format": FORMAT}, "notes.txt", ["notes.txt", "does not write"]),
        ({"format": "fer-model-package/0"}, None, ["not a model package"]),
        ("{not json", None, ["not a model package"]),
    ],
)
def test_export_refuses_a_folder_that_is_not_only_an_earlier_package(tmp_path, card, extra, words):
    out = tmp_path / "pkg"
    out.mkdir()
    (out / CARD).write_text(card if isinstance(card, str) else json.dumps(card))
    (out / "model.onnx").write_bytes(b"onnx")
    if extra:
        (out / extra).write_text("mine")
    with pytest.raises(PackageError) as caught:
        check_package_folder(out)
    for word in words:
        assert word in str(caught.value)


def test_export_accepts_an_earlier_package_an_empty_folder_and_a_new_one(tmp_path):
    out = tmp_path / "pkg"
    check_package_folder(out)
    out.mkdir()
    check_package_folder(out)
    (out / CARD).write_text("{}")  # cards written before the format field: the reader's default
    for name in ("model.onnx", "model.int8.onnx", "model.pt", "confusion-val.png", "curves.png"):
        (out / name).write_bytes(b"x")
    check_package_folder(out)


def a_killed_export(models: Path, pid: int) -> Path:
    """What an export SIGKILLed after writing its card leaves: `.vgg.PID.staging`, whose card
    is a working package's."""
    staging = models / f".vgg.{pid}.staging"
    staging.mkdir(parents=True)
    (staging / CARD).write_bytes((default_package().path / CARD).read_bytes())
    (staging / "model.onnx").write_bytes(b"half")
    return staging


def test_a_killed_exports_staging_folder_is_removed_and_said(tmp_path, capsys):
    """Issue 31: a SIGKILLed export's staging folder stayed for good, unsaid."""
    stale = a_killed_export(tmp_path, 99_999_999)  # above any pid_max: no such process
    check_package_folder(tmp_path / "vgg")
    assert capsys.readouterr().err.splitlines() == [
        f"removed a stale staging folder left by an interrupted export (pid 99999999): {stale}"
    ]
    assert not list(tmp_path.iterdir())


def test_a_staging_folder_is_never_listed_as_a_package(tmp_path):
    """Issue 31: the app offered a killed export's staging folder as a usable package."""
    a_killed_export(tmp_path, 99_999_999)
    assert usable_packages(tmp_path) == ([], []) and list_packages(tmp_path) == []
    with pytest.raises(PackageError, match="not a model package"):
        load_package(".vgg.99999999.staging", tmp_path)


def test_an_export_of_a_package_another_live_export_assembles_is_refused(tmp_path, capsys):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        staging = a_killed_export(tmp_path, other.pid)
        before = files_of(staging)
        args = ("export", tmp_path / "best.pt", "--out", tmp_path / "vgg", "--dataset", "fer2013")
        code, err = run(capsys, *args, "--data", tmp_path / "missing.csv")
        one_line(code, err, "another export of this package is running", f"pid {other.pid}")
        assert files_of(staging) == before
    finally:
        other.kill()
        other.wait()


def test_swap_in_replaces_the_package_files_and_keeps_others(tmp_path):
    out, staging = tmp_path / "pkg", tmp_path / ".pkg.staging"
    out.mkdir()
    staging.mkdir()
    for name in (CARD, "model.onnx", "model.pt", "confusion-val.png", "notes.txt"):
        (out / name).write_text(f"old {name}")
    for name in (CARD, "model.onnx", "confusion-test.png"):
        (staging / name).write_text(f"new {name}")
    swap_in(staging, out)
    assert {n: b.decode() for n, b in files_of(out).items()} == {
        CARD: f"new {CARD}",
        "model.onnx": "new model.onnx",
        "confusion-test.png": "new confusion-test.png",
        "notes.txt": "old notes.txt",  # never the exporter's, never touched
    }
    assert not list(staging.iterdir())


def test_swap_in_moves_a_new_package_in_whole(tmp_path):
    out, staging = tmp_path / "pkg", tmp_path / ".pkg.staging"
    staging.mkdir()
    (staging / CARD).write_text("{}")
    swap_in(staging, out)
    assert files_of(out) == {CARD: b"{}"} and not staging.exists()


def test_ctrl_c_waits_until_the_package_files_are_swapped():
    finished = []
    with pytest.raises(KeyboardInterrupt), interrupts_deferred():
        os.kill(os.getpid(), signal.SIGINT)
        finished.append(True)  # reached: the interrupt waits for the block's end
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_sigterm_is_held_like_ctrl_c_and_raised_as_an_interrupt():
    from trainer.cli import _raise_interrupt

    before = signal.getsignal(signal.SIGTERM)
    finished = []
    as_interrupt = signals_handled((signal.SIGTERM,), _raise_interrupt)
    with pytest.raises(KeyboardInterrupt), as_interrupt, interrupts_deferred():
        os.kill(os.getpid(), signal.SIGTERM)
        finished.append(True)
    assert finished == [True]
    assert signal.getsignal(signal.SIGTERM) is before


# --- 2. search state loads without running code -----------------------------------------------


class _Payload:
    """Pickles as a call that makes a folder: the proof that loading ran code."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_sgas_resume_runs_no_code_from_its_state_file(tmp_path, small_csv, capsys):
    from trainer.search.sgas import STATE_FORMAT

    out, marker = tmp_path / "search", tmp_path / "ran-code"
    out.mkdir()
    torch.save({"format": STATE_FORMAT, "payload": _Payload(marker)}, out / "state.pt")
    args = ("search", "--method", "sgas", "--out", out, "--data", small_csv, "--resume")
    code, err = run(capsys, *args)
    one_line(code, err, str(out / "state.pt"), "not a readable SGAS search state")
    assert not marker.exists()


# --- 3. non-finite logits are never exported --------------------------------------------------


def _tiny_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 7)).eval()


def _poisoned(model: nn.Module) -> nn.Module:
    with torch.no_grad():
        model[1].bias[3] = float("nan")
    return model


@pytest.mark.slow
@pytest.mark.parametrize("broken", ["torch", "onnxruntime"])
def test_parity_refuses_non_finite_logits(tmp_path, broken):
    exported, compared = _tiny_net(), _tiny_net()
    _poisoned(compared if broken == "torch" else exported)
    path = export_onnx(exported, tmp_path / "model.onnx", (1, 8, 8))
    images = np.random.default_rng(0).random((4, 1, 8, 8), dtype=np.float32)
    with pytest.raises(PackageError, match=f"{broken} gives non-finite logits"):
        onnx_parity(compared, path, images)


# --- 4. damaged data, bad flags, Ctrl-C, unwritable folders ----------------------------------


def _damage(path: Path, how: str) -> Path:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    else:
        data[len(data) // 2 : len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
def test_damaged_gzip_is_one_line_naming_the_file(tmp_path, how, capsys):
    path = write_fer2013_csv(tmp_path / "fer2013.csv.gz", fer2013_rows({"Training": 200}))
    _damage(path, how)
    with pytest.raises(DataError):  # not EOFError / zlib.error / BadGzipFile
        read_dataset("fer2013", path)
    code, err = run(capsys, "framing", "--dataset", "fer2013", "--data", path)
    line = one_line(code, err, str(path))
    assert ("ends early" in line) if how == "truncated" else ("corrupt" in line or "gzip" in line)


def _png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((48, 48), 128, np.uint8))
    return path


@pytest.fixture
def faces_with_bad_files(tmp_path) -> Path:
    """A class-folder dataset with one empty and one undecodable image among good ones."""
    root = tmp_path / "faces"
    _png(root / "happy" / "a.png")
    _png(root / "sad" / "b.png")
    (root / "happy" / "empty.png").write_bytes(b"")
    (root / "sad" / "text.png").write_text("not an image")
    return root


def test_folder_reader_refuses_or_counts_empty_and_undecodable_images(faces_with_bad_files):
    root = faces_with_bad_files
    with pytest.raises(DataError, match="empty image file"):
        read_dataset("folder", root)
    data = read_dataset("folder", root, skip_bad=True)
    assert len(data["all"]) == 2
    assert data.skipped.counts == {"empty image file (0 bytes)": 1, "not a readable image "
                                   "(expected PNG, JPEG, BMP, TIFF or WebP)": 1}  # fmt: skip


def test_affectnet_counts_empty_and_missing_images_with_skip_bad(tmp_path):
    lists = tmp_path / "Manually_Annotated_file_lists"
    lists.mkdir()
    for name in ("training.csv", "validation.csv"):
        rows = "".join(f"0/{name[0]}{i}.jpg,{i}\n" for i in range(3))
        (lists / name).write_text("subDirectory_filePath,expression\n" + rows)
    images = tmp_path / "Manually_Annotated_Images" / "0"
    for name in ("t0.jpg", "v0.jpg", "v1.jpg", "v2.jpg"):
        _png(images / name)
    (images / "t1.jpg").write_bytes(b"")  # t2.jpg is missing
    assert len(read_dataset("affectnet", tmp_path)["train"]) == 3  # unchecked without skip_bad
    data = read_dataset("affectnet", tmp_path, skip_bad=True)
    assert len(data["train"]) == 1 and len(data["val"]) == 3
    assert data.skipped.counts == {"empty image file (0 bytes)": 1, "image file is missing": 1}


def test_zero_byte_image_in_a_decoded_set_is_a_data_error(tmp_path):
    root = tmp_path / "CK+48"
    _png(root / "happy" / "S010_006_00000013.png")
    (root / "happy" / "S011_001_00000001.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"S011_001_00000001\.png: empty image file"):
        read_dataset("ckplus", root)
    assert read_dataset("ckplus", root, skip_bad=True).skipped.total == 1


def test_cli_tells_how_many_records_it_skipped(faces_with_bad_files, tmp_path, capsys):
    data = ["--dataset", "folder", "--data", faces_with_bad_files, "--skip-bad", "--split", "all"]
    code, err = run(capsys, "saliency", tmp_path / "none.pt", *data, "--index", "5", "--out", "s")
    skipped, failed = err.strip().splitlines()
    assert skipped.startswith("skipped 2 malformed records (empty image file (0 bytes): 1, ")
    assert skipped.endswith(f"first: {faces_with_bad_files / 'happy' / 'empty.png'}: "
                            "empty image file (0 bytes)")  # fmt: skip
    assert code == 2 and failed.startswith("error: --index")


def test_skipped_summary_names_the_commonest_reasons_first():
    from trainer.data.core import Skipped

    skipped = Skipped()
    for reason, n in (("a", 1), ("b", 3), ("c", 2), ("d", 1)):
        for i in range(n):
            skipped.add(reason, f"f:{reason}{i}")
    assert skipped.summary() == (
        "skipped 7 malformed records (b: 3, c: 2, a: 1, 1 more reasons); first: f:a0: a"
    )


TRAIN = ["train", "--model", "vgg-fer-s", "--dataset", "fer2013", "--data", "x.csv", "--out", "r"]
EXPORT = ["export", "m.pt", "--out", "p", "--dataset", "fer2013", "--data", "x"]
ENSEMBLE = ["ensemble", "m.pt", "--dataset", "fer2013", "--data", "x"]


@pytest.mark.parametrize(
    "argv, flag",
    [
        ([*TRAIN, "--batch-size", "0"], "--batch-size"),
        ([*TRAIN, "--batch-size", "-5"], "--batch-size"),
        ([*TRAIN, "--epochs", "0"], "--epochs"),
        ([*TRAIN, "--threads", "-3"], "--threads"),
        ([*TRAIN, "--threads", "two"], "--threads"),
        (["throughput", "--batch-size", "0"], "--batch-size"),
        (["search", "--method", "sgas", "--out", "s", "--batch-size", "0"], "--batch-size"),
        (["evaluate", "m", "--dataset", "fer2013", "--data", "x", "--threads", "-3"], "--threads"),
        ([*EXPORT, "--int8-tolerance", "-1"], "--int8-tolerance"),
        ([*ENSEMBLE, "--int8-tolerance", "nan"], "--int8-tolerance"),
        # issue 31: these were accepted (a hung machine, a run that trains nothing)
        ([*TRAIN, "--threads", "100000"], "--threads"),
        (["benchmark", "--threads", "100000"], "--threads"),
        ([*TRAIN, "--lr", "inf"], "--lr"),
        ([*TRAIN, "--lr", "nan"], "--lr"),
        ([*TRAIN, "--lr", "0"], "--lr"),
        ([*TRAIN, "--momentum", "-inf"], "--momentum"),
        ([*TRAIN, "--zoom", "0.9", "inf"], "--zoom"),
    ],
)
def test_bad_numbers_are_refused_naming_the_flag(argv, flag, capsys):
    code, err = run(capsys, *argv)
    one_line(code, err, f"argument {flag}", "expected", "--help")


def test_device_cuda_without_a_gpu_is_refused_before_anything_runs(
    tmp_path, small_csv, capsys, monkeypatch
):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "run"
    code, err = run(capsys, *TRAIN[:-4], "--data", small_csv, "--out", out, "--device", "cuda")
    one_line(code, err, "--device cuda", "no CUDA device")
    assert not out.exists()


def _failing_verb(monkeypatch, error: BaseException) -> None:
    def fail(args):
        raise error

    monkeypatch.setitem(cli.VERBS, "models", cli.Verb("fails", lambda p: None, fail))


@pytest.mark.parametrize(
    "error, words",
    [
        (KeyboardInterrupt(), ["interrupted", "--resume"]),
        (OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/runs/a/last.pt"),
         ["error: /runs/a/last.pt: No space left on device (ENOSPC)"]),
        (PackageError("/m/card.json: field 'labels' is missing"), ["error: /m/card.json"]),
        (DataError("/d/fer2013.csv:7: emotion '9'"), ["error: /d/fer2013.csv:7"]),
        (FileExistsError("/s/state.pt already holds a search"), ["error: /s/state.pt"]),
    ],
)  # fmt: skip
def test_failures_are_one_line_with_status_2(monkeypatch, capsys, error, words):
    _failing_verb(monkeypatch, error)
    code, err = run(capsys, "models")
    one_line(code, err, *words)


def test_a_bug_keeps_its_traceback(monkeypatch):
    _failing_verb(monkeypatch, ZeroDivisionError("a bug"))
    with pytest.raises(ZeroDivisionError):
        cli.main(["models"])


def test_unwritable_out_names_the_path_and_the_system_error(tmp_path, capsys):
    votes = tmp_path / "fer2013new.csv"
    votes.write_text(
        "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,"
        "unknown,NF\n"
        + "".join(f"Training,fer{i:07d}.png,{i % 3},4,1,2,1,0,1,0,0,0\n" for i in range(20))
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    code, err = run(capsys, "fes", "--votes", votes, "--out", blocker / "fes.json")
    one_line(code, err, f"error: {blocker}: File exists (EEXIST)")  # mkdir of a file


@pytest.mark.slow
def test_ctrl_c_ends_in_one_line_and_leaves_whole_files(tmp_path):
    """A real SIGINT while a verb rewrites a file: exit 2, one line, the file whole."""
    state = tmp_path / "state.json"
    script = textwrap.dedent(
        f"""
        import json, sys
        from trainer import cli
        from trainer.files import atomic_write

        def rewrite(args):
            for i in range(10**9):
                text = json.dumps({{"i": i, "pad": "x" * 100_000}})
                atomic_write({str(state)!r}, lambda tmp: open(tmp, "w").write(text))
                if i == 0:
                    print("ready", flush=True)

        cli.VERBS["models"] = cli.Verb("rewrites", lambda p: None, rewrite)
        sys.exit(cli.main(["models"]))
        """
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    one_line(proc.returncode, err, "interrupted")
    assert json.loads(state.read_text())["pad"] == "x" * 100_000
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temp file left


def test_package_error_is_one_line(tmp_path, small_csv, capsys):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / CARD).write_text(json.dumps({"name": "x"}))
    code, err = run(capsys, "evaluate", package, "--dataset", "fer2013", "--data", small_csv)
    one_line(code, err, "error: ", "card.json")


# --- 6. run folders -----------------------------------------------------------------------------


def test_a_second_claim_on_a_run_folder_is_refused_until_the_first_ends(tmp_path):
    out = tmp_path / "run"
    with claim_run_dir(out, resume=False) as claimed:
        assert claimed == out and out.is_dir()
        with (
            pytest.raises(RunDirError, match=f"{out}: another run \\(pid {os.getpid()}\\)"),
            claim_run_dir(out, resume=True),
        ):
            pass
    with claim_run_dir(out, resume=False):  # released on exit
        pass
    assert [p.name for p in out.iterdir()] == [".lock"]  # the probe is gone


def test_a_claim_is_refused_across_processes(tmp_path):
    out = tmp_path / "run"
    with claim_run_dir(out, resume=False):
        script = (
            "from pathlib import Path; from trainer.engine.rundir import claim_run_dir\n"
            f"with claim_run_dir(Path({str(out)!r}), resume=True): pass\n"
        )
        proc = subprocess.run(
            [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    assert proc.returncode == 1 and "RunDirError" in proc.stderr and "another run" in proc.stderr


def test_a_new_run_into_a_finished_run_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.pt").write_bytes(b"checkpoint")
    with (
        pytest.raises(RunDirError, match="use --resume or another --out"),
        claim_run_dir(out, resume=False),
    ):
        pass
    with claim_run_dir(out, resume=True):
        pass
    assert (out / "last.pt").read_bytes() == b"checkpoint"


@pytest.mark.parametrize("left", ["best.pt", "metrics.csv"])
def test_a_new_run_into_what_a_killed_run_left_is_refused(tmp_path, small_csv, capsys, left):
    """Issue 31: a run killed between saving best.pt / metrics.csv and last.pt leaves no
    last.pt; a new run into that folder overwrote them silently."""
    out = tmp_path / "run"
    out.mkdir()
    (out / left).write_bytes(b"the old run's")
    flags = ("--data", small_csv, "--out", out, "--epochs", "1", "--threads", "1")
    code, err = run(capsys, *TRAIN[:-4], *flags)
    one_line(code, err, f"error: {out}: already holds a run's {left}", "no last.pt", "--out")
    assert files_of(out) == {left: b"the old run's"}  # refused before the data, or a lock


@pytest.mark.parametrize("planted", ["symlink", "hard link"])
def test_a_lock_that_links_elsewhere_is_refused_and_its_file_untouched(tmp_path, planted):
    """Issue 31: `train --resume` wrote its pid into the file a `.lock` symlink named."""
    victim = tmp_path / "notes.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    if planted == "symlink":
        (out / ".lock").symlink_to(victim)
    else:
        os.link(victim, out / ".lock")
    with (
        pytest.raises(RunDirError, match=f"{out / '.lock'}: a (symbolic|hard) link; expected"),
        claim_run_dir(out, resume=True),
    ):
        pass
    assert victim.read_text() == "precious"


def test_the_write_probe_never_writes_through_a_link(tmp_path):
    victim = tmp_path / "notes.txt"
    victim.write_text("precious")
    out = tmp_path / "run"
    out.mkdir()
    (out / f".write-probe-{os.getpid()}").symlink_to(victim)  # the name the probe once had
    with claim_run_dir(out, resume=False):
        pass
    assert victim.read_text() == "precious"


def test_an_unwritable_run_folder_is_refused(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with (
        pytest.raises(RunDirError, match=f"{blocker / 'run'}: not a writable folder"),
        claim_run_dir(blocker / "run", resume=False),
    ):
        pass


def test_a_nearly_full_disk_is_refused(tmp_path, monkeypatch):
    import shutil

    from trainer.engine import rundir

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda path: usage._replace(free=10 * 2**20))
    with (
        pytest.raises(RunDirError, match=r"only 10\.0 MiB free.*at least 64 MiB"),
        claim_run_dir(tmp_path / "run", resume=False),
    ):
        pass


def test_trainer_outputs_write_a_device_or_fifo_through_never_replace_it(
    tmp_path, capsys, null_device
):
    """Issue 31: `fes --out`, `compare --plot` and `saliency --out` (all `atomic_write`)
    renamed a regular file over the device node or FIFO they were given."""
    import stat
    import threading

    from tests.test_compare import _run
    from tests.test_fes import write_votes
    from trainer.files import atomic_write

    votes = write_votes(tmp_path / "votes.csv", [[5, 0, 0, 5, 0, 0, 0, 0, 0, 0]] * 3)
    node = null_device  # None where only root may make one; the FIFO below takes the same path
    if node is not None:
        assert cli.main(["fes", "--votes", str(votes), "--out", str(node)]) == 0
        run_dir = _run(tmp_path / "run", [0.3, 0.4])
        assert cli.main(["compare", run_dir, "--plot", str(node)]) == 0
        atomic_write(node, lambda path: Path(path).write_bytes(b"saliency"))
        assert stat.S_ISCHR(os.lstat(node).st_mode)
    fifo = tmp_path / "fes.json"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    assert cli.main(["fes", "--votes", str(votes), "--out", str(fifo)]) == 0
    reader.join(10)
    assert json.loads(got[0])["labels"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_checkpoint_save_on_a_full_disk_is_the_one_line_enospc(tmp_path, capsys):
    """Issue 31: torch given a file name said "RuntimeError: PytorchStreamWriter failed writing
    file" (a traceback) when the disk filled mid-training; /dev/full fails every write."""
    from fer_core.view import InputView
    from trainer.engine import checkpoint

    ckpt = checkpoint.Checkpoint(
        {"model": "vgg-fer-s"}, ["a", "b"], InputView(40), {"w": torch.zeros(1 << 18)}
    )
    with pytest.raises(OSError) as caught:
        checkpoint.save("/dev/full", ckpt)
    assert caught.value.errno == errno.ENOSPC
    assert cli._os_error(caught.value) == "error: /dev/full: No space left on device (ENOSPC)"
    last = tmp_path / "last.pt"
    checkpoint.save(last, ckpt)  # a whole file is still written where there is room
    assert checkpoint.load(last).labels == ["a", "b"]


@pytest.mark.parametrize("flag", ["--init", "--teacher"])
@pytest.mark.parametrize("weights", ["keys", "garbage", "list"])
def test_a_package_with_crafted_torch_weights_is_one_line(tmp_path, small_csv, capsys, flag,
                                                          weights):  # fmt: skip
    """Issue 31: a package whose model.pt (its checksum matching) is not the network's
    weights was a traceback from torch; no code runs either way (weights_only)."""
    import shutil

    from fer_core.zoo import default_package, sha256

    package = tmp_path / "crafted"
    shutil.copytree(default_package().path, package)
    pt = package / "model.pt"
    if weights == "garbage":
        pt.write_bytes(b"PK\x03\x04 not a torch file")
    else:
        torch.save({"w": torch.zeros(3)} if weights == "keys" else [1, 2], pt)
    card = json.loads((package / CARD).read_text())
    card["sha256"]["model.pt"] = sha256(pt)
    (package / CARD).write_text(json.dumps(card))
    out = tmp_path / "run"
    code, err = run(capsys, *TRAIN[:-4], "--data", small_csv, "--out", out, flag, package,
                    "--epochs", "1")  # fmt: skip
    one_line(code, err, f"error: {pt}: not the weights of the vgg-fer-s", "--torch-weights")


@pytest.mark.parametrize("verb", ["train", "relabel", "kfold"])
def test_an_out_that_cannot_be_written_is_told_before_the_data_is_read(tmp_path, capsys, verb):
    """Issue 31: a read-only or full --out was found only after the whole dataset was read
    (21 s against 4 s); here the data does not even exist, and --out is told first."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = blocker / "run"
    data = ["--dataset", "fer2013", "--data", tmp_path / "missing.csv", "--out", out]
    argv = {
        "train": ["train", "--model", "vgg-fer-s", *data],
        "relabel": ["relabel", "s.pt", *data, "--no-fes"],
        "kfold": ["kfold", "m.pt", *data],
    }[verb]
    code, err = run(capsys, *argv)
    one_line(code, err, f"error: {out}: not a writable folder")

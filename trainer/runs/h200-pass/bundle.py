"""Pick what comes back (small files, then best.pt, then unfinished runs' last.pt) within 62 MiB,
one tar split into 15 MiB parts."""

import subprocess
import sys
import tarfile
from pathlib import Path

out, rcfile = Path(sys.argv[1]), Path(sys.argv[2])
runs = Path("trainer/runs")
rc = dict(line.split() for line in rcfile.read_text().splitlines() if len(line.split()) == 2)
dirs = {
    "afn8": "autofernet-l8c16-kd",
    "zen": "zennet-sa-live-kd",
    "afn36": "autofernet-l12c36-kd",
    "vgg2": "vgg-fer-s-seed2",
    "vggfp": "vgg-fer-s-ferplus7",
    "afn-tiny": "afn-tiny",
}
cands = [
    d
    for d in runs.iterdir()
    if d.is_dir()
    and d.name
    not in ("fes", "kfold-vgg-fer-ck4", "zen-live", "zen-live-mb", "zen-study", "vgg-fer-s-ck")
]
small = [f for d in cands for f in d.iterdir() if f.suffix != ".pt"]
best = [d / "best.pt" for d in cands if (d / "best.pt").exists()]
unfinished = [
    runs / dirs[j] / "last.pt"
    for j, c in rc.items()
    if c != "0" and j in dirs and (runs / dirs[j] / "last.pt").exists()
]
finished_last = [
    d / "last.pt" for d in cands if (d / "last.pt").exists() and d / "last.pt" not in unfinished
]
chosen, total = [], 0
for f in small + best + unfinished + finished_last:
    size = f.stat().st_size
    if total + size <= 62 * 2**20:
        chosen.append(f)
        total += size
    else:
        print("left out", f, size)
with tarfile.open(out / "bundle.tar", "w") as tar:
    for f in chosen:
        tar.add(f)
subprocess.run(
    ["split", "-b", str(15 * 2**20), "-d", str(out / "bundle.tar"), str(out / "bundle.tar.")],
    check=True,
)
(out / "bundle.tar").unlink()
print(len(chosen), "files", total / 2**20, "MiB")

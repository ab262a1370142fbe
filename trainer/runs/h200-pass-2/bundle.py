"""What comes back from the device within its cap (8 files of 16 MiB, 64 MiB in all): the runs'
small files and gpu logs, then per job in the order given its last.pt when it did not finish
(to continue it), else its best.pt; one tar split into 15 MiB parts.

    python bundle.py OUT RC_FILE RUNS JOB=RUN_FOLDER...
"""

import subprocess
import sys
import tarfile
from pathlib import Path

out, rcfile, runs = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
jobs = dict(arg.split("=", 1) for arg in sys.argv[4:])
rc = dict(line.split()[:2] for line in rcfile.read_text().splitlines() if line.strip())
folders = [runs / d for d in jobs.values() if (runs / d).is_dir()]
small = [f for d in [*folders, rcfile.parent] for f in sorted(d.iterdir()) if f.suffix != ".pt"]
heavy = []
for job, d in jobs.items():
    name = "best.pt" if rc.get(job) == "0" else "last.pt"
    heavy += [runs / d / name] if (runs / d / name).exists() else []
heavy += [runs / d / "best.pt" for job, d in jobs.items() if rc.get(job) != "0"]
chosen, total = [], 0
for f in small + heavy:
    if f.exists() and f not in chosen and total + f.stat().st_size <= 62 * 2**20:
        chosen.append(f)
        total += f.stat().st_size
    elif f.exists() and f not in chosen:
        print("left out", f, f.stat().st_size)
with tarfile.open(out / "bundle.tar", "w") as tar:
    for f in chosen:
        tar.add(f)
subprocess.run(
    ["split", "-b", str(15 * 2**20), "-d", str(out / "bundle.tar"), str(out / "bundle.tar.")],
    check=True,
)
(out / "bundle.tar").unlink()
print(len(chosen), "files", round(total / 2**20, 1), "MiB")

#!/bin/bash
# A record of the call that ran (or was prepared); `python -m trainer device-pass` replaces its helpers (see trainer/README.md, "A pass on a lent GPU").
# One device call: unpack FER2013, then side by side on the GPU the augmentation lever
# (geometric, and both; the photometric arm ran on the CPU) against the seed-2 control of the
# first pass (same recipe, seed and epochs); bundle what comes back. (The ensemble-3
# distillation it also resumed finished on the CPU on 2026-12-04.)
# DRY=1: the same commands on the CPU with tiny settings (a local check of the flags).
# Before it: pack FER2013 (`python trainer/runs/h200-pass/pack.py FER2013.csv.gz .gpu/partA.npz
# .gpu/partB.npz 17944`), `stash.sh stash`; call 1 carries .gpu/partA.npz and moves it to
# /root/fer; call 2 (within the 30 s the machine stays warm) carries .gpu/partB.npz and runs this
# script; after it `stash.sh restore`, untar the returned parts over the tree.
set -u
export PYTHONUNBUFFERED=1
PY=${PY:-python3}; OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
T0=$(date +%s); BUDGET=${BUDGET:-470}
left() { echo $((T0 + BUDGET - $(date +%s))); }
R=${R:-trainer/runs}; D=../shared/data/fer2013; LOGS=$R/gpu-logs-2; mkdir -p "$LOGS"
DATA="--dataset fer2013 --data $D"
if [ "${DRY:-0}" = 1 ]; then DEV="--device cpu --threads 1"; EP="--epochs 1 --max-images 256"
else DEV="--device cuda"; EP="--epochs 60"; fi
echo "== start $(date -u +%T)"; nvidia-smi --query-gpu=name,memory.used --format=csv 2>/dev/null
if [ ! -s $D/fer2013.csv ] && [ ! -s $D/fer2013.csv.gz ]; then
  mkdir -p $D || exit 3
  A=${PARTA:-/root/fer/partA.npz}; [ -s "$A" ] || { echo "no $A"; exit 4; }
  $PY trainer/runs/h200-pass/unpack.py "$A" .gpu/partB.npz $D/fer2013.csv || exit 5
  md5sum $D/fer2013.csv
fi
step() { local name=$1; shift; local t=$(left); [ $t -gt 15 ] || { echo "$name skipped" >> $LOGS/rc.txt; return 1; }
  timeout -k 15 $t "$PY" -m trainer "$@" > $LOGS/$name.log 2>&1; local rc=$?
  echo "$name $rc" >> $LOGS/rc.txt; return $rc; }
VGG="--model vgg-fer-s --recipe cpu-fast --seed 2 $EP $DATA $DEV"
GEO="--rotate 20 --zoom 0.8 1.25 --shift 0.15 --shear 10 --stretch 0.15"
step geo train $VGG $GEO --out $R/vgg-fer-s-geo &
step strong train --model vgg-fer-s --recipe cpu-strong --seed 2 $EP $DATA $DEV --out $R/vgg-fer-s-strong &
wait
echo "== done training $(date -u +%T), left $(left) s"; cat $LOGS/rc.txt
for j in geo strong; do tail -c 400 $LOGS/$j.log 2>/dev/null | tr '\r' '\n' | tail -2; done
$PY trainer/runs/h200-pass-2/bundle.py "$OUT" $LOGS/rc.txt $R \
  strong=vgg-fer-s-strong geo=vgg-fer-s-geo
ls -la "$OUT"

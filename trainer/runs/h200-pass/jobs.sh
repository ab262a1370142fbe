#!/bin/bash
# A record of the call that ran (or was prepared); `python -m trainer device-pass` replaces its helpers (see trainer/README.md, "A pass on a lent GPU").
# One device call: unpack FER2013, probe, train four jobs side by side on the GPU, bundle.
# DRY=1: the same chain on the CPU with tiny settings (a local check of the script).
set -u
export PYTHONUNBUFFERED=1
PY=${PY:-python3}; OUT=${OUT:-/tmp/gpu_out}; mkdir -p "$OUT"
T0=$(date +%s); BUDGET=${BUDGET:-500}
left() { echo $((T0 + BUDGET - $(date +%s))); }
R=trainer/runs; D=../shared/data/fer2013; LOGS=$R/gpu-logs; mkdir -p "$LOGS"
DATA="--dataset fer2013 --data $D"
if [ "${DRY:-0}" = 1 ]; then DEV="--device cpu --threads 1"; TINY="--max-images 256"; E36=1; EV=1; RE=1
else DEV="--device cuda"; TINY=""; EV=60; RE=5; fi
echo "== start $(date -u +%T)"; nvidia-smi --query-gpu=name,memory.used --format=csv 2>/dev/null
if [ ! -s $D/fer2013.csv ] && [ ! -s $D/fer2013.csv.gz ]; then
  mkdir -p $D || exit 3
  A=${PARTA:-/root/fer/partA.npz}; [ -s "$A" ] || { echo "no $A"; exit 4; }
  $PY .gpu/unpack.py "$A" .gpu/partB.npz $D/fer2013.csv || exit 5
  cp .gpu/fer2013new.csv $D/ 2>/dev/null
  md5sum $D/fer2013.csv
fi
if [ "${DRY:-0}" != 1 ]; then  # Auto-FERNet (L12 C36) images/s alone decides its epochs
  if [ -s /root/fer/probe.json ]; then cp /root/fer/probe.json $LOGS/probe.json
  else $PY -m trainer throughput autofernet --batch-size 256 --seconds 6 --device cuda --json > $LOGS/probe.json 2> $LOGS/probe.err; fi
  cat $LOGS/probe.json
  E36=$($PY -c "import json,sys;r=json.load(open('$LOGS/probe.json'))[0];v=[x for k,x in r.items() if 'images' in k and isinstance(x,(int,float))][0];print(max(12,min(60,int(0.4*(${BUDGET}-60)*v/30000))))" 2>>$LOGS/probe.err || echo 20)
fi
echo "== autofernet l12c36 epochs: $E36  (left $(left) s)"
step() { local name=$1; shift; local t=$(left); [ $t -gt 15 ] || { echo "skip $name" >> $LOGS/rc.txt; return 1; }
  timeout -k 15 $t "$PY" -m trainer "$@" > $LOGS/$name.log 2>&1; local rc=$?
  echo "$name $rc" >> $LOGS/rc.txt; return $rc; }
relabel_pair() { local src=$1 out=$2 ep=$3; shift 3
  step $out-relabel relabel $src $DATA --out $R/$out-relabel --fes $R/fes/fes.json --lr 0.005 --epochs $ep --precision fp32 $DEV "$@" &
  step $out-norelabel relabel $src $DATA --out $R/$out-norelabel --no-relabel --lr 0.005 --epochs $ep --precision fp32 $DEV "$@" &
  wait; }
if [ "${DRY:-0}" = 1 ]; then  # resumes are not tiny: check the relabel chain on a tiny run
  step afn-tiny train --model autofernet --model-option layers=3 --model-option channels=8 --epochs 1 $TINY $DATA $DEV --out $R/afn-tiny &&
    relabel_pair $R/afn-tiny/last.pt afn-tiny 1 &
else
  { step afn8 train --resume --out $R/autofernet-l8c16-kd $DATA --precision fp32 $DEV &&
    relabel_pair $R/autofernet-l8c16-kd/last.pt autofernet-l8c16-kd 3; } &
  { step zen train --resume --out $R/zennet-sa-live-kd $DATA --precision fp32 $DEV &&
    relabel_pair $R/zennet-sa-live-kd/last.pt zennet-sa-live-kd $RE; } &
fi
step afn36 train --model autofernet --model-option layers=12 --model-option channels=36 --recipe autofernet \
  --epochs $E36 --batch-size 256 --lr 0.1 --drop-path 0.1 --teacher assets/models/vgg-fer-s $TINY $DATA $DEV \
  --seed 0 --out $R/autofernet-l12c36-kd &
step vgg2 train --model vgg-fer-s --recipe cpu-fast --epochs $EV --seed 2 $TINY $DATA $DEV --out $R/vgg-fer-s-seed2 &
step vggfp train --model vgg-fer-s --recipe cpu-fast --epochs $EV --seed 1 $TINY --dataset ferplus7 --data $D $DEV --out $R/vgg-fer-s-ferplus7 &
wait
echo "== done training $(date -u +%T), left $(left) s"; cat $LOGS/rc.txt
$PY .gpu/bundle.py "$OUT" $LOGS/rc.txt
ls -la "$OUT"

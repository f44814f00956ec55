#!/usr/bin/env bash
# Reproduces the committed demo models end to end, seeded:
#   build -> `scanline dataset` (train, threat-rich and validation seeds) -> train_goods.py, train_threats.py
#   -> export.py (models/goods-v1, models/threats-v1: model.onnx, model.fp16.onnx, model.json)
#   -> check-onnxruntime.mjs when onnxruntime-node is installed.
#
# Usage: models/train/run.sh            (from anywhere; runs in the repository root)
# Environment:
#   PYTHON             default /usr/bin/python3 (Debian's python3-torch 1.13, python3-onnx, python3-numpy)
#   OMP_NUM_THREADS    default 2
#   SCANLINE_TRAIN_DIR datasets and checkpoints, default data/train (git-ignored; ~5 GB)
#   REUSE_DATA=1       keep dataset directories that already have an index.json
#
# Seeds: train 1000-1399 (threat probability 0.5, every tile), threat-rich 2000-2999 (every truck carries threats,
# only tiles with threat cells), threat projection library 3000-3999, validation 1400-1599 (threat probability 0.5).
# Seeds 5000 and up are held out for `scanline eval` and never used here.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON=${PYTHON:-/usr/bin/python3}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
WORK=${SCANLINE_TRAIN_DIR:-data/train}
mkdir -p "$WORK"
started=$(date +%s)

npm run build --silent

# One `scanline dataset` export per directory; two at a time (the exporter is single-threaded).
dataset() {
  local name=$1 seeds=$2
  shift 2
  if [[ "${REUSE_DATA:-0}" == 1 && -f "$WORK/$name/index.json" ]]; then
    echo "dataset $name: reusing $WORK/$name"
    return 0
  fi
  echo "dataset $name: seeds $seeds $*"
  node bin/scanline.js dataset --seeds "$seeds" --out "$WORK/$name" "$@" >"$WORK/$name.json" 2>"$WORK/$name.log"
}
pair() {
  local a b
  dataset $1 & a=$!
  dataset $2 & b=$!
  wait $a && wait $b
}
pair "train-a 1000..1199 --threat-probability 0.5" "train-b 1200..1399 --threat-probability 0.5"
pair "val-a 1400..1499 --threat-probability 0.5" "val-b 1500..1599 --threat-probability 0.5"
pair "threats-a 2000..2499 --threat-probability 1 --keep threats" "threats-b 2500..2999 --threat-probability 1 --keep threats"
node models/train/threat-patches.mjs --seeds 3000..3999 --out "$WORK/patches"
data_done=$(date +%s)

cd models/train
if [[ "$WORK" == /* ]]; then W=$WORK; else W=../../$WORK; fi
$PYTHON train_goods.py --train $W/train-a $W/train-b --val $W/val-a $W/val-b --out $W/goods.pt --seed 1 \
  | tee $W/goods-train.log
$PYTHON train_threats.py --train $W/train-a $W/train-b $W/threats-a $W/threats-b --val $W/val-a $W/val-b \
  --patches $W/patches --out $W/threats.pt --seed 1 --width 48 --epochs 24 | tee $W/threats-train.log
train_done=$(date +%s)
$PYTHON export.py --goods $W/goods.pt --threats $W/threats.pt --val $W/val-a $W/val-b --models .. | tee $W/export.log
cd ../..

if [[ -d node_modules/onnxruntime-node ]]; then
  node models/train/check-onnxruntime.mjs "$WORK/val-a" --limit 4096
else
  echo "onnxruntime-node is not installed: skipped the ONNX Runtime check (export.py checked the graphs with numpy)"
fi
echo "datasets $((data_done - started)) s, training $((train_done - data_done)) s, total $(($(date +%s) - started)) s"

#!/usr/bin/env bash
# Reproduces the committed demo models end to end, seeded:
#   build -> `scanline dataset` (train and validation seeds) -> train_goods.py
#   -> threats.sh (its own sharded datasets, then train_threats.py; a GPU when torch sees one)
#   -> export.py (models/goods-v1, models/threats-v1: model.onnx, model.fp16.onnx, model.json)
#   -> scanline fit-opinion (calibration and out-of-distribution statistics into both model.json; checked on
#      exports rendered as other scanners would, never fitted on them)
#   -> check-onnxruntime.mjs when onnxruntime-node is installed.
#
# Usage: models/train/run.sh            (from anywhere; runs in the repository root)
# Environment:
#   PYTHON             default /usr/bin/python3 (Debian's python3-torch 1.13, python3-onnx, python3-numpy)
#   OMP_NUM_THREADS    default 2
#   SCANLINE_TRAIN_DIR datasets and checkpoints, default data/train (git-ignored; ~5 GB)
#   REUSE_DATA=1       keep dataset directories that already have an index.json
#   REALISM            basic (default: the committed models) or hard: every dataset, the threat model's included,
#                      from the harder simulator (tools/simulator/realism.ts; issue 15, item 6)
#   THREATS_CKPT       a threat checkpoint to export instead of training one (e.g. from threats.sh on a GPU box:
#                      threat training takes ~6 min on an H100 and hours on 2 CPU cores)
#
# Seeds (goods): train 1000-1399 (threat probability 0.5, every tile), validation 1400-1599. threats.sh adds
# 4000-4999, threat-rich 2000-2999 and the projection library 3000-3999 for the threat model.
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
  node bin/scanline.js dataset --seeds "$seeds" --out "$WORK/$name" --realism "${REALISM:-basic}" "$@" >"$WORK/$name.json" 2>"$WORK/$name.log"
}
pair() {
  local a b
  dataset $1 & a=$!
  dataset $2 & b=$!
  wait $a && wait $b
}
pair "train-a 1000..1199 --threat-probability 0.5" "train-b 1200..1399 --threat-probability 0.5"
pair "val-a 1400..1499 --threat-probability 0.5" "val-b 1500..1599 --threat-probability 0.5"
data_done=$(date +%s)

cd models/train
if [[ "$WORK" == /* ]]; then W=$WORK; else W=../../$WORK; fi
$PYTHON train_goods.py --train $W/train-a $W/train-b --val $W/val-a $W/val-b --out $W/goods.pt --seed 1 \
  | tee $W/goods-train.log
cd ../..
if [[ -z "${THREATS_CKPT:-}" ]]; then
  # threats-v1 2.0.0's run (variant K of the GPU comparison in models/README.md).
  PYTHON=$PYTHON WORK="$WORK/threats-data" REUSE_DATA=${REUSE_DATA:-0} REALISM=${REALISM:-basic} models/train/threats.sh "$WORK/threats-run" \
    'threats-v1 --arch threatnet2 --width 48 --epochs 36 --batch 256 --hard 4000 --mine-pool 24000 --seed 2'
  THREATS_CKPT=$WORK/threats-run/threats-v1.pt
fi
[[ "$THREATS_CKPT" == /* ]] || THREATS_CKPT=$PWD/$THREATS_CKPT
cd models/train
train_done=$(date +%s)
$PYTHON export.py --goods $W/goods.pt --threats "$THREATS_CKPT" --val $W/val-a $W/val-b --models .. | tee $W/export.log
cd ../..

# goods-1e-v1: the same goods recipe on single-energy portals' tiles (`--energies 1`: the high energy only).
pair "train-1e-a 1000..1199 --threat-probability 0.5 --energies 1" "train-1e-b 1200..1399 --threat-probability 0.5 --energies 1"
pair "val-1e 1400..1599 --threat-probability 0.5 --energies 1" "opinion-val-1e 6000..6149 --threat-probability 0.5 --energies 1"
(cd models/train && $PYTHON train_goods.py --train $W/train-1e-a $W/train-1e-b --val $W/val-1e --out $W/goods-1e.pt --seed 1 \
  | tee $W/goods-1e-train.log && $PYTHON export.py --goods $W/goods-1e.pt --goods-name goods-1e-v1 --val $W/val-1e --models .. \
  | tee $W/export-1e.log)
# No single-energy threat model yet: threats.sh on single-energy datasets needs a GPU run (models/README.md).
node bin/scanline.js fit-opinion --goods goods-1e-v1 --threats none --fit "$WORK/train-1e-a" --validation "$WORK/opinion-val-1e" \
  --write | tee "$WORK/fit-opinion-1e.json"

# The machine's opinion (models/README.md, "Calibration, out of distribution and triage"): fitted on the training
# distribution (1000-1149) and on validation seeds neither training nor `scanline eval` uses (6000-6149).
pair "opinion-fit 1000..1149 --threat-probability 0.5" "opinion-val 6000..6149 --threat-probability 0.5"
pair "foreign-response 6000..6039 --foreign-scanner response-curve" "foreign-blur 6000..6039 --foreign-scanner blur-noise"
dataset foreign-texture 6000..6039 --foreign-scanner texture
node bin/scanline.js fit-opinion --fit "$WORK/opinion-fit" --validation "$WORK/opinion-val" \
  --check "$WORK/foreign-response" --check "$WORK/foreign-blur" --check "$WORK/foreign-texture" --write | tee "$WORK/fit-opinion.json"

if [[ -d node_modules/onnxruntime-node ]]; then
  node models/train/check-onnxruntime.mjs "$WORK/val-a" --limit 4096
else
  echo "onnxruntime-node is not installed: skipped the ONNX Runtime check (export.py checked the graphs with numpy)"
fi
echo "datasets $((data_done - started)) s, training $((train_done - data_done)) s, total $(($(date +%s) - started)) s"

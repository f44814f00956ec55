#!/usr/bin/env bash
# The threat-model recipe: builds its datasets in parallel shards (export-shards.mjs, the same exporter as
# `scanline dataset`), then trains one or more threat-network variants side by side (train_threats.py; on a CUDA GPU
# when torch sees one) and leaves each checkpoint and log in OUT. export.py turns the chosen checkpoint into
# models/threats-v1 on any machine (CPU torch is enough). threats-v1 2.0.0 came from variant K below, trained on one
# H100 in ~6 min (the datasets take ~2 min on 16 cores); on the 2-core CPU build machine the same run takes hours.
#
# Usage: models/train/threats.sh OUT 'NAME ARGS...' ['NAME ARGS...' ...]
#   threats-v1 2.0.0 (basic simulator, the five sets it had; threats-b and threats-c came with 4.0.0, threats-d with 5.0.0):
#     SETS="train-a train-c threats val-a val-c" models/train/threats.sh out \
#     'K --arch threatnet2 --width 48 --epochs 36 --batch 256 --hard 4000 --mine-pool 24000 --seed 2'
# Environment:
#   NODE     node binary (default: node on PATH); needs dist/ (npm run build) and build/Release (the addon)
#   PYTHON   python with torch (default python3; Debian's is /usr/bin/python3, CPU only)
#   DEVICE   auto (default: CUDA when torch sees a GPU), cuda or cpu
#   WORK     datasets (default /tmp/scanline-train); REUSE_DATA=1 keeps existing ones
#   QUICK=1  a smoke run: a few seeds per set
#   ENERGIES 2 (default) or 1: datasets of single-energy portals (high energy only) for a single-energy threat
#            model (threat patches keep their high channel: common.ThreatPatches)
#   REALISM  basic (default) or hard: datasets of the harder simulator (tools/simulator/realism.ts: clutter,
#            texture, mixed loads, threats in dense goods and behind structure, detector effects)
#   SETS     the dataset names to build and use (default all eight below); a fine-tune on 2 CPU cores can do with
#            "train-a threats val-a"
#
# Seeds, none in 5000-6999 (5000-5999 stay held out for `scanline eval`; 6000-6599 choose thresholds and validate the
# opinion fit in run.sh; 6600-6999 are kept free for such unseen sets; test/tools/dataset/models.test.ts checks):
#   train      1000-1399 and 4000-4599, threat probability 0.5, every tile
#   threat-rich 2000-2999, 0-999, 1600-1999 and 7000-7999, every truck carries threats, only tiles with threat cells
#   projection library 3000-3999 (threat-patches.mjs)
#   validation 1400-1599 and 4600-4999, threat probability 0.5 (threshold choice and model selection)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: threats.sh OUT 'NAME ARGS...' ...}
shift
NODE=${NODE:-node}
PYTHON=${PYTHON:-python3}
WORK=${WORK:-/tmp/scanline-train}
mkdir -p "$OUT" "$WORK"
OUT=$(cd "$OUT" && pwd)
# Absolute: the training runs from models/train.
WORK=$(cd "$WORK" && pwd)
started=$(date +%s)

sets=(
  "train-a 1000..1399 --threat-probability 0.5"
  "train-c 4000..4599 --threat-probability 0.5"
  "threats 2000..2999 --threat-probability 1 --keep threats"
  "threats-b 0..999 --threat-probability 1 --keep threats"
  "threats-c 1600..1999 --threat-probability 1 --keep threats"
  "threats-d 7000..7999 --threat-probability 1 --keep threats"
  "val-a 1400..1599 --threat-probability 0.5"
  "val-c 4600..4999 --threat-probability 0.5"
)
if [[ "${QUICK:-0}" == 1 ]]; then
  sets=(
    "train-a 1000..1007 --threat-probability 0.5"
    "train-c 4000..4007 --threat-probability 0.5"
    "threats 2000..2015 --threat-probability 1 --keep threats"
    "threats-b 0..7 --threat-probability 1 --keep threats"
    "threats-c 1600..1607 --threat-probability 1 --keep threats"
    "threats-d 7000..7007 --threat-probability 1 --keep threats"
    "val-a 1400..1403 --threat-probability 0.5"
    "val-c 4600..4603 --threat-probability 0.5"
  )
fi
cores=$(nproc)
SETS=${SETS:-train-a train-c threats threats-b threats-c threats-d val-a val-c}
wanted() { [[ " $SETS " == *" $1 "* ]]; }
for s in "${sets[@]}"; do
  read -r name seeds rest <<<"$s"
  wanted "$name" || continue
  if [[ "${REUSE_DATA:-0}" == 1 && -d "$WORK/$name/00" ]]; then continue; fi
  rm -rf "${WORK:?}/$name"
  # shellcheck disable=SC2086
  "$NODE" models/train/export-shards.mjs --seeds "$seeds" --out "$WORK/$name" --shards "$cores" --energies "${ENERGIES:-2}" --realism "${REALISM:-basic}" $rest >"$WORK/$name.log"
  echo "dataset $name ($seeds): $(tail -1 "$WORK/$name.log" | wc -w) shards, $(($(date +%s) - started)) s"
done
"$NODE" models/train/threat-patches.mjs --seeds 3000..3999 --out "$WORK/patches" >"$WORK/patches.log"
data_done=$(date +%s)
echo "datasets ready in $((data_done - started)) s"

dirs() { for n in "$@"; do if wanted "$n"; then ls -d "$WORK/$n"/[0-9][0-9]; fi; done | tr '\n' ' '; }
train_dirs="$(dirs train-a train-c threats threats-b threats-c threats-d)"
val_dirs="$(dirs val-a val-c)"
[[ -n "$train_dirs" && -n "$val_dirs" ]] || { echo "threats.sh: SETS needs a training and a validation set" >&2; exit 2; }
threads=$(((cores - 2) / $#))
((cores <= 2)) && threads=$cores
((threads < 1)) && threads=1
pids=()
for v in "$@"; do
  read -r name rest <<<"$v"
  # shellcheck disable=SC2086
  (cd models/train && OMP_NUM_THREADS=$threads PYTHONUNBUFFERED=1 "$PYTHON" train_threats.py --device "${DEVICE:-auto}" \
    --train $train_dirs --val $val_dirs --patches "$WORK/patches" --out "$OUT/$name.pt" --seed 1 $rest \
    >"$OUT/$name.log" 2>&1) &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
echo "training $(($(date +%s) - data_done)) s, total $(($(date +%s) - started)) s"
exit $status

#!/usr/bin/env bash
# npm run fuzz [-- --seconds N] [--native-only | --ts-only] [--harness NAME]
#
# Builds the libFuzzer harnesses of test/fuzz/native/ (clang++ with ASan and UBSan, every UB report fatal) into
# build/fuzz/ and runs each for N seconds (default 60) on its corpus, test/fuzz/corpus/<harness>/, where new inputs
# that reach new code are added (committed seeds are seed-*, regression inputs regress-*; the rest is ignored by
# git). A crash is written to test/fuzz/crashes/<harness>/. Then runs the property-based fuzz of the TypeScript
# decoders (test/fuzz/*.test.ts) for N/4 seconds per property with a random seed (FUZZ_SEED=... repeats one; a failure
# is written to test/fuzz/crashes/ts/). Exit status: 0 when nothing was found, 1 when anything failed.
#
# Needs clang++ and libFuzzer (Debian: apt-get install clang libclang-rt-14-dev); CXX picks another clang++.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=60
native=1
ts=1
only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --seconds=*) seconds="${1#*=}"; shift ;;
    --native-only) ts=0; shift ;;
    --ts-only) native=0; shift ;;
    --harness) only="${2:?--harness needs a name}"; shift 2 ;;
    --harness=*) only="${1#*=}"; shift ;;
    -h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "fuzz: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
if ! [[ "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  echo "fuzz: --seconds needs a positive integer, got $seconds" >&2
  exit 2
fi

harnesses=(stitcher buffers kernels)
if [ -n "$only" ]; then
  if [[ " ${harnesses[*]} " != *" $only "* ]]; then
    echo "fuzz: no harness $only (one of: ${harnesses[*]})" >&2
    exit 2
  fi
  harnesses=("$only")
  ts=0
fi

failed=()

if [ "$native" -eq 1 ]; then
  CXX="${CXX:-clang++}"
  if ! command -v "$CXX" >/dev/null 2>&1; then
    echo "fuzz: $CXX not found; install clang and libclang-rt-14-dev (Debian) or set CXX" >&2
    exit 2
  fi
  out=build/fuzz
  mkdir -p "$out/obj"
  # The core's sources, without the N-API binding (stitcher_binding.cc, addon.cc).
  core=(calibration chunk_pool extract_plane preview row_runs stitcher tiles)
  flags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -fno-trapping-math -Wall -Wextra -Wno-unused-parameter
    -fsanitize=address,undefined -fno-sanitize-recover=undefined)
  echo "== building ${harnesses[*]} with $($CXX --version | head -n 1)"
  pids=()
  for name in "${core[@]}"; do
    "$CXX" "${flags[@]}" -fsanitize=fuzzer-no-link -c "native/$name.cc" -o "$out/obj/$name.o" &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid"; done
  objs=()
  for name in "${core[@]}"; do objs+=("$out/obj/$name.o"); done
  for h in "${harnesses[@]}"; do
    "$CXX" "${flags[@]}" -fsanitize=fuzzer "test/fuzz/native/${h}_fuzzer.cc" "${objs[@]}" -o "$out/$h"
  done

  export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=0:detect_leaks=1}"
  export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
  for h in "${harnesses[@]}"; do
    corpus="test/fuzz/corpus/$h"
    crashes="test/fuzz/crashes/$h"
    mkdir -p "$corpus" "$crashes"
    log="$out/$h.log"
    echo "== $h: ${seconds}s on $corpus (log: $log)"
    set +e
    "$out/$h" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -dict=test/fuzz/native/integers.dict -artifact_prefix="$crashes/" "$corpus" >"$log" 2>&1
    status=$?
    set -e
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log")
    units=$(find "$corpus" -type f | wc -l)
    if [ "$status" -eq 0 ]; then
      echo "   ok: ${runs:-?} runs, ${rate:-?}/s, corpus of $units inputs"
    else
      echo "   FAILED (exit status $status):"
      grep -E 'ERROR|invariant failed|runtime error|SUMMARY|Test unit written' "$log" | head -n 8 | sed 's/^/   /'
      failed+=("$h")
    fi
  done
fi

if [ "$ts" -eq 1 ]; then
  seed="${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
  # About as long as one harness in all: a quarter of it per property (11 properties, two test files at a time).
  per_property=$((seconds / 4 > 2 ? seconds / 4 : 2))
  echo "== TypeScript decoders: ${per_property}s per property, FUZZ_SEED=$seed"
  set +e
  FUZZ_SECONDS="$per_property" FUZZ_SEED="$seed" npx vitest run test/fuzz --project unit
  status=$?
  set -e
  if [ "$status" -ne 0 ]; then failed+=("ts (FUZZ_SEED=$seed)"); fi
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: found something in: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: nothing found"

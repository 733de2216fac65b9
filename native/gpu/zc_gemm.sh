#!/usr/bin/env bash
# Zero-copy GEMM re-read factors for the suite's linear shapes (bench/zc_gemm.py), on the GPU
# machine: builds the interposer, runs the probe with every weight in host memory, writes
# $OUT/zc-gemm-h100.json and the log.
set -eu
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp}
make -C native build/libspillover.so >/dev/null
LD_PRELOAD=$PWD/native/build/libspillover.so SPILLOVER_VRAM_LIMIT=8G SPILLOVER_VRAM_RESERVE=0 SPILLOVER_MIGRATE=0 \
  SPILLOVER_BROKER=off SPILLOVER_LOG=info python3 bench/zc_gemm.py "$OUT/zc-gemm-h100.json" 2>&1 | tee "$OUT/zc-gemm.log"

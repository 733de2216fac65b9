#!/bin/bash
# gpu_interposer.sh: validates libspillover.so on a real GPU (run from the repo root on the GPU
# machine; results under $OUT). Builds the library and the scenario programs, runs the scenarios
# that do not need the fake driver against the real one, then PyTorch under LD_PRELOAD with the
# default, expandable-segments and cudaMallocAsync allocators, and a baseline without it.
set -u
OUT=${OUT:-/tmp/spillover-gpu}
mkdir -p "$OUT/stats"
cd "$(dirname "$0")/../.."
{
  nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used --format=csv,noheader
  date -u +%Y-%m-%dT%H:%M:%SZ
  uname -r
} >"$OUT/env.txt" 2>&1
if ! { make -C native && make -C native test-bin; } >"$OUT/build.log" 2>&1; then
  echo "BUILD FAILED"
  tail -40 "$OUT/build.log"
  exit 1
fi
LIB=$PWD/native/build/libspillover.so
B=$PWD/native/build
: >"$OUT/summary.txt"
run() {
  local name=$1
  shift
  local t0 t1 rc
  t0=$(date +%s.%N)
  env SPILLOVER_VRAM_LIMIT=64M SPILLOVER_VRAM_RESERVE=16M SPILLOVER_PINNED_LIMIT=128M SPILLOVER_HOST_RESERVE=0 \
    SPILLOVER_STATS_DIR="$OUT/stats" SPILLOVER_BROKER=off LD_PRELOAD="$LIB" "$@" >"$OUT/$name.log" 2>&1
  rc=$?
  t1=$(date +%s.%N)
  echo "$name rc=$rc s=$(awk "BEGIN{print $t1 - $t0}") :: $(grep -E '^(ok|FAIL)' "$OUT/$name.log" | tail -1)" | tee -a "$OUT/summary.txt"
}
run c_paths_bootstrap "$B/t_paths" bootstrap
run c_paths_dlsym "$B/t_paths" dlsym
for s in place reuse copy async vmm; do run "c_tiers_$s" "$B/t_tiers" "$s"; done
run c_tiers_oom env SPILLOVER_PINNED_LIMIT=64M "$B/t_tiers" oom
for s in capacity attrs ipc; do run "c_info_$s" "$B/t_info" "$s"; done
run c_threads "$B/t_threads"
run c_misc_badargs "$B/t_misc" badargs
run c_misc_summary env SPILLOVER_LOG=info "$B/t_misc" summary

py=native/tools/gpu_torch_check.py
torch_run() {
  local name=$1
  shift
  local t0 t1
  t0=$(date +%s.%N)
  env "$@" timeout 240 python3 "$py" >"$OUT/$name.log" 2>&1
  local rc=$?
  t1=$(date +%s.%N)
  echo "$name rc=$rc s=$(awk "BEGIN{print $t1 - $t0}")" | tee -a "$OUT/summary.txt"
  grep -E 'mem_get_info|^sum|matmul|alloc8g|after|summary:|spillover\[|Error|error' "$OUT/$name.log" | sed 's/^/    /' | tee -a "$OUT/summary.txt"
}
SP="LD_PRELOAD=$LIB SPILLOVER_VRAM_LIMIT=2G SPILLOVER_PINNED_LIMIT=16G SPILLOVER_LOG=info SPILLOVER_KEEP_STATS=1 SPILLOVER_STATS_DIR=$OUT/stats SPILLOVER_BROKER=off"
torch_run torch_baseline PYTORCH_CUDA_ALLOC_CONF=
# shellcheck disable=SC2086
torch_run torch_default $SP
# shellcheck disable=SC2086
torch_run torch_expandable $SP PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
# shellcheck disable=SC2086
torch_run torch_mallocasync $SP PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync
# defaults: no budget variables (limit = free VRAM at first use, pinned = MemAvailable - reserve)
torch_run torch_env_defaults LD_PRELOAD="$LIB" SPILLOVER_LOG=info SPILLOVER_BROKER=off
# an NVML-only process is left alone (no CUDA state: the driver's numbers)
{ echo "nvidia-smi with the interposer:"; LD_PRELOAD="$LIB" nvidia-smi --query-gpu=memory.total,memory.used --format=csv; } 2>&1 | tee -a "$OUT/summary.txt"
if [ "${RUN_PROVE:-0}" = 1 ] && [ -f native/gpu/prove.sh ]; then
  echo "prove.sh:" | tee -a "$OUT/summary.txt"
  mkdir -p "$OUT/prove"; OUT="$OUT/prove" PROVE_DEADLINE_S=${PROVE_DEADLINE_S:-330} timeout 510 bash native/gpu/prove.sh >"$OUT/prove.log" 2>&1
  echo "prove rc=$?" | tee -a "$OUT/summary.txt"
  tail -20 "$OUT/prove.log"
fi
# everything in one archive (the device tool returns a limited number of files)
tar -C "$OUT" -czf /tmp/interposer-logs.tgz . && mv /tmp/interposer-logs.tgz "$OUT/"
find "$OUT" -maxdepth 1 -type f ! -name interposer-logs.tgz ! -name summary.txt -delete
find "$OUT" -mindepth 1 -maxdepth 1 -type d -exec rm -rf {} +

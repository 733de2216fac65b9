#!/usr/bin/env bash
# prove.sh: the issue 2 proofs on a real GPU (H100, CUDA 13), run from the repository root:
#   OUT=/some/dir [GIT_COMMIT=sha] bash native/gpu/prove.sh
# Writes every log and result under $OUT and assembles $OUT/issue2-proofs.json:
#   build  make -C native (libspillover.so, demo)
#   8a     the demo allocates 3x SPILLOVER_VRAM_LIMIT (8G -> 24 GiB), writes and verifies every byte
#          (plus a baseline without spillover that must hit CUDA_ERROR_OUT_OF_MEMORY beyond the card)
#   8c     bandwidth: kernel reads of spillover's host pages vs pinned copy bandwidth, ratio >= 0.90
#   8b     a random ~7 GB Llama generates 64 tokens without spillover, then under spillover with a VRAM
#          limit of 40% of the model for three PyTorch allocator configurations: tokens must match
# Each step runs with a timeout; a failed step does not stop the others; every step prints one
# PASS/FAIL/SKIP line. The whole run is kept under 8 minutes: PROVE_BUDGET_S (450 s) bounds every
# step's timeout, and steps that would start with less than 20 s left are skipped.
set -u

OUT=${OUT:?set OUT to the directory for logs and results}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
mkdir -p "$OUT"
STEPS="$OUT/steps.tsv"
: >"$STEPS"
T0=$(date +%s)
BUDGET_S=${PROVE_BUDGET_S:-450} # every step ends by then (timeouts are cut to fit): under 8 min
LIB="$ROOT/native/build/libspillover.so"
DEMO="$ROOT/native/build/demo/spill_demo"
LLAMA="$ROOT/native/gpu/llama_tokens.py"
export SPILLOVER_LOG=${SPILLOVER_LOG:-info}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# Sizes (overridable to rehearse the script on the CPU test double with small numbers).
A_LIMIT=${PROVE_8A_LIMIT:-8G}               # 8a allocates 3x this
BASELINE_TOTAL=${PROVE_BASELINE_TOTAL:-96G} # more than an 80 GB card: must fail without spillover
C_LIMIT=${PROVE_8C_LIMIT:-4G}
BW_SIZE=${PROVE_BW_SIZE:-4G}
COPY_SIZE=${PROVE_COPY_SIZE:-1G}
PY=${PROVE_PYTHON:-python3}
LLAMA_ARGS=${PROVE_LLAMA_ARGS:-} # --rehearse: tiny model on the CPU (script test only)

log() { printf '[prove %4ss] %s\n' "$(($(date +%s) - T0))" "$*"; }

# step NAME TIMEOUT_S COMMAND...: runs COMMAND with stdout+stderr to $OUT/NAME.log, records
# name, exit code, seconds and the command in steps.tsv. The verdict comes later, from the results.
step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - ($(date +%s) - T0)))
  if [ "$left" -lt 20 ]; then
    log "SKIP $name (the ${BUDGET_S}s budget is spent)"
    printf '%s\t%s\t%s\t%s\n' "$name" "skipped" 0 "$*" >>"$STEPS"
    return 0
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  log "run  $name: $*"
  local s=$(date +%s)
  timeout --kill-after=10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  local secs=$(($(date +%s) - s))
  [ "$rc" -eq 124 ] && echo "prove.sh: $name timed out after ${limit}s" >>"$OUT/$name.log"
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$secs" "$*" >>"$STEPS"
  log "done $name: exit $rc in ${secs}s (log $OUT/$name.log)"
  return 0
}

# ---- environment ---------------------------------------------------------------------------
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1
  nvidia-smi 2>&1 | grep -o 'CUDA Version: [0-9.]*' | head -1
  nvcc --version 2>&1 | grep -o 'release [0-9.]*' | head -1
  python3 -c 'import torch, transformers; print("torch", torch.__version__, "cuda", torch.version.cuda, "transformers", transformers.__version__)' 2>&1
  echo "git $(git rev-parse HEAD 2>/dev/null || echo "${GIT_COMMIT:-unknown}")"
  free -g | head -2
} >"$OUT/env.log" 2>&1
log "environment: $(head -1 "$OUT/env.log")"

# ---- build -----------------------------------------------------------------------------------
step build 180 make -C native
step ptx-compiles 60 nvcc -ptx -arch=sm_90 -o "$OUT/spill_kernels.ptx" native/demo/spill_kernels.cu

# ---- 8a: 3x the VRAM limit, every byte verified ------------------------------------------------
step 8a-demo 180 env SPILLOVER_VRAM_LIMIT="$A_LIMIT" LD_PRELOAD="$LIB" "$DEMO" --factor 3 --json
step 8a-baseline-no-spillover 90 env -u LD_PRELOAD "$DEMO" --total "$BASELINE_TOTAL" --json

# ---- 8c: bandwidth of tiered host pages vs pinned copies ---------------------------------------
step 8c-bandwidth 150 env SPILLOVER_VRAM_LIMIT="$C_LIMIT" LD_PRELOAD="$LIB" "$DEMO" --bandwidth --bw-size "$BW_SIZE" \
  --copy-size "$COPY_SIZE" --reps 5 --json

# ---- 8b: Llama tokens identical under spillover ------------------------------------------------
MODEL_BYTES=$($PY "$LLAMA" --model-bytes 2>/dev/null || echo 7000563712)
LIMIT_BYTES=$((MODEL_BYTES * 40 / 100))
log "llama model ${MODEL_BYTES} bytes; spillover VRAM limit ${LIMIT_BYTES} bytes (40%)"
step 8b-llama-reference 150 env -u LD_PRELOAD $PY "$LLAMA" $LLAMA_ARGS --label reference --out "$OUT/8b-llama-reference.json"
if [ -s "$OUT/8b-llama-reference.json" ]; then
  step 8b-llama-default 150 env -u PYTORCH_CUDA_ALLOC_CONF SPILLOVER_VRAM_LIMIT="$LIMIT_BYTES" LD_PRELOAD="$LIB" \
    $PY "$LLAMA" $LLAMA_ARGS --label default --ref "$OUT/8b-llama-reference.json" --out "$OUT/8b-llama-default.json"
  step 8b-llama-expandable 150 env PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True SPILLOVER_VRAM_LIMIT="$LIMIT_BYTES" \
    LD_PRELOAD="$LIB" $PY "$LLAMA" $LLAMA_ARGS --label expandable_segments --ref "$OUT/8b-llama-reference.json" \
    --out "$OUT/8b-llama-expandable.json"
  step 8b-llama-cudamallocasync 150 env PYTORCH_CUDA_ALLOC_CONF=backend:cudaMallocAsync SPILLOVER_VRAM_LIMIT="$LIMIT_BYTES" \
    LD_PRELOAD="$LIB" $PY "$LLAMA" $LLAMA_ARGS --label cudaMallocAsync --ref "$OUT/8b-llama-reference.json" \
    --out "$OUT/8b-llama-cudamallocasync.json"
else
  log "FAIL 8b-llama-reference produced no result; the spillover runs have nothing to compare with"
fi

# ---- verdicts and issue2-proofs.json ---------------------------------------------------------
python3 native/gpu/assemble_proofs.py "$OUT" "$ROOT"
rc=$?
# The GPU tool brings back at most 8 files: keep the summary, pack every log into one archive.
# (The archive is written outside $OUT first: tar fails on a file that grows while it reads it.)
tarball=$(mktemp /tmp/prove-logs.XXXXXX.tar.gz)
(cd "$OUT" && tar -czf "$tarball" --exclude=issue2-proofs.json . &&
  find . -maxdepth 1 -type f ! -name issue2-proofs.json -delete && mv "$tarball" prove-logs.tar.gz)
log "total $(($(date +%s) - T0))s; results in $OUT/issue2-proofs.json"
exit $rc

#!/usr/bin/env bash
# The one command for the two-GPU machine for issue 11's proofs (many GPUs): builds the
# interposer, runs bench/mgpu/prove.py (every step its own process group with a timeout, the whole
# run under 9.5 minutes) and, when $OUT is set, leaves there the proof record
# (mgpu-<card>-<date>.json), the raw results and one log tarball.
#   bash bench/mgpu/run.sh [--only peer-copy,tp] [--budget-s 440]
# Set GIT_COMMIT=<hash> when the working tree has no .git (it is recorded in the proofs).
set -u
cd "$(dirname "$0")/../.."
start=$(date +%s)
work=$(mktemp -d /tmp/mgpu-proofs.XXXXXX)
log="$work/mgpu.log"
if [ -z "${GIT_COMMIT:-}" ] && [ -e .git ]; then
  GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || true)
  export GIT_COMMIT
fi
{
  echo "== $(date -u +%FT%TZ) bash bench/mgpu/run.sh $* (GIT_COMMIT=${GIT_COMMIT:-unset})"
  echo "== make -C native build/libspillover.so"
  timeout 120 make -C native -j"$(nproc)" build/libspillover.so 2>&1 | tail -n 40
  ls -l native/build/libspillover.so 2>&1
  nvidia-smi 2>&1 | head -n 24
  nvidia-smi topo -m 2>&1 | head -n 8
  free -g 2>&1
  python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "nccl", torch.cuda.nccl.version(), "gpus", torch.cuda.device_count())' 2>&1
} >>"$log" 2>&1
echo "build done in $(( $(date +%s) - start )) s (log: $log)"
timeout 570 python3 bench/mgpu/prove.py --started-at "$start" --log "$log" --command "bash bench/mgpu/run.sh $*" "$@"
rc=$?
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  tar czf "$OUT/mgpu-logs.tar.gz" -C "$work" . 2>/dev/null || echo "could not write the log tarball"
fi
echo "prove.py exit $rc; $(( $(date +%s) - start )) s in all"
exit $rc

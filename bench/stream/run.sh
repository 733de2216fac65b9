#!/usr/bin/env bash
# The one command for the GPU machine for issue 10's proofs (the streaming engine): builds the
# interposer, runs bench/stream/prove.py (each measurement its own process, a deadline that stops
# cleanly and still writes the part's results) and, when $OUT is set, leaves in $OUT the part's
# results JSON (the proof record too when run in one go) and one log tarball.
#   bash bench/stream/run.sh --part 1/2     lean decoder, hand-written streaming, decode on/off, corpus, < 9.5 min
#   bash bench/stream/run.sh --part 2/2     HF dense-8g (spillover, accelerate), training, corpus, dense-20g if time, < 9.5 min
#   then, anywhere with python3: python3 bench/stream/prove.py --merge <part 1 json> <part 2 json>
# Other arguments go to prove.py (--only NAME[,NAME], --list, --spill-env KEY=VALUE, --budget-s S, --hard-cap-s S).
# Set GIT_COMMIT=<hash> when the working tree has no .git (it is recorded in the proofs).
set -u
cd "$(dirname "$0")/../.."
start=$(date +%s)
tag=all
prev=
for a in "$@"; do
  [ "$prev" = "--part" ] && tag="part${a%/*}of${a#*/}"
  prev=$a
done
work=$(mktemp -d /tmp/stream-proofs.XXXXXX)
log="$work/stream-$tag.log"
if [ -z "${GIT_COMMIT:-}" ] && [ -e .git ]; then
  GIT_COMMIT=$(git rev-parse HEAD 2>/dev/null || true)
  export GIT_COMMIT
fi
{
  echo "== $(date -u +%FT%TZ) bash bench/stream/run.sh $* (GIT_COMMIT=${GIT_COMMIT:-unset})"
  if [ -f native/Makefile ]; then
    # the library alone: the default target also builds the CPU test double and the demo
    echo "== make -C native build/libspillover.so"
    timeout 150 make -C native -j"$(nproc)" build/libspillover.so 2>&1 | tail -n 60
    rc=${PIPESTATUS[0]}
    if [ "$rc" != 0 ]; then
      echo "== that failed ($rc); trying make -C native"
      timeout 150 make -C native -j"$(nproc)" 2>&1 | tail -n 60
    fi
  else
    echo "== native/Makefile missing: every spillover run will be recorded as failed"
  fi
  ls -l native/build/libspillover.so 2>&1
  nvidia-smi 2>&1 | head -n 20
  free -g 2>&1
} >>"$log" 2>&1
echo "build done in $(( $(date +%s) - start )) s (log: $log)"
python3 bench/stream/prove.py --started-at "$start" --log "$log" \
  --command "bash bench/stream/run.sh $*" "$@"
rc=$?
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  tar czf "$OUT/stream-logs-$tag.tar.gz" -C "$work" . 2>/dev/null || echo "could not write the log tarball"
fi
echo "prove.py exit $rc; $(( $(date +%s) - start )) s in all"
exit $rc

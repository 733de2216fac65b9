#!/usr/bin/env bash
# The one command for the GPU machine: builds the interposer, runs the whole benchmark suite
# (each workload in its own process), writes bench/results/<date>-<card>.json and, when $OUT is
# set, copies that JSON and one combined log (suite.log) into $OUT.
#   bash bench/run_suite.sh                full suite in one go, < 18 min on one H100
#   bash bench/run_suite.sh --part 1/3     one third of it, < 9.5 min (a GPU call may last 10 min);
#                                          run 1/3, 2/3 and 3/3, then merge the three JSON files:
#                                          python3 bench/suite.py --merge <part files>
#   bash bench/run_suite.sh --smoke        tiny models, < 2 min
# Any other arguments go to bench/suite.py (--only TEXT, --budget-s S, --list).
set -u
cd "$(dirname "$0")/.."
start=$(date +%s)
mode=full
prev=
for a in "$@"; do
  [ "$a" = "--smoke" ] && mode=smoke
  [ "$prev" = "--part" ] && mode="$mode-part${a%/*}of${a#*/}"
  prev=$a
done
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  log="$OUT/suite-$mode.log"
else
  log="bench/results/$(date -u +%F)-suite-$mode.log"
  mkdir -p bench/results
fi
{
  echo "== $(date -u +%FT%TZ) bash bench/run_suite.sh $* (GIT_COMMIT=${GIT_COMMIT:-unset})"
  if [ -f native/Makefile ]; then
    # only the library: the default target also builds and runs the CPU test suite
    echo "== make -C native build/libspillover.so"
    make -C native -j"$(nproc)" build/libspillover.so 2>&1 | tail -n 60
    rc=${PIPESTATUS[0]}
    if [ "$rc" != 0 ]; then
      echo "== that failed ($rc); trying make -C native"
      make -C native -j"$(nproc)" 2>&1 | tail -n 60
    fi
  else
    echo "== native/Makefile missing: spillover workloads will be recorded as failed"
  fi
  ls -l native/build/libspillover.so 2>&1
  nvidia-smi 2>&1 | head -n 20
} >>"$log" 2>&1
python3 bench/suite.py --started-at "$start" --log "$log" --command "bash bench/run_suite.sh $*" "$@"
rc=$?
echo "suite exit $rc; log: $log"
exit $rc

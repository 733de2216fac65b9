#!/usr/bin/env bash
# broker_run.sh: issue 3 item 4 on the GPU machine. Starts the broker from the bundled CLI, runs a
# PyTorch workload under `spillover run` with a VRAM limit below its size, and captures, mid-run,
# `spillover status --json` and the broker's /metrics (fetched with node: no curl needed).
#   NODE=/path/to/node OUT=/some/dir bash native/gpu/broker_run.sh      (from the repository root)
# Needs dist/spillover.mjs and dist/web/ (npm run build here; carry "dist" to the GPU machine) and
# native/build/libspillover.so (built here with make -C native if missing).
# Writes to $OUT (the GPU tool brings back at most 8 files): broker_run.json (summary),
# status-peak.json + metrics-peak.txt (the sample with the most pinned bytes), and
# broker-run-logs.tar.gz (broker.log, workload.log, doctor.txt, history.json, every sample).
set -u
NODE=${NODE:?set NODE to a node binary (Node 20+)}
OUT=${OUT:?set OUT to the directory for logs and results}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 1
mkdir -p "$OUT"
CLI="$ROOT/dist/spillover.mjs"
VRAM_LIMIT=${BROKER_RUN_VRAM_LIMIT:-3G}   # the Llama is ~7 GB of bf16 weights: most of it spills
PORT=${BROKER_RUN_PORT:-7878}
TIMEOUT_S=${BROKER_RUN_TIMEOUT_S:-300}
RUNDIR=$(mktemp -d /tmp/spillover-broker-run.XXXXXX)
chmod 700 "$RUNDIR"
FINAL_OUT=$OUT
OUT="$RUNDIR/logs" # everything lands here first; the keepers are copied to $FINAL_OUT at the end
mkdir -p "$OUT"
SOCK="$RUNDIR/broker.sock"
T0=$(date +%s)
log() { printf '[broker_run %4ss] %s\n' "$(($(date +%s) - T0))" "$*" | tee -a "$OUT/broker_run.txt"; }

[ -f "$CLI" ] || { log "FAIL: $CLI missing: run npm run build and carry dist/"; exit 1; }
if [ ! -f native/build/libspillover.so ] || [ ! -f native/build/peercred.node ]; then
  log "building native/"
  make -C native >"$OUT/make.log" 2>&1 || { log "FAIL: make -C native (see make.log)"; exit 1; }
fi
"$NODE" "$CLI" doctor >"$OUT/doctor.txt" 2>&1
log "doctor exit $? (doctor.txt)"

"$NODE" "$CLI" broker --socket "$SOCK" --http-port "$PORT" 2>"$OUT/broker.log" &
BROKER=$!
for _ in $(seq 50); do [ -S "$SOCK" ] && break; sleep 0.1; done
[ -S "$SOCK" ] || { log "FAIL: broker did not start (broker.log)"; exit 1; }
log "broker pid $BROKER at $SOCK, http 127.0.0.1:$PORT"

if [ -n "${BROKER_RUN_WORKLOAD:-}" ]; then
  WORKLOAD=(bash -c "$BROKER_RUN_WORKLOAD") # rehearsal on the CPU test double
elif [ -f native/gpu/llama_tokens.py ]; then
  WORKLOAD=(python3 native/gpu/llama_tokens.py --out "$OUT/llama_broker.json" --label broker)
else
  # fallback: 24 x 512 MiB tensors, held for a while, then a checksum
  WORKLOAD=(python3 -c 'import torch,time
xs=[torch.full((128*1024*1024,),float(i),device="cuda") for i in range(24)]
time.sleep(8); print("sum", sum(float(x[0]) for x in xs))')
fi
export SPILLOVER_LOG=info
timeout "$TIMEOUT_S" "$NODE" "$CLI" run --vram-limit "$VRAM_LIMIT" --socket "$SOCK" -- "${WORKLOAD[@]}" >"$OUT/workload.log" 2>&1 &
RUN=$!
log "workload pid $RUN: ${WORKLOAD[*]}"

# Mid-run samples every second: status (JSON, through the broker's API socket) and /metrics.
i=0
while kill -0 "$RUN" 2>/dev/null; do
  i=$((i + 1))
  "$NODE" "$CLI" status --json --socket "$SOCK" >"$OUT/status-$i.json" 2>>"$OUT/status.err"
  "$NODE" -e 'fetch(process.argv[1]).then(r=>r.text()).then(t=>process.stdout.write(t)).catch(e=>{console.error(String(e));process.exit(1)})' \
    "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics-$i.txt" 2>>"$OUT/status.err"
  sleep 1
done
wait "$RUN"
RC=$?
log "workload exit $RC after $i samples"
"$NODE" -e 'fetch(process.argv[1]).then(r=>r.text()).then(t=>process.stdout.write(t))' "http://127.0.0.1:$PORT/api/v1/history" >"$OUT/history.json" 2>/dev/null
kill -TERM "$BROKER" 2>/dev/null
wait "$BROKER"
log "broker stopped"

# Summary: the sample with the most pinned bytes in use across processes.
"$NODE" - "$OUT" "$i" "$RC" <<'JS'
const fs = require("node:fs");
const [out, n, rc] = process.argv.slice(2);
let best = null, bestPinned = -1, samples = 0, withProcs = 0, maxLeased = 0;
for (let k = 1; k <= Number(n); k++) {
  let s;
  try { s = JSON.parse(fs.readFileSync(`${out}/status-${k}.json`, "utf8")); } catch { continue; }
  samples++;
  if (s.processes.length > 0) withProcs++;
  maxLeased = Math.max(maxLeased, s.budgets.pinnedLeased);
  const pinned = s.processes.reduce((a, p) => a + p.pinned, 0);
  if (pinned > bestPinned) { bestPinned = pinned; best = k; }
}
if (best !== null) {
  fs.copyFileSync(`${out}/status-${best}.json`, `${out}/status-peak.json`);
  if (fs.existsSync(`${out}/metrics-${best}.txt`)) fs.copyFileSync(`${out}/metrics-${best}.txt`, `${out}/metrics-peak.txt`);
}
const peak = best !== null ? JSON.parse(fs.readFileSync(`${out}/status-peak.json`, "utf8")) : null;
const summary = {
  workload_exit: Number(rc), samples, samples_with_processes: withProcs, peak_sample: best,
  peak_pinned_bytes: bestPinned, max_pinned_leased: maxLeased,
  peak_processes: peak ? peak.processes.map((p) => ({ pid: p.pid, mode: p.mode, vram: p.vram, pinned: p.pinned, ooms: p.ooms, command: p.command })) : [],
  verdict: Number(rc) === 0 && withProcs > 0 && bestPinned > 0 && peak.processes.some((p) => p.mode === "broker") ? "PASS" : "FAIL",
};
fs.writeFileSync(`${out}/broker_run.json`, JSON.stringify(summary, null, 2));
console.log(`${summary.verdict}: ${samples} status samples, peak pinned ${bestPinned} bytes, max leased ${maxLeased}, workload exit ${rc}`);
JS
for f in broker_run.json status-peak.json metrics-peak.txt; do
  [ -f "$OUT/$f" ] && cp "$OUT/$f" "$FINAL_OUT/"
done
tar -czf "$FINAL_OUT/broker-run-logs.tar.gz" -C "$OUT" .
rm -rf "$RUNDIR"

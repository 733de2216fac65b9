#!/usr/bin/env bash
# GPU machine: build and run native/build/hwprobe, then write what `spillover bench hw` would save.
#   $OUT/hwprobe-h100.json      hwprobe's raw JSON (one object)
#   $OUT/hw-profile-h100.json   the hardware profile (schema spillover-hw-profile/1; the conversion
#                               below mirrors src/hw/hwprobe.ts because the GPU machine has no Node)
#   $OUT/hwprobe.log            build log, stderr, nvidia-smi's view of the link for comparison
# Usage (repository root): OUT=/some/dir bash native/gpu/hwprobe.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${OUT:-$ROOT/native/build/gpu-out}
mkdir -p "$OUT"
LOG="$OUT/hwprobe.log"
: > "$LOG"

if ! make -C "$ROOT/native" build/hwprobe >> "$LOG" 2>&1; then
  echo "hwprobe.sh: build failed (see $LOG)" | tee -a "$LOG" >&2
  exit 1
fi
{ echo "== nvidia-smi"; nvidia-smi --query-gpu=name,memory.total,pcie.link.gen.current,pcie.link.gen.max,pcie.link.width.current,pcie.link.width.max --format=csv 2>&1; } >> "$LOG"

"$ROOT/native/build/hwprobe" > "$OUT/hwprobe-h100.json" 2>> "$LOG"
rc=$?
echo "== hwprobe exit $rc" >> "$LOG"
cat "$OUT/hwprobe-h100.json" | tee -a "$LOG"
if [ "$rc" -ne 0 ]; then
  echo "hwprobe.sh: hwprobe failed (exit $rc)" >&2
  exit "$rc"
fi

python3 - "$OUT/hwprobe-h100.json" "$OUT/hw-profile-h100.json" <<'PY' 2>> "$LOG"
import datetime, json, socket, sys
p = json.load(open(sys.argv[1]))
pc = p["pcie"]
profile = {
    "schema": "spillover-hw-profile/1",
    "measuredAt": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
    "host": socket.gethostname(),
    "gpu": {
        "name": p["device"]["name"],
        "vramBytes": p["device"]["vram_bytes"],
        "computeCapability": p["device"]["cc"],
        "pcieGen": pc["max_gen"] if pc["max_gen"] is not None else pc["gen"],
        "pcieWidth": pc["max_width"] if pc["max_width"] is not None else pc["width"],
        "vramReadGBs": p["vram_read_gbs"],
        "h2dGBs": p["h2d_gbs"],
        "d2hGBs": p["d2h_gbs"],
        "zeroCopyReadGBs": p["zero_copy_read_gbs"],
        "vmmHostReadGBs": p["vmm_host_read_gbs"],
    },
    "cpu": {
        "threads": p["cpu"]["threads"],
        "ramReadGBs": p["cpu"]["ram_read_gbs"],
        "ramReadByThreads": p["cpu"]["ram_read_by_threads"],
        "memTotalBytes": p["cpu"]["mem_total_bytes"],
    },
}
json.dump(profile, open(sys.argv[2], "w"), indent=2)
print("wrote", sys.argv[2])
PY
echo "expected on the H100 machine (gpu-machine-facts.md): H2D 54.5, D2H 55.1, zero-copy 50.8, VMM host 50.8, HBM ~3100, RAM 16 threads 75.8 GB/s" | tee -a "$LOG"

"""Shared helpers for the benchmark workloads: spec in, result out, timing, and reading the
interposer's stats record. Each workload is a separate process started by bench/suite.py with
`--spec <json> --out <path>`; it writes one JSON object to <path> and exits 0, or exits non-zero
and the suite records the error tail. Standard library only (torch etc. are imported by the
workloads that need them)."""

import argparse
import hashlib
import json
import os
import struct
import subprocess
import sys
import time
import traceback

# Offsets into the 4096-byte stats record (native/include/spillover_protocol.h, version 1).
STATS_MAGIC = 0x3153544154535053
STATS_SIZE = 4096
_OFF = {
    "version": 8,
    "seq": 16,
    "pid": 24,
    "gpu_count": 28,
    "mode": 48,
    "exited": 52,
    "pinned_limit": 64,
    "pinned_lease": 72,
    "pinned_pool_bytes": 80,
    "pinned_used_bytes": 88,
    "pinned_peak_bytes": 96,
    "alloc_calls": 144,
    "free_calls": 152,
    "tiered_allocs": 160,
    "passthrough_allocs": 168,
    "oom_returned": 176,
    "pages_vram": 184,
    "pages_pinned": 192,
    "migrations": 200,
    "pool_grows": 208,
    "lease_denials": 216,
    "bad_args": 224,
    "largest_alloc": 232,
}
_GPU0 = 528  # gpu[0]; each sp_stats_gpu is 144 bytes
_GPU_OFF = {
    "vram_physical": 0,
    "vram_limit": 8,
    "vram_reserve": 16,
    "tier_vram_bytes": 24,
    "tier_pinned_bytes": 32,
    "tier_vram_peak": 48,
    "tier_pinned_peak": 56,
    "passthrough_bytes": 72,
    "passthrough_peak": 80,
    "program_vmm_bytes": 88,
    "program_vmm_host_bytes": 96,
    "reported_total": 104,
    "reported_free": 112,
}
# The streaming engine's block (struct sp_stats_stream at offset 2456): counters since start,
# except budget_bytes (the staging arena now). Records written before it existed read as zeros.
_STREAM = 2456
STREAM_FIELDS = ("staged_bytes", "staged_ranges", "stage_hits", "late_stages", "writeback_pages",
                 "inplace_launches", "copy_busy_ns", "budget_bytes", "fallbacks")
# also flat in the decoded record (stream_<field>), as the suite's records carry them
_OFF.update({f"stream_{k}": _STREAM + 8 * i for i, k in enumerate(STREAM_FIELDS)})
MODE_NAMES = {0: "passthrough", 1: "standalone", 2: "broker"}


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--spec", required=True, help="workload spec as JSON")
    p.add_argument("--out", required=True, help="where to write the result JSON")
    a = p.parse_args()
    return json.loads(a.spec), a.out


def array_shape(spec):
    """The JAX and CuPy chains' arrays: (count, MiB each, rows, cols) of uint32, rows a multiple
    of cols so the matrix-vector passes tile evenly."""
    n_arr = int(spec.get("arrays", 40))
    mib = int(spec.get("array_mib", 256))
    cols = int(spec.get("cols", 4096))
    rows = mib * (1 << 20) // 4 // cols
    if rows % cols:
        raise ValueError(f"array_mib={mib} with cols={cols} gives {rows} rows, not a multiple of cols")
    return n_arr, mib, rows, cols


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def stats_path(pid=None):
    d = os.environ.get("SPILLOVER_STATS_DIR", "/dev/shm")
    return os.path.join(d, f"spillover-{os.getuid()}-{pid or os.getpid()}.stats")


def _decode_stats(buf):
    u64 = lambda off: struct.unpack_from("<Q", buf, off)[0]  # noqa: E731
    u32 = lambda off: struct.unpack_from("<I", buf, off)[0]  # noqa: E731
    if len(buf) < STATS_SIZE or u64(0) != STATS_MAGIC:
        return None
    out = {"version": u32(_OFF["version"]), "pid": struct.unpack_from("<i", buf, 24)[0]}
    for k in ("gpu_count", "mode", "exited"):
        out[k] = u32(_OFF[k])
    out["mode_name"] = MODE_NAMES.get(out["mode"], "unknown")
    for k, off in _OFF.items():
        if k not in out and k != "seq":
            out[k] = u64(off)
    if out["gpu_count"] >= 1:
        for k, off in _GPU_OFF.items():
            out[k] = u64(_GPU0 + off)
    out["stream"] = {k: u64(_STREAM + 8 * i) for i, k in enumerate(STREAM_FIELDS)}
    return out


def stream_delta(a, b):
    """The streaming engine's counters between two stats records (b later), budget_bytes as of b;
    None when either record is missing."""
    if not a or not b or "stream" not in a or "stream" not in b:
        return None
    d = {k: b["stream"][k] - a["stream"][k] for k in STREAM_FIELDS if k != "budget_bytes"}
    d["budget_bytes"] = b["stream"]["budget_bytes"]
    return d


def read_stats(pid=None):
    """The interposer's stats record for `pid` (default: this process), or None when there is
    none (no interposer loaded, or it does not write stats yet). Retries on a torn read."""
    path = stats_path(pid)
    for _ in range(20):
        try:
            with open(path, "rb") as f:
                a = f.read(STATS_SIZE)
            with open(path, "rb") as f:
                b = f.read(STATS_SIZE)
        except OSError:
            return None
        if len(a) < 24 or len(b) < 24:
            return None
        sa = struct.unpack_from("<Q", a, 16)[0]
        sb = struct.unpack_from("<Q", b, 16)[0]
        if sa % 2 == 0 and sa == sb:
            return _decode_stats(a)
        time.sleep(0.005)
    return None


def stats_now(torch):
    """The interposer's stats record now (None without it), after the device is idle;
    cuMemGetInfo makes the interposer publish a fresh record."""
    torch.cuda.synchronize()
    try:
        torch.cuda.mem_get_info()
    except Exception:
        pass
    return read_stats()


def nvidia_smi_process_mib(pid=None):
    """Physical VRAM the driver says this process holds (MiB), from nvidia-smi run WITHOUT the
    interposer (its own capacity numbers are virtualised). None where unavailable."""
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    try:
        r = subprocess.run(
            ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, env=env,
        )
    except Exception:
        return None
    me = pid or os.getpid()
    for line in r.stdout.splitlines():
        parts = [x.strip() for x in line.split(",")]
        if len(parts) == 2 and parts[0] == str(me):
            try:
                return int(parts[1])
            except ValueError:
                return None
    return None


class PageLocator:
    """Where the page holding a device address lives, asked of the driver: a spillover (or any VMM)
    page's handle says VRAM or host; the driver's own memory (cuMemAlloc) has no handle and is
    VRAM. in_host(addr) -> bool. Raises OSError/AttributeError without libcuda's VMM queries."""

    def __init__(self):
        import ctypes
        self._c = ctypes
        cu = ctypes.CDLL("libcuda.so.1")
        self._retain, self._props, self._release = (cu.cuMemRetainAllocationHandle,
                                                    cu.cuMemGetAllocationPropertiesFromHandle, cu.cuMemRelease)
        self._retain.argtypes = [ctypes.POINTER(ctypes.c_ulonglong), ctypes.c_void_p]
        self._props.argtypes = [ctypes.c_void_p, ctypes.c_ulonglong]
        self._release.argtypes = [ctypes.c_ulonglong]
        self._prop = (ctypes.c_ubyte * 64)()  # CUmemAllocationProp (32 bytes) with room to spare

    def in_host(self, addr):
        c = self._c
        h = c.c_ulonglong(0)
        if self._retain(c.byref(h), c.c_void_p(addr)) != 0:
            return False
        c.memset(self._prop, 0, 64)
        ok = self._props(self._prop, h.value) == 0
        self._release(h.value)
        # CUmemAllocationProp.location.type at offset 8; 1 = CU_MEM_LOCATION_TYPE_DEVICE
        return ok and int.from_bytes(bytes(self._prop[8:12]), "little") != 1


def sha16(data):
    return hashlib.sha256(data).hexdigest()[:16]


def spill_env_summary():
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("SPILLOVER_") or k in (
        "LD_PRELOAD", "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION",
        "XLA_PYTHON_CLIENT_ALLOCATOR", "XLA_FLAGS", "PYTORCH_CUDA_ALLOC_CONF", "CUBLAS_WORKSPACE_CONFIG")}


def run_main(fn):
    """Runs fn(spec) -> dict of metrics, writes {"metrics": ..., "spill_stats": ...} to --out.
    Exceptions print a traceback and exit 1: the suite records the tail as the error."""
    spec, out = parse_args()
    t0 = time.time()
    try:
        metrics = fn(spec)
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)
    result = {
        "metrics": metrics,
        "spill_stats": read_stats(),
        "vram_used_smi_mib": nvidia_smi_process_mib(),
        "env": spill_env_summary(),
        "duration_s": round(time.time() - t0, 3),
    }
    with open(out, "w") as f:
        json.dump(result, f)
    log(f"done in {result['duration_s']} s")

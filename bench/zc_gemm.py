"""zc_gemm.py: how many times a bf16 GEMM (F.linear, cuBLAS) reads a weight that lives in host
memory (zero-copy through spillover's VMM host pages), by micro-batch M, for the linear shapes of
the suite's models. The planner's prefill model charges host weights at link speed times this
factor; one curve from one very wide GEMM (gpu-machine-facts.md) did not carry over to narrower
ones, so this measures the shapes themselves.

Run on the GPU machine (native/gpu/zc_gemm.sh does this), with every weight forced to host memory:
  LD_PRELOAD=native/build/libspillover.so SPILLOVER_VRAM_LIMIT=8G SPILLOVER_VRAM_RESERVE=0 \
  SPILLOVER_MIGRATE=0 SPILLOVER_BROKER=off python3 bench/zc_gemm.py OUT.json
A placeholder of 8 GiB takes the whole VRAM budget first, so the weights allocated next get host
pages only; the placeholder is then freed, so inputs and outputs are VRAM. factor(M) = GEMM time /
the time one read pass over the same weight takes in the same process (a reduction kernel)."""
import datetime
import json
import os
import subprocess
import sys

import torch
import torch.nn.functional as F

sys.dont_write_bytecode = True  # no __pycache__ in the working tree (it is copied to the GPU machine)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "workloads"))
import common  # noqa: E402  (bench/workloads/common.py: PageLocator)

SHAPES = {  # name: (out_features, in_features), as nn.Linear stores its weight
    "h4096-q/o": (4096, 4096), "h4096-k/v": (1024, 4096), "h4096-gate/up": (14336, 4096),
    "h4096-down": (4096, 14336), "h4096-head": (32000, 4096),
    "h5120-q/o": (5120, 5120), "h5120-k/v": (1024, 5120), "h5120-gate/up": (13824, 5120),
    "h5120-down": (5120, 13824), "h5120-head": (32000, 5120),
    "moe-expert-gate_up": (8192, 4096), "moe-expert-down": (4096, 4096),
}
MS = [1, 16, 64, 128, 256, 512, 1024, 2048, 4096]


def timed(fn, reps=3):
    fn()
    ts = []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1e3)
    return sorted(ts)[len(ts) // 2]


def main(out_path):
    torch.cuda.init()
    placeholder = torch.empty(8 << 30, dtype=torch.uint8, device="cuda")
    weights = {k: torch.empty(s, dtype=torch.bfloat16, device="cuda") for k, s in SHAPES.items()}
    del placeholder
    torch.cuda.empty_cache()
    loc = common.PageLocator()
    rows = []
    for name, w in weights.items():
        w.normal_()
        host = loc.in_host(w.data_ptr())
        read_s = timed(lambda: w.view(torch.float32).sum())
        row = {"shape": name, "out": w.shape[0], "in": w.shape[1], "bytes": w.numel() * 2, "in_host": host,
               "read_s": read_s, "read_GBs": w.numel() * 2 / read_s / 1e9, "gemm_s": {}, "factor": {}}
        for m in MS:
            x = torch.randn(m, w.shape[1], dtype=torch.bfloat16, device="cuda")
            t = timed(lambda: F.linear(x, w))
            row["gemm_s"][str(m)] = t
            row["factor"][str(m)] = round(t / read_s, 3)
        print(name, "host" if host else "VRAM", f"read {row['read_GBs']:.1f} GB/s", row["factor"], flush=True)
        rows.append(row)
    smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                         capture_output=True, text=True).stdout.strip()
    rec = {"schema": "spillover-zc-gemm/1", "date": datetime.datetime.now(datetime.timezone.utc).isoformat(),
           "card": smi, "git_commit": os.environ.get("GIT_COMMIT", "unknown"), "torch": torch.__version__,
           "command": "bash native/gpu/zc_gemm.sh", "ms": MS, "rows": rows}
    with open(out_path, "w") as f:
        json.dump(rec, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])

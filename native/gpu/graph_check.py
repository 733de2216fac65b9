"""graph_check.py: on a real GPU, do CUDA graph replays move a host-placed range into VRAM?
(native/src/graph_hooks.c; issue 9 item 3.) Run from the repository root after `make -C native`:

  SPILLOVER_VRAM_LIMIT=4G LD_PRELOAD=$PWD/native/build/libspillover.so \
    python3 native/gpu/graph_check.py --expect move
  SPILLOVER_MIGRATE=0 SPILLOVER_VRAM_LIMIT=4G LD_PRELOAD=$PWD/native/build/libspillover.so \
    python3 native/gpu/graph_check.py --expect stay

It fills the VRAM budget with 1 MiB tensors (PyTorch's 2 MiB small-pool segments, which spillover
passes to the driver: nothing can move them) until one lands in host memory, then makes x and y
(64 MiB each, so in host memory too), captures `y = x * 2 + 1` as a CUDA graph (its temporaries come
from the graph's pool, in host memory as well), frees the small tensors (empty_cache: VRAM has room
again) and replays the graph. Only the capture's few launches and the replays name x; the replays
must move it into VRAM (--expect move) or, with SPILLOVER_MIGRATE=0, leave it (--expect stay). Prints one JSON line: where x's pages are before and after, replay times, and
whether y is bitwise x * 2 + 1; exits 0 when the expectation held and the result is exact.
"""

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench", "workloads"))
from common import PageLocator  # noqa: E402

PAGE = 2 << 20


def host_fraction(loc, t):
    base, n = t.data_ptr(), t.numel() * t.element_size()
    pages = range(base, base + n, PAGE)
    return sum(loc.in_host(p) for p in pages) / len(pages)


def timed_replays(torch, g, n):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(n):
        g.replay()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / n * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--expect", choices=["move", "stay"], required=True)
    ap.add_argument("--replays", type=int, default=2000)
    args = ap.parse_args()
    import torch

    loc = PageLocator()
    fill = []
    while len(fill) < (1 << 20):  # at most 1 TiB: the budget must run out first
        t = torch.empty(1 << 20, dtype=torch.uint8, device="cuda")
        fill.append(t)
        if loc.in_host(t.data_ptr()):
            break
    filled_mib = len(fill)
    x = torch.randn(16 << 20, device="cuda")
    y = torch.empty_like(x)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        y.copy_(x * 2 + 1)  # warm-up outside the capture
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        y.copy_(x * 2 + 1)
    before = host_fraction(loc, x)
    del fill, t
    torch.cuda.empty_cache()
    first_ms = timed_replays(torch, g, 20)
    timed_replays(torch, g, args.replays)
    last_ms = timed_replays(torch, g, 20)
    after = host_fraction(loc, x)
    exact = bool(torch.equal(y, x * 2 + 1))
    moved_ok = after <= 0.1 if args.expect == "move" else after == before
    result = {
        "expect": args.expect,
        "filled_mib": filled_mib,
        "x_host_fraction_before": before,
        "x_host_fraction_after": after,
        "replay_ms_first": round(first_ms, 3),
        "replay_ms_last": round(last_ms, 3),
        "replays": args.replays + 40,
        "y_exact": exact,
        "pass": bool(before > 0.9 and moved_ok and exact),
    }
    print(json.dumps(result))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())

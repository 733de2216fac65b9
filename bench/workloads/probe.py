"""Measures, in the same suite run, the two bandwidths the physical bounds are computed from:
the pinned host->device copy bandwidth (the link; device->host and both directions at once too)
and the VRAM bandwidth (a read kernel and a device-to-device copy). Runs without the interposer.
Also records the card's identity."""

import os
import platform
import subprocess

import common


def _smi():
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    fields = "name,driver_version,memory.total,pcie.link.gen.current,pcie.link.width.current"
    try:
        r = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
                           capture_output=True, text=True, timeout=20, env=env)
        parts = [x.strip() for x in r.stdout.splitlines()[0].split(",")]
        return dict(zip(["name", "driver", "memory_total", "pcie_gen", "pcie_width"], parts))
    except Exception as e:  # the probe still measures bandwidth without nvidia-smi
        return {"error": str(e)}


def _time_events(torch, fn, reps):
    """Seconds of fn() over reps, timed with CUDA events after one warm-up: (median, min, max)."""
    fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        a = torch.cuda.Event(enable_timing=True)
        b = torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1000.0)
    ts.sort()
    return ts[len(ts) // 2], ts[0], ts[-1]


def main(spec):
    import torch

    size = int(spec.get("bytes", 1 << 30))
    reps = int(spec.get("reps", 5))
    n = size // 4
    host = torch.empty(n, dtype=torch.float32, pin_memory=True)
    host.fill_(1.0)
    dev = torch.empty(n, dtype=torch.float32, device="cuda")

    h2d, *h2d_s = _time_events(torch, lambda: dev.copy_(host, non_blocking=True), reps)
    # The brief's form: a pinned tensor moved with .to('cuda', non_blocking=True).
    h2d_to, *_ = _time_events(torch, lambda: host.to("cuda", non_blocking=True), reps)
    d2h, *d2h_s = _time_events(torch, lambda: host.copy_(dev, non_blocking=True), reps)
    # both directions at once on two streams (the link is full duplex; a training step under
    # spillover moves bytes both ways): bytes of both copies over the time of the pair
    host2 = torch.empty(n, dtype=torch.float32, pin_memory=True)
    dev2 = torch.empty(n, dtype=torch.float32, device="cuda")
    s_up, s_down = torch.cuda.Stream(), torch.cuda.Stream()

    def duplex():
        cur = torch.cuda.current_stream()
        s_up.wait_stream(cur)
        s_down.wait_stream(cur)
        with torch.cuda.stream(s_up):
            dev.copy_(host, non_blocking=True)
        with torch.cuda.stream(s_down):
            host2.copy_(dev2, non_blocking=True)
        cur.wait_stream(s_up)
        cur.wait_stream(s_down)

    both, *both_s = _time_events(torch, duplex, reps)
    del host2, dev2

    big = torch.empty(2 * n, dtype=torch.float32, device="cuda").fill_(1.0)
    big2 = torch.empty_like(big)
    read, *read_s = _time_events(torch, lambda: torch.sum(big), reps)
    copy, *copy_s = _time_events(torch, lambda: big2.copy_(big), reps)
    big_bytes = big.numel() * 4
    gb = 1e9

    def rates(nbytes, fastest_slowest):  # GB/s of the slowest and the fastest repetition
        lo_s, hi_s = fastest_slowest
        return [round(nbytes / hi_s / gb, 2), round(nbytes / lo_s / gb, 2)]

    props = torch.cuda.get_device_properties(0)
    free, total = torch.cuda.mem_get_info()
    return {
        "h2d_pinned_gbps": round(size / h2d / gb, 2),
        "h2d_pinned_to_gbps": round(size / h2d_to / gb, 2),
        "d2h_pinned_gbps": round(size / d2h / gb, 2),
        "duplex_pinned_gbps": round(2 * size / both / gb, 2),
        "vram_read_gbps": round(big_bytes / read / gb, 1),
        # a copy reads and writes every byte
        "vram_copy_gbps": round(2 * big_bytes / copy / gb, 1),
        "copy_bytes": size,
        "reps": reps,
        # [slowest, fastest] repetition of each: the spread the medians above come from
        "spread_gbps": {"h2d_pinned": rates(size, h2d_s), "d2h_pinned": rates(size, d2h_s),
                        "duplex_pinned": rates(2 * size, both_s),
                        "vram_read": rates(big_bytes, read_s),
                        "vram_copy": rates(2 * big_bytes, copy_s)},
        "gpu_name": props.name,
        "vram_total_bytes": int(total),
        "vram_free_bytes": int(free),
        "sm_count": props.multi_processor_count,
        "cuda_runtime": torch.version.cuda,
        "smi": _smi(),
        "kernel": platform.release(),
    }


if __name__ == "__main__":
    common.run_main(main)

"""handwritten.py: the hand-written streaming baseline of issue 10, what vLLM's prefetch offloader
and SGLang's offloader do. The lean decoder (bench/lean/lean_decoder.py, same flags, same
fixed-seed weights) runs its prefill once with every weight in VRAM; then ALL its weights go to
pinned host memory (torch pin_memory, the VRAM copies freed) and the same prefill runs again,
each copy unit (the embedding, each layer, the head) copied on a side stream into one of two
alternating VRAM buffers while the previous unit computes, ordered by events (buffer ready,
buffer free). The layer code is the decoder's own (Lean.prefill_layer on views of the buffer),
so the logits must be bitwise equal to the all-in-VRAM run; both hashes are recorded.

Timing: CUDA events around each prefill (and the wall clock), warm-up, then the median of `reps`
with min, max and every repetition, for both placements.

  python3 bench/stream/handwritten.py --spec '{"reps": 5}' --out r.json
Spec keys: the lean decoder's model keys (hidden, intermediate, layers, heads, kv_heads, vocab,
seed) plus prefill_m (2048), reps (5), warmup_reps (2). Output: bench/suite.py's workload
protocol ({"metrics", "spill_stats", ...}); run it without the interposer."""

import hashlib
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the working tree (it is copied to the GPU machine)
BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(BENCH, "workloads"))
sys.path.insert(0, os.path.join(BENCH, "lean"))
import common  # noqa: E402  (the workload protocol)
from lean_decoder import DEFAULTS, Lean, spread  # noqa: E402  (the same model, the same layer code)

MODEL_KEYS = ("hidden", "intermediate", "layers", "heads", "kv_heads", "vocab", "seed")
SPEC_DEFAULTS = {"prefill_m": 2048, "reps": 5, "warmup_reps": 2}
# offsets of the weights inside a buffer: generous for every GEMM kernel's alignment needs, and
# small beside a tensor (a few MB of padding in 14.5 GB)
ALIGN = 64 << 10


def config(spec):
    unknown = sorted(set(spec) - set(MODEL_KEYS) - set(SPEC_DEFAULTS))
    if unknown:
        raise ValueError(f"handwritten.py: unknown spec keys {unknown}; known: {sorted(MODEL_KEYS + tuple(SPEC_DEFAULTS))}")
    cfg = {k: DEFAULTS[k] for k in MODEL_KEYS}
    cfg.update(SPEC_DEFAULTS)
    cfg.update(spec)
    return cfg


def layout(unit):
    """[(name, offset, nbytes, tensor)] of one copy unit packed at ALIGN, and its total bytes."""
    out, at = [], 0
    for name, t in unit:
        nb = t.numel() * t.element_size()
        out.append((name, at, nb, t))
        at += (nb + ALIGN - 1) // ALIGN * ALIGN
    return out, at


class Streamer:
    """All weights of m in one pinned host buffer; two VRAM buffers; the prefill streamed."""

    def __init__(self, torch, m):
        self.t = torch
        self.m = m
        units = [[("embed", m.embed)]]
        units += [list(ly.items()) for ly in m.layers]
        units.append([("final_norm", m.final_norm), ("lm_head", m.lm_head)])
        lays = [layout(u) for u in units]
        self.sizes = [total for _, total in lays]
        t0 = time.perf_counter()
        self.host = torch.empty(sum(self.sizes), dtype=torch.uint8, pin_memory=True)
        self.pin_s = time.perf_counter() - t0
        self.unit_host = []
        base = 0
        for (lay, total) in lays:
            for _, off, nb, t in lay:
                self.host[base + off : base + off + nb].copy_(t.reshape(-1).view(torch.uint8))
            self.unit_host.append(self.host[base : base + total])
            base += total
        slot = max(self.sizes)
        self.slots = [torch.empty(slot, dtype=torch.uint8, device="cuda") for _ in range(2)]
        # per buffer, per unit: the weights as views of the buffer, shaped as the model's own
        self.views = [[{name: buf[off : off + nb].view(t.dtype).view(t.shape) for name, off, nb, t in lay}
                       for lay, _ in lays] for buf in self.slots]
        self.copy = torch.cuda.Stream()
        self.ready = [torch.cuda.Event() for _ in range(2)]
        self.free = [torch.cuda.Event() for _ in range(2)]
        for e in self.free:
            e.record(torch.cuda.current_stream())
        torch.cuda.synchronize()
        self.streamed_bytes = sum(self.sizes)
        self.weight_bytes = sum(nb for lay, _ in lays for _, _, nb, _ in lay)

    def prefill(self, ids):
        """Lean.prefill with every weight arriving through the two buffers."""
        torch, m = self.t, self.m
        cur = torch.cuda.current_stream()
        self.copy.wait_stream(cur)  # nothing is copied before the work ahead of this prefill
        n = len(self.unit_host)
        M = ids.shape[1]

        def issue(u):
            s = u % 2
            with torch.cuda.stream(self.copy):
                self.copy.wait_event(self.free[s])  # the unit two back has finished with buffer s
                self.slots[s][: self.sizes[u]].copy_(self.unit_host[u], non_blocking=True)
                self.ready[s].record(self.copy)

        issue(0)
        x = None
        for u in range(n):
            if u + 1 < n:
                issue(u + 1)  # the next unit's copy runs while this one computes
            cur.wait_event(self.ready[u % 2])
            w = self.views[u % 2][u]
            if u == 0:
                x = m.F.embedding(ids[0], w["embed"])
            elif u == n - 1:
                m._head(x[M - 1 : M], w["final_norm"], w["lm_head"])
            else:
                x = m.prefill_layer(x, u - 1, w)
            self.free[u % 2].record(cur)
        m.pos.fill_(M)


def timed(torch, fn, reps, warmup):
    """(spread of CUDA-event seconds, spread of wall seconds) of fn after warm-up."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ev, wall = [], []
    for _ in range(reps):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0 = time.perf_counter()
        a.record()
        fn()
        b.record()
        b.synchronize()
        wall.append(time.perf_counter() - t0)
        ev.append(a.elapsed_time(b) / 1000.0)
    return spread(ev), spread(wall)


def logits_sha(m):
    return hashlib.sha256(m.logits.float().cpu().numpy().tobytes()).hexdigest()


def main(spec):
    import torch

    cfg = config(spec)
    M, R, W = int(cfg["prefill_m"]), max(1, int(cfg["reps"])), max(1, int(cfg["warmup_reps"]))
    t0 = time.perf_counter()
    m = Lean(torch, cfg)
    build_s = time.perf_counter() - t0
    m.alloc_state((M + 63) // 64 * 64 + 64, M)
    gen = torch.Generator().manual_seed(int(cfg["seed"]) + 1)  # the lean decoder's prompt
    m.pf_tok.copy_(torch.randint(3, m.V, (1, M), generator=gen).to("cuda"))
    out = {"config": cfg, "weight_bytes": m.weight_bytes, "build_s": round(build_s, 3), "prefill_m": M}
    with torch.no_grad():
        ev, wall = timed(torch, lambda: m.prefill(m.pf_tok), R, W)
        out["in_vram"] = {"seconds": ev, "wall_seconds": wall, "logits_sha256": logits_sha(m),
                          "tokens_per_s": round(M / ev["median"], 2)}
        common.log(f"all weights in VRAM: prefill {M} median {ev['median'] * 1e3:.1f} ms "
                    f"(min {ev['min'] * 1e3:.1f}, max {ev['max'] * 1e3:.1f})")

        t0 = time.perf_counter()
        st = Streamer(torch, m)
        # the VRAM copies go: from here on the weights exist only in pinned host memory
        m.weights.clear()
        m.layers = [None] * len(m.layers)
        m.embed = m.final_norm = m.lm_head = None
        torch.cuda.synchronize()
        torch.cuda.empty_cache()
        out["to_host_s"] = round(time.perf_counter() - t0, 3)
        out["pin_s"] = round(st.pin_s, 3)
        out["host_buffer_bytes"] = st.host.numel()
        out["streamed_bytes_per_prefill"] = st.streamed_bytes
        out["buffer_bytes"] = len(st.slots) * st.slots[0].numel()
        out["vram_allocated_while_streaming"] = int(torch.cuda.memory_allocated())
        common.log(f"weights to pinned host memory in {out['to_host_s']} s (pinning {out['pin_s']} s); "
                    f"two buffers of {st.slots[0].numel() / 1e6:.0f} MB; VRAM allocated now "
                    f"{out['vram_allocated_while_streaming'] / 1e9:.2f} GB")
        m.logits.zero_()
        ev, wall = timed(torch, lambda: st.prefill(m.pf_tok), R, W)
        sha = logits_sha(m)
        out["streamed"] = {"seconds": ev, "wall_seconds": wall, "logits_sha256": sha,
                           "tokens_per_s": round(M / ev["median"], 2),
                           "link_gbps_effective": round(st.streamed_bytes / ev["median"] / 1e9, 2)}
        out["equal_to_in_vram"] = sha == out["in_vram"]["logits_sha256"]
        common.log(f"all weights in pinned host memory, streamed: prefill {M} median {ev['median'] * 1e3:.1f} ms "
                    f"(min {ev['min'] * 1e3:.1f}, max {ev['max'] * 1e3:.1f}), "
                    f"{out['streamed']['link_gbps_effective']} GB/s effective; logits "
                    f"{'EQUAL to' if out['equal_to_in_vram'] else 'DIFFERENT from'} the all-in-VRAM run")
    out["torch_max_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
    return out


if __name__ == "__main__":
    common.run_main(main)

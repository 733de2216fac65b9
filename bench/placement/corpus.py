"""corpus.py: small GPU programs whose outputs must be bitwise identical with and without
spillover (invariant 1), each one case of `--case NAME`; bench/placement/prove.py runs every case
once without the interposer and once under a VRAM limit of 40% of the peak the first run
reported, and compares the output hashes.

  adamw    AdamW training of a small fp32 residual MLP for 10 steps: hash of the weights
  streams  two CUDA streams running matmul chains at the same time: hash of the results
  triton   a Triton elementwise kernel over large buffers: hash of the outputs
  jax      a jitted forward over large arrays (XLA's allocator): hash of the output; with
           --reps it is also the JAX preallocation benchmark (median time per forward)
  cupy     CuPy matmuls and elementwise passes (CuPy's memory pool): hash of the results
  graphs   a torch.cuda.graph of an MLP forward, replayed on 10 inputs: hash of the outputs

  python3 bench/placement/corpus.py --case adamw --size-gib 2 --out r.json
`--spec JSON` ({"case", "size_gib", "reps"}) is accepted too (bench/suite.py's run_workload).
The result is that protocol's JSON: {"metrics": {"case", "hash", "peak_bytes", ...}, ...}."""

import argparse
import hashlib
import json
import math
import os
import sys
import time
import traceback

sys.dont_write_bytecode = True  # no __pycache__ in the working tree (it is copied to the GPU machine)
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "workloads"))
import common  # noqa: E402  (bench/workloads/common.py)

GIB = 1 << 30
MIB = 1 << 20


def torch_digest(torch, tensors):
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().contiguous().view(-1).view(torch.uint8).cpu().numpy().tobytes())
    return h.hexdigest()


def torch_peak(torch):
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_reserved())


def case_adamw(size_gib, reps):
    import torch

    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True, warn_only=True)
    D = 4096
    # weights + grads + two AdamW moments = 4 x the parameters
    n_layers = max(2, int(size_gib * GIB / 4 / (D * D * 4)))
    blocks = torch.nn.ModuleList()
    for _ in range(n_layers):
        blocks.append(torch.nn.Sequential(torch.nn.LayerNorm(D), torch.nn.Linear(D, D, bias=False), torch.nn.GELU()))
    blocks = blocks.to("cuda")
    opt = torch.optim.AdamW(blocks.parameters(), lr=1e-3, weight_decay=0.01)
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(512, D, device="cuda", generator=g)
    y = torch.randn(512, D, device="cuda", generator=g)
    losses = []
    for _ in range(10):
        h = x
        for b in blocks:
            h = h + b(h)
        loss = torch.nn.functional.mse_loss(h, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    params = list(blocks.parameters())
    return {"hash": torch_digest(torch, params), "losses": losses, "layers": n_layers,
            "param_bytes": sum(p.numel() * 4 for p in params), "peak_bytes": torch_peak(torch)}


def case_streams(size_gib, reps):
    import torch

    D = 4096
    per = max(2, int(size_gib * GIB / 2 / (D * D * 4)))
    g = torch.Generator(device="cuda").manual_seed(2)
    wa = [torch.randn(D, D, device="cuda", generator=g) / math.sqrt(D) for _ in range(per)]
    wb = [torch.randn(D, D, device="cuda", generator=g) / math.sqrt(D) for _ in range(per)]
    xa0 = torch.randn(256, D, device="cuda", generator=g)
    xb0 = torch.randn(256, D, device="cuda", generator=g)
    sa, sb = torch.cuda.Stream(), torch.cuda.Stream()
    cur = torch.cuda.current_stream()
    outs = []
    for r in range(3):
        sa.wait_stream(cur)
        sb.wait_stream(cur)
        with torch.cuda.stream(sa):
            xa = xa0 * (r + 1)
            for w in wa:
                xa = torch.tanh(xa @ w)
        with torch.cuda.stream(sb):
            xb = xb0 * (r + 1)
            for w in wb:
                xb = torch.tanh(xb @ w)
        cur.wait_stream(sa)
        cur.wait_stream(sb)
        outs.append(xa + xb)
    return {"hash": torch_digest(torch, outs), "weights_per_stream": per, "peak_bytes": torch_peak(torch)}


def case_triton(size_gib, reps):
    import torch
    import triton

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from triton_kernel import fma_kernel

    n = 64 * MIB  # 256 MiB of float32 per buffer
    k = max(2, int(size_gib * GIB / 2 / (n * 4)))
    g = torch.Generator(device="cuda").manual_seed(3)
    ins = [torch.randn(n, device="cuda", generator=g) for _ in range(k)]
    outs = [torch.empty_like(ins[0]) for _ in range(k)]
    BLOCK = 1024
    for _ in range(2):
        for i in range(k):
            fma_kernel[(triton.cdiv(n, BLOCK),)](ins[i], ins[(i + 1) % k], outs[i], n, BLOCK=BLOCK)
        ins, outs = outs, ins
    return {"hash": torch_digest(torch, ins), "buffers": 2 * k, "peak_bytes": torch_peak(torch),
            "triton": triton.__version__}


def case_graphs(size_gib, reps):
    import torch

    D = 4096
    n_layers = max(2, int(size_gib * GIB / (D * D * 4)))
    g = torch.Generator(device="cuda").manual_seed(4)
    ws = [torch.randn(D, D, device="cuda", generator=g) / math.sqrt(D) for _ in range(n_layers)]
    inputs = [torch.randn(64, D, device="cuda", generator=g) for _ in range(10)]
    static_x = torch.zeros(64, D, device="cuda")

    def fwd():
        h = static_x
        for w in ws:
            h = torch.tanh(h @ w)
        return h

    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fwd()
    torch.cuda.current_stream().wait_stream(s)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        static_y = fwd()
    outs = []
    for x in inputs:
        static_x.copy_(x)
        graph.replay()
        outs.append(static_y.clone())
    return {"hash": torch_digest(torch, outs), "layers": n_layers, "peak_bytes": torch_peak(torch)}


def case_cupy(size_gib, reps):
    import cupy as cp

    n = 8192  # 256 MiB of float32 per array
    k = max(2, int(size_gib * GIB / (n * n * 4)))
    rs = cp.random.RandomState(5)
    arrs = [rs.standard_normal((n, n), dtype=cp.float32) for _ in range(k)]
    v = rs.standard_normal((n, 64), dtype=cp.float32) / cp.float32(math.sqrt(n))
    pool = cp.get_default_memory_pool()
    peak = pool.total_bytes()
    for _ in range(2):
        for a in arrs:
            v = cp.tanh(a @ v)
            a *= cp.float32(1.0001)
        peak = max(peak, pool.total_bytes())
    sums = [int(a.view(cp.uint32).sum(dtype=cp.uint64)) for a in arrs]
    cp.cuda.Device().synchronize()
    h = hashlib.sha256(cp.asnumpy(v).tobytes())
    h.update(json.dumps(sums).encode())
    return {"hash": h.hexdigest(), "arrays": k, "peak_bytes": int(peak), "cupy": cp.__version__}


def case_jax(size_gib, reps):
    import jax
    import jax.numpy as jnp
    import numpy as np

    n = 16384 if size_gib >= 4 else 8192  # 1 GiB or 256 MiB of float32 per array
    k = max(2, int(round(size_gib * GIB / (n * n * 4))))
    key = jax.random.key(6)

    @jax.jit
    def make(i):
        return jax.random.normal(jax.random.fold_in(key, i), (n, n), jnp.float32)

    ws = []
    for i in range(k):
        ws.append(make(i))
        ws[-1].block_until_ready()
    x0 = jax.random.normal(jax.random.fold_in(key, 10_000), (256, n), jnp.float32)
    scale = jnp.float32(1.0 / math.sqrt(n))

    @jax.jit
    def fwd(ws, x):
        for w in ws:
            x = jnp.tanh((x @ w) * scale)
        return x

    ws = tuple(ws)
    t = time.perf_counter()
    y = fwd(ws, x0).block_until_ready()
    first_s = time.perf_counter() - t
    ts = []
    for _ in range(max(1, reps)):
        t = time.perf_counter()
        y = fwd(ws, x0).block_until_ready()
        ts.append(time.perf_counter() - t)
    out = np.asarray(jax.device_get(y))
    peak = None
    stats = {}
    try:
        stats = {kk: int(vv) for kk, vv in (jax.devices()[0].memory_stats() or {}).items() if isinstance(vv, (int, float))}
        peak = stats.get("peak_bytes_in_use")
    except Exception as e:
        stats = {"error": str(e)}
    s = sorted(ts)
    return {"hash": hashlib.sha256(out.tobytes()).hexdigest(), "arrays": k, "array_bytes": n * n * 4,
            "arrays_bytes": k * n * n * 4, "first_forward_s": round(first_s, 4),
            "forward_s": {"median": s[len(s) // 2], "min": s[0], "max": s[-1], "all": [round(v, 5) for v in ts]},
            "peak_bytes": peak if peak else k * n * n * 4, "memory_stats": stats, "jax": jax.__version__}


CASES = {"adamw": case_adamw, "streams": case_streams, "triton": case_triton, "jax": case_jax,
         "cupy": case_cupy, "graphs": case_graphs}


def main():
    p = argparse.ArgumentParser(description="one bitwise-corpus program")
    p.add_argument("--case", choices=sorted(CASES), default=None)
    p.add_argument("--size-gib", type=float, default=None, help="memory the program holds (default 2)")
    p.add_argument("--reps", type=int, default=None, help="timed repetitions (jax only; default 5)")
    p.add_argument("--spec", default=None, help='JSON {"case", "size_gib", "reps"}')
    p.add_argument("--out", required=True)
    a = p.parse_args()
    spec = json.loads(a.spec) if a.spec else {}
    case = a.case or spec.get("case")
    if case not in CASES:
        p.error(f"--case {case!r}: use one of {', '.join(sorted(CASES))}")
    size = a.size_gib if a.size_gib is not None else float(spec.get("size_gib", 2.0))
    reps = a.reps if a.reps is not None else int(spec.get("reps", 5))
    if size <= 0:
        p.error(f"--size-gib {size}: use a positive number of GiB")
    t0 = time.time()
    common.log(f"corpus case {case}, {size} GiB")
    try:
        metrics = CASES[case](size, reps)
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)
    metrics["case"] = case
    metrics["size_gib"] = size
    common.log(f"{case}: hash {metrics['hash'][:16]}, peak {metrics.get('peak_bytes')}")
    result = {"metrics": metrics, "spill_stats": common.read_stats(), "vram_used_smi_mib": common.nvidia_smi_process_mib(),
              "env": common.spill_env_summary(), "duration_s": round(time.time() - t0, 3)}
    with open(a.out, "w") as f:
        json.dump(result, f)
    common.log(f"done in {result['duration_s']} s")


if __name__ == "__main__":
    main()

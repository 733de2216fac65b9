"""work.py: the two-GPU workloads behind bench/mgpu/prove.py (issue 11), one per subcommand, each
writing one JSON object to --out (ranks of a torchrun job: <out>.rank<r>.json). prove.py starts
each in its own process with a timeout; this file only measures and never judges.

  python3 work.py peer-copy --out r.json [--gib 8]          one process, cuda:0 -> cuda:1 -> cuda:0
  torchrun --nproc-per-node 2 work.py allreduce --out r.json [--gib 6]
  torchrun --nproc-per-node 2 work.py ddp --out r.json [--steps 5]
  torchrun --nproc-per-node 2 work.py tp --out r.json [--layers 24]
  python3 work.py warm-host --gib 64 --out r.json           touch host memory (the VM's RAM grows on use)

peer-copy: tensors on cuda:0 (over the limit, so they have host pages) copied to cuda:1 with
x.to('cuda:1') (the issue's crash) and copy_, and back; bytes compared on the GPU and a sample
on the CPU. allreduce: NCCL all-reduce of --gib GiB of float32 per rank with small-integer values
(exact in any summation order); checksums of the result are order-free integer sums. ddp: a
~0.94B-parameter MLP stack trained 5 deterministic steps with DDP; sha256 of the weights, peak
memory per rank. tp: a Megatron-style 2-way tensor-parallel random bf16 decoder (column-parallel
q/k/v and gate/up, row-parallel o and down with an all-reduce each, vocabulary-parallel lm_head),
eager decode of one token at a time; pinned H2D and a VRAM GEMV read are measured in the same
run, before the weights exist, and every weight page is located (VRAM or host) for the bound."""

import argparse
import hashlib
import json
import os
import sys
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "workloads"))
GIB = 1 << 30
PAGE = 2 << 20


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')} pid {os.getpid()}] {msg}", flush=True)


def spill_stats():
    try:
        import common  # bench/workloads/common.py

        return common.read_stats()
    except Exception as e:  # noqa: BLE001
        return {"error": str(e)}


def write(out, obj):
    tmp = out + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, out)


# ---- one process ------------------------------------------------------------------------------


def peer_copy(a):
    import torch

    assert torch.cuda.device_count() >= 2, f"{torch.cuda.device_count()} GPU(s) visible, need 2"
    n = GIB
    gen = torch.Generator(device="cuda:0").manual_seed(7)
    xs = [torch.randint(0, 256, (n,), dtype=torch.uint8, device="cuda:0", generator=gen) for _ in range(a.gib)]
    torch.cuda.synchronize(0)
    host_pages = None
    try:
        import common

        loc = common.PageLocator()
        host_pages = sum(loc.in_host(x.data_ptr() + o) for x in xs for o in range(0, n, PAGE))
    except Exception as e:  # noqa: BLE001
        log(f"no page locator: {e}")
    log(f"{a.gib} GiB on cuda:0, {host_pages} pages of it in host memory")
    total = equal = 0
    t0 = time.time()
    for i, x in enumerate(xs):
        if i % 2 == 0:
            y = x.to("cuda:1")  # the segfault
        else:
            y = torch.empty(n, dtype=torch.uint8, device="cuda:1")
            y.copy_(x, non_blocking=True)
        z = y.to("cuda:0")
        torch.cuda.synchronize(0)
        torch.cuda.synchronize(1)
        equal += int((z == x).sum().item())
        total += n
        if i == 0:  # the cuda:1 copy itself, on the CPU
            equal += int((y.cpu() == x.cpu()).sum().item())
            total += n
        del y, z
    secs = time.time() - t0
    write(a.out, {"ok": True, "bytes_total": total, "bytes_equal": equal, "source_host_pages": host_pages,
                  "gib": a.gib, "seconds": secs, "spill_stats": spill_stats()})


def _touch(gib):
    import mmap

    try:
        m = mmap.mmap(-1, gib * GIB)
        try:
            m.madvise(23)  # MADV_POPULATE_WRITE: fault every page in at once
        except (OSError, ValueError, AttributeError):
            for off in range(0, gib * GIB, 4096):
                m[off] = 1
        m.close()
        return gib
    except (OSError, MemoryError):
        return 0


def warm_host(a):
    """Touches --gib GiB of host memory, 8 processes at a time in 4 GiB pieces (the two-GPU VM's
    MemTotal grows as memory is used, and the interposer caps its pinned budget at MemAvailable),
    then frees it."""
    from multiprocessing import Pool

    def avail():
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        return 0

    before = avail()
    with Pool(8) as pool:
        touched = sum(pool.map(_touch, [4] * (a.gib // 4))) * GIB
    write(a.out, {"ok": True, "touched_bytes": touched, "mem_available_before": before, "mem_available_after": avail()})


# ---- torchrun jobs ------------------------------------------------------------------------------


def dist_init():
    import torch
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local)
    dist.init_process_group("nccl", device_id=torch.device(f"cuda:{local}"))
    return torch, dist, rank, local


def int_checksums(torch, t):
    """Order-free integer checksums of a float32 tensor: sum and sum of squares of its bits."""
    v = t.view(torch.int32)
    s = q = 0
    for c in v.split(1 << 26):
        c64 = c.to(torch.int64)
        s += int(c64.sum().item())
        q += int((c64 * c64).sum().item())
    return {"sum": str(s), "sumsq": str(q)}


def allreduce(a):
    torch, dist, rank, local = dist_init()
    n = a.gib * GIB // 4
    x = torch.empty(n, dtype=torch.float32, device=f"cuda:{local}")
    step = 1 << 27
    for s in range(0, n, step):
        e = min(n, s + step)
        x[s:e] = (torch.arange(s, e, device=x.device) % 251 + rank).to(torch.float32)
    torch.cuda.synchronize()
    dist.barrier()
    t0 = time.time()
    dist.all_reduce(x)
    torch.cuda.synchronize()
    secs = time.time() - t0
    sums = int_checksums(torch, x)
    sample = hashlib.sha256(b"".join(x[o:o + (1 << 20)].cpu().numpy().tobytes() for o in (0, n // 2, n - (1 << 20)))).hexdigest()
    write(f"{a.out}.rank{rank}.json", {"ok": True, "rank": rank, "gib": a.gib, "seconds": secs, "checksums": sums,
                                        "sample_sha256": sample, "spill_stats": spill_stats()})
    dist.barrier()
    dist.destroy_process_group()


def ddp(a):
    torch, dist, rank, local = dist_init()
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.use_deterministic_algorithms(True, warn_only=True)  # the proof compares bits anyway
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(1234)
    dev = torch.device(f"cuda:{local}")
    hidden, inter, layers, vocab = 2048, 8192, 24, 32000

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, hidden)
            self.blocks = torch.nn.ModuleList(
                torch.nn.Sequential(torch.nn.LayerNorm(hidden), torch.nn.Linear(hidden, inter), torch.nn.GELU(),
                                    torch.nn.Linear(inter, hidden)) for _ in range(layers))
            self.head = torch.nn.Linear(hidden, vocab)

        def forward(self, ids):
            h = self.emb(ids)
            for b in self.blocks:
                h = h + b(h)
            return self.head(h)

    model = Net().to(dev)  # same seed on both ranks: identical start (DDP broadcasts rank 0's anyway)
    params = sum(p.numel() for p in model.parameters())
    m = DDP(model, device_ids=[local])
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4)
    g = torch.Generator(device=dev).manual_seed(100 + rank)
    t0 = time.time()
    losses = []
    for _ in range(a.steps):
        ids = torch.randint(0, vocab, (4, 512), device=dev, generator=g)
        loss = torch.nn.functional.cross_entropy(m(ids).flatten(0, 1).float(), ids.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.item()))
    torch.cuda.synchronize()
    secs = time.time() - t0
    h = hashlib.sha256()
    for p in model.parameters():
        h.update(p.detach().cpu().numpy().tobytes())
    write(f"{a.out}.rank{rank}.json", {
        "ok": True, "rank": rank, "params": params, "steps": a.steps, "seconds": secs, "losses": losses,
        "weights_sha256": h.hexdigest(), "peak_reserved": torch.cuda.max_memory_reserved(),
        "peak_allocated": torch.cuda.max_memory_allocated(), "spill_stats": spill_stats()})
    dist.barrier()
    dist.destroy_process_group()


def tp(a):
    torch, dist, rank, local = dist_init()
    import torch.nn.functional as F

    world = dist.get_world_size()
    dev = torch.device(f"cuda:{local}")
    hidden, inter, heads, kv, vocab, hd = a.hidden, a.intermediate, a.heads, a.kv_heads, 32000, a.hidden // a.heads
    hl, kl, il, vl = heads // world, kv // world, inter // world, vocab // world
    bf = torch.bfloat16

    # 1. the bound's two rates, measured here before any weight exists (both ranks at once)
    dist.barrier()
    pinned = torch.empty(GIB, dtype=torch.uint8, pin_memory=True)
    dbuf = torch.empty(GIB, dtype=torch.uint8, device=dev)
    ev = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
    dbuf.copy_(pinned, non_blocking=True)
    torch.cuda.synchronize()
    dist.barrier()
    ev[0].record()
    for _ in range(5):
        dbuf.copy_(pinned, non_blocking=True)
    ev[1].record()
    torch.cuda.synchronize()
    h2d = 5 * GIB / (ev[0].elapsed_time(ev[1]) / 1e3)
    del pinned, dbuf
    mat = torch.randn(32768, 16384, dtype=bf, device=dev)  # 1 GiB, in VRAM (nothing else is there yet)
    vec = torch.randn(16384, dtype=bf, device=dev)
    for _ in range(3):
        torch.mv(mat, vec)
    torch.cuda.synchronize()
    ev[0].record()
    for _ in range(20):
        torch.mv(mat, vec)
    ev[1].record()
    torch.cuda.synchronize()
    hbm = 20 * mat.numel() * 2 / (ev[0].elapsed_time(ev[1]) / 1e3)
    del mat, vec
    torch.cuda.empty_cache()
    log(f"rank {rank}: pinned H2D {h2d / 1e9:.1f} GB/s, VRAM GEMV read {hbm / 1e9:.0f} GB/s")

    # 2. the shard of a random bf16 decoder (a fixed-seed generator per rank: the same model each run)
    g = torch.Generator(device=dev).manual_seed(99 + rank)

    def w(*shape):
        return torch.randn(*shape, dtype=bf, device=dev, generator=g).mul_(0.02)

    emb = w(vocab, hidden)  # replicated; a decode step reads one row of it
    read = []  # the tensors one decode step reads whole
    L = []
    for _ in range(a.layers):
        lay = {"n1": torch.ones(hidden, dtype=bf, device=dev), "wq": w(hl * hd, hidden), "wk": w(kl * hd, hidden),
               "wv": w(kl * hd, hidden), "wo": w(hidden, hl * hd), "n2": torch.ones(hidden, dtype=bf, device=dev),
               "wg": w(il, hidden), "wu": w(il, hidden), "wd": w(hidden, il)}
        L.append(lay)
        read += list(lay.values())
    nf, head = torch.ones(hidden, dtype=bf, device=dev), w(vl, hidden)
    read += [nf, head]
    max_pos = a.pos + 64
    kc = torch.zeros(a.layers, kl, max_pos, hd, dtype=bf, device=dev)
    vc = torch.zeros(a.layers, kl, max_pos, hd, dtype=bf, device=dev)
    torch.cuda.synchronize()
    weight_bytes = sum(t.numel() * 2 for t in read)
    host_bytes = None
    try:
        import common

        loc = common.PageLocator()
        host_bytes = 0
        for t in read:
            nb = t.numel() * 2
            for o in range(0, nb, PAGE):
                if loc.in_host(t.data_ptr() + o):
                    host_bytes += min(PAGE, nb - o)
    except Exception as e:  # noqa: BLE001
        log(f"no page locator: {e}")

    def rms(x, wt):
        return (x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-5)).to(bf) * wt

    def step(tok, pos):
        x = emb[tok].view(1, hidden)
        for i, lay in enumerate(L):
            h = rms(x, lay["n1"])
            q = F.linear(h, lay["wq"]).view(hl, 1, hd)
            kc[i, :, pos] = F.linear(h, lay["wk"]).view(kl, hd)
            vc[i, :, pos] = F.linear(h, lay["wv"]).view(kl, hd)
            k = kc[i, :, : pos + 1].repeat_interleave(hl // kl, 0)
            v = vc[i, :, : pos + 1].repeat_interleave(hl // kl, 0)
            att = F.scaled_dot_product_attention(q, k, v).view(1, hl * hd)
            o = F.linear(att, lay["wo"])
            dist.all_reduce(o)
            x = x + o
            h = rms(x, lay["n2"])
            d = F.linear(F.silu(F.linear(h, lay["wg"])) * F.linear(h, lay["wu"]), lay["wd"])
            dist.all_reduce(d)
            x = x + d
        logits = F.linear(rms(x, nf), head).float()
        parts = [torch.empty_like(logits) for _ in range(world)]
        dist.all_gather(parts, logits)
        return int(torch.cat(parts, -1).argmax().item())

    tok, pos = 1, a.pos
    for _ in range(2):  # warm-up
        tok = step(tok, pos)
        pos += 1
    times = []
    for _ in range(a.tokens):
        torch.cuda.synchronize()
        dist.barrier()
        t0 = time.perf_counter()
        tok = step(tok, pos)  # .item(): the step is done when it returns
        times.append(time.perf_counter() - t0)
        pos += 1
    times.sort()
    write(f"{a.out}.rank{rank}.json", {
        "ok": True, "rank": rank, "world": world, "layers": a.layers, "hidden": hidden, "intermediate": inter,
        "weight_bytes_read_per_token": weight_bytes, "host_bytes": host_bytes,
        "vram_bytes": None if host_bytes is None else weight_bytes - host_bytes,
        "total_weight_bytes_rank": weight_bytes + emb.numel() * 2, "h2d_bytes_per_s": h2d, "vram_read_bytes_per_s": hbm,
        "s_per_token": times, "s_per_token_median": times[len(times) // 2], "spill_stats": spill_stats()})
    dist.barrier()
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", choices=["peer-copy", "warm-host", "allreduce", "ddp", "tp"])
    p.add_argument("--out", required=True)
    p.add_argument("--gib", type=int, default=None)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--layers", type=int, default=24)
    p.add_argument("--hidden", type=int, default=8192)
    p.add_argument("--intermediate", type=int, default=28672)
    p.add_argument("--heads", type=int, default=64)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--pos", type=int, default=128)
    p.add_argument("--tokens", type=int, default=5)
    a = p.parse_args()
    defaults = {"peer-copy": 8, "warm-host": 64, "allreduce": 6}
    if a.gib is None:
        a.gib = defaults.get(a.what, 0)
    fn = {"peer-copy": peer_copy, "warm-host": warm_host, "allreduce": allreduce, "ddp": ddp, "tp": tp}[a.what]
    try:
        fn(a)
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)


if __name__ == "__main__":
    main()

"""lean_decoder.py: a lean Llama-like decoder in plain PyTorch (no Hugging Face) for measuring
placement: every weight is its own tensor, allocated on the GPU in load order (embedding, then
per layer q, k, v, o, gate, up, down and the two norms, then the final norm and lm_head) and
filled from a fixed-seed CUDA generator, so runs with and without spillover hold bit-identical
weights; the static KV cache and the static buffers come after the weights, as in a server.

Phases: prefill (one forward of --prefill-m tokens from position 0, filling the cache) and
decode (one token at position --decode-pos, or after the prefill). Modes: eager, or graph (one
decode step and one prefill step each captured with torch.cuda.graph on static buffers; the
decode step ends with the greedy argmax written back into its own input and the position
advanced, so replays generate tokens without the CPU). Timing: CUDA events, warm-up, then the
median of --reps repetitions (decode: --decode-tokens tokens each, reported per token).

Also: a sha256 of the final logits of a fixed sequence (prompt, then --seq-steps greedy steps)
for bitwise comparison between runs (graph mode replays the captured steps; --seq-eager true runs
the sequence eagerly too, as "sequence_eager"); when the interposer is loaded, its stats record before and
after the timed decode repetitions (pages moved per decode step after warm-up) and where the
pages of the weights, the KV cache and everything else the caching allocator holds live; the
stats record around the timed prefills too (host bytes, the streaming engine's counters) and the
prefill's logits sha256 (bench/stream/ compares the hand-written streaming baseline against it).

Mode reference: that fixed sequence's tokens and final logits sha256 WITHOUT holding the model,
for a model larger than the card: every forward (the prompt, then each greedy step) regenerates
the weights in load order from the same seeded generator, one at a time, and runs each layer as
soon as its weights exist, with the same layer code, shapes, KV cache and buffers as the eager
path, so its hash is the eager run's bit for bit. It holds one layer's weights, the embedding or
lm_head, the KV cache and the activations (a few GB for the ~169 GB model below), and pays one
regeneration of every weight per forward (1 + --seq-steps of them).
--device cpu runs eager and reference on the CPU (tests with a tiny model; no page sample).

  python3 bench/lean/lean_decoder.py --mode graph --out r.json           14.5 GB default model
  python3 bench/lean/lean_decoder.py --hidden 8192 --intermediate 28672 --heads 64 --layers 98 \
      --phases decode --mode graph --out big.json                          ~169 GB
  (the same flags with --mode reference: its sequence without spillover, in a few GB)
`--spec JSON` (keys named like the flags, dashes as underscores) is accepted too, so
bench/suite.py's run_workload can start it; the output is that protocol's JSON
({"metrics", "spill_stats", "vram_used_smi_mib", "env", "duration_s"})."""

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
import common  # noqa: E402  (bench/workloads/common.py: stats record reader, PageLocator, log)

PAGE = 2 << 20

DEFAULTS = {
    "hidden": 4096, "intermediate": 14336, "layers": 32, "heads": 32, "kv_heads": 8, "vocab": 32000,
    "mode": "graph", "phases": "prefill,decode", "prefill_m": 2048, "decode_pos": None,
    "decode_tokens": 4, "reps": 5, "warmup_reps": 2, "warmup_s": 3.0, "decode_budget_s": 30.0,
    "seq_prompt": None, "seq_steps": 8, "seed": 1234, "sample_pages": True, "seq_eager": False,
    "device": "cuda",
}
MODES = ("eager", "graph", "reference")
LAYER_KINDS = ("q", "k", "v", "o", "gate", "up", "down", "in_norm", "post_norm")  # one layer, load order


def weight_bytes_of(hidden, intermediate, layers, heads, kv_heads, vocab):
    """bf16 bytes of the model these flags build (the orchestrator sizes limits with it)."""
    hd = hidden // heads
    per_layer = hidden * heads * hd * 2 + hidden * kv_heads * hd * 2 + 3 * hidden * intermediate + 2 * hidden
    return 2 * (layers * per_layer + 2 * vocab * hidden + hidden)


def weight_plan(hidden, intermediate, layers, heads, kv_heads, vocab):
    """Every weight in load order: (name, shape, std of its normal fill, or None for a norm of
    ones). The build and the reference both walk it, so they draw the generator alike."""
    H, I, hd = hidden, intermediate, hidden // heads
    yield "embed", (vocab, H), 1.0
    shapes = {"q": (heads * hd, H), "k": (kv_heads * hd, H), "v": (kv_heads * hd, H), "o": (H, heads * hd),
              "gate": (I, H), "up": (I, H), "down": (H, I), "in_norm": (H,), "post_norm": (H,)}
    for i in range(layers):
        for kind in LAYER_KINDS:
            shape = shapes[kind]
            yield f"l{i}.{kind}", shape, (None if kind.endswith("norm") else 1.0 / math.sqrt(shape[-1]))
    yield "final_norm", (H,), None
    yield "lm_head", (vocab, H), 1.0 / math.sqrt(H)


def lengths(cfg):
    """(prefill tokens, decode position, sequence prompt, KV cache length) of these flags; the
    reference must size its cache and prompt exactly as the run it checks."""
    pm = int(cfg["prefill_m"]) if "prefill" in cfg["phases"] else 0
    dpos = cfg["decode_pos"] if cfg["decode_pos"] is not None else (pm if pm else 128)
    seq_prompt = int(cfg["seq_prompt"] or (pm if pm else 32))
    T = max(1, int(cfg["decode_tokens"]))
    need = max(pm, seq_prompt + int(cfg["seq_steps"]), dpos + T * 1) + 8
    return pm, dpos, seq_prompt, (need + 63) // 64 * 64


def parse():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for k, v in DEFAULTS.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            p.add_argument(flag, type=lambda s: s.lower() in ("1", "true", "yes"), default=None)
        elif v is None:
            p.add_argument(flag, type=int, default=None)
        else:
            p.add_argument(flag, type=type(v), default=None)
    p.add_argument("--spec", default=None, help="JSON object with the same keys (underscores)")
    p.add_argument("--out", required=True, help="where to write the result JSON")
    a = p.parse_args()
    cfg = dict(DEFAULTS)
    if a.spec:
        spec = json.loads(a.spec)
        unknown = sorted(set(spec) - set(DEFAULTS))
        if unknown:
            p.error(f"--spec has unknown keys {unknown}; known: {sorted(DEFAULTS)}")
        cfg.update(spec)
    for k in DEFAULTS:
        v = getattr(a, k)
        if v is not None:
            cfg[k] = v
    if cfg["mode"] not in MODES:
        p.error(f"--mode {cfg['mode']!r}: use eager, graph or reference")
    if cfg["device"] not in ("cuda", "cpu"):
        p.error(f"--device {cfg['device']!r}: use cuda or cpu")
    if cfg["device"] == "cpu" and cfg["mode"] == "graph":
        p.error("--mode graph needs --device cuda (CUDA graphs); use --mode eager or reference on the CPU")
    phases = [x for x in str(cfg["phases"]).split(",") if x]
    if not phases or any(x not in ("prefill", "decode") for x in phases):
        p.error(f"--phases {cfg['phases']!r}: use prefill, decode or prefill,decode")
    cfg["phases"] = phases
    if cfg["hidden"] % cfg["heads"] or cfg["heads"] % cfg["kv_heads"]:
        p.error("--hidden must be a multiple of --heads, and --heads a multiple of --kv-heads")
    return cfg, a.out


def _sdpa_math(q, k, v, attn_mask=None, is_causal=False):
    """scaled_dot_product_attention for torch < 2.0 (Debian's CPU torch, which the CPU tests use);
    torch 2.x, as on the GPU machine, has its own and this is never called there."""
    import torch

    s = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if is_causal:
        s = s.masked_fill(torch.ones(s.shape[-2], s.shape[-1], dtype=torch.bool, device=s.device).tril().logical_not(),
                          float("-inf"))
    if attn_mask is not None:
        s = s.masked_fill(attn_mask.logical_not(), float("-inf"))
    return (s.softmax(-1) @ v.float()).to(q.dtype)


class Lean:
    def __init__(self, torch, cfg, build=True):
        """The model of cfg; build=False makes only its shapes and layer code (the reference
        generates the weights itself, a layer at a time)."""
        self.t = torch
        F = torch.nn.functional
        self.F = F
        self.sdpa = getattr(F, "scaled_dot_product_attention", None) or _sdpa_math
        c = cfg
        self.cfg = cfg
        self.dev = c.get("device", "cuda")
        self.H, self.I, self.L = c["hidden"], c["intermediate"], c["layers"]
        self.nh, self.nkv, self.V = c["heads"], c["kv_heads"], c["vocab"]
        self.hd = self.H // self.nh
        self.rep = self.nh // self.nkv
        self.eps = 1e-5
        self.weights = []  # (name, tensor) in load order
        self.layers = [{} for _ in range(self.L)]
        self.weight_bytes = 0
        if not build:
            return
        g = self.generator()
        for name, shape, std in self.plan():
            t = self.new_weight(shape, std, g)
            self.weights.append((name, t))
            if name.startswith("l") and "." in name:
                i, kind = name[1:].split(".")
                self.layers[int(i)][kind] = t
            else:
                setattr(self, name, t)
        self.sync()
        self.weight_bytes = sum(t.numel() * t.element_size() for _, t in self.weights)

    def plan(self):
        return weight_plan(self.H, self.I, self.L, self.nh, self.nkv, self.V)

    def generator(self):
        """The weights' generator, seeded: every weight is drawn from it in load order."""
        g = self.t.Generator(device=self.dev)
        g.manual_seed(int(self.cfg["seed"]))
        return g

    def new_weight(self, shape, std, g):
        """One weight of weight_plan: a fresh tensor filled from g (or ones for a norm, no draw)."""
        torch = self.t
        if std is None:
            return torch.ones(*shape, dtype=torch.bfloat16, device=self.dev)
        t = torch.empty(*shape, dtype=torch.bfloat16, device=self.dev)
        t.normal_(0.0, std, generator=g)
        return t

    def sync(self):
        if self.dev == "cuda":
            self.t.cuda.synchronize()

    def alloc_state(self, max_seq, prefill_m):
        """The static KV cache and buffers, after the weights (as a server allocates them)."""
        torch = self.t
        S = max_seq
        self.S = S
        dev = self.dev
        self.kc = [torch.zeros(1, self.nkv, S, self.hd, dtype=torch.bfloat16, device=dev) for _ in range(self.L)]
        self.vc = [torch.zeros(1, self.nkv, S, self.hd, dtype=torch.bfloat16, device=dev) for _ in range(self.L)]
        self.kv_bytes = sum(t.numel() * 2 for t in self.kc + self.vc)
        inv = 1.0 / (10000.0 ** (torch.arange(0, self.hd, 2, device=dev, dtype=torch.float32) / self.hd))
        fr = torch.outer(torch.arange(S, device=dev, dtype=torch.float32), inv)
        emb = torch.cat([fr, fr], dim=-1)
        self.cos, self.sin = emb.cos(), emb.sin()
        self.ar = torch.arange(S, device=dev)
        self.tok = torch.zeros(1, 1, dtype=torch.long, device=dev)    # decode input (and next token)
        self.pos = torch.zeros(1, dtype=torch.long, device=dev)       # decode position
        self.logits = torch.zeros(1, self.V, dtype=torch.bfloat16, device=dev)
        self.pf_tok = torch.zeros(1, max(1, prefill_m), dtype=torch.long, device=dev)
        self.sync()

    def _rms(self, x, w):
        xf = x.float()
        xf = xf * self.t.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return xf.to(self.t.bfloat16) * w

    def _rope(self, x, cos, sin):
        h = self.hd // 2
        xf = x.float()
        rot = self.t.cat([-xf[..., h:], xf[..., :h]], dim=-1)
        return (xf * cos + rot * sin).to(self.t.bfloat16)

    def _mlp(self, h, ly):
        F = self.F
        return F.linear(F.silu(F.linear(h, ly["gate"])) * F.linear(h, ly["up"]), ly["down"])

    def _head(self, x_last, final_norm=None, lm_head=None):
        final_norm = self.final_norm if final_norm is None else final_norm
        lm_head = self.lm_head if lm_head is None else lm_head
        self.logits.copy_(self.F.linear(self._rms(x_last, final_norm), lm_head))
        self.tok.copy_(self.logits.argmax(-1).view(1, 1))

    def prefill_layer(self, x, i, ly):
        """Layer i of the prefill of x [M, H] with the weights in ly (this model's, or views of a
        staging buffer holding the same bytes: bench/stream/handwritten.py); fills cache i."""
        F = self.F
        M = x.shape[0]
        cos, sin = self.cos[:M], self.sin[:M]
        h = self._rms(x, ly["in_norm"])
        q = F.linear(h, ly["q"]).view(M, self.nh, self.hd).transpose(0, 1).unsqueeze(0)
        k = F.linear(h, ly["k"]).view(M, self.nkv, self.hd).transpose(0, 1).unsqueeze(0)
        v = F.linear(h, ly["v"]).view(M, self.nkv, self.hd).transpose(0, 1).unsqueeze(0)
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        self.kc[i][:, :, :M].copy_(k)
        self.vc[i][:, :, :M].copy_(v)
        o = self.sdpa(q, k.repeat_interleave(self.rep, dim=1), v.repeat_interleave(self.rep, dim=1), is_causal=True)
        x = x + F.linear(o[0].transpose(0, 1).reshape(M, self.nh * self.hd), ly["o"])
        return x + self._mlp(self._rms(x, ly["post_norm"]), ly)

    def prefill_start(self, ids, embed):
        return self.F.embedding(ids[0], embed)  # [M, H]

    def prefill_end(self, x, M, final_norm=None, lm_head=None):
        self._head(x[M - 1 : M], final_norm, lm_head)
        self.pos.fill_(M)

    def prefill(self, ids):
        """Positions 0..M-1 of ids [1, M]; fills the cache; leaves the next token and position."""
        M = ids.shape[1]
        x = self.prefill_start(ids, self.embed)
        for i, ly in enumerate(self.layers):
            x = self.prefill_layer(x, i, ly)
        self.prefill_end(x, M)

    def prefill_static(self):
        self.prefill(self.pf_tok)

    def decode_start(self, embed):
        """The step's input row and what every layer shares: (x [1, H], (cos, sin, mask))."""
        x = self.F.embedding(self.tok[0], embed)  # [1, H]
        cos, sin = self.cos.index_select(0, self.pos), self.sin.index_select(0, self.pos)  # [1, hd]
        mask = (self.ar <= self.pos).view(1, 1, 1, self.S)
        return x, (cos, sin, mask)

    def decode_layer(self, x, i, ly, at):
        """Layer i of one decode step with the weights in ly; writes cache i at self.pos."""
        F = self.F
        cos, sin, mask = at
        h = self._rms(x, ly["in_norm"])
        q = F.linear(h, ly["q"]).view(1, self.nh, 1, self.hd)
        k = F.linear(h, ly["k"]).view(1, self.nkv, 1, self.hd)
        v = F.linear(h, ly["v"]).view(1, self.nkv, 1, self.hd)
        q, k = self._rope(q, cos, sin), self._rope(k, cos, sin)
        self.kc[i].index_copy_(2, self.pos, k)
        self.vc[i].index_copy_(2, self.pos, v)
        # grouped-query attention without copying the cache: the query heads that share a
        # KV head become query rows of it (head j*rep + r uses KV head j, as repeat_interleave)
        o = self.sdpa(q.view(1, self.nkv, self.rep, self.hd), self.kc[i], self.vc[i], attn_mask=mask)
        x = x + F.linear(o.reshape(1, self.nh * self.hd), ly["o"])
        return x + self._mlp(self._rms(x, ly["post_norm"]), ly)

    def decode_end(self, x, final_norm=None, lm_head=None):
        self._head(x, final_norm, lm_head)
        self.pos.add_(1)

    def decode_step(self):
        """One token: reads self.tok at self.pos, writes logits, the argmax into self.tok, pos + 1.
        Only device tensors change between steps, so the same step is captured once as a graph."""
        x, at = self.decode_start(self.embed)
        for i, ly in enumerate(self.layers):
            x = self.decode_layer(x, i, ly, at)
        self.decode_end(x)

    def streamed(self, start, layer, end):
        """One forward without holding the model (the reference): regenerates every weight in
        load order from a freshly seeded generator, exactly as the build draws them, and hands
        them on as they come: start(embed) -> x, layer(x, i, weights of layer i) -> x once a
        layer is complete, end(x, final_norm, lm_head). Returns the bytes generated."""
        g = self.generator()
        x, ly, final_norm, nbytes = None, {}, None, 0
        for name, shape, std in self.plan():
            t = self.new_weight(shape, std, g)
            nbytes += t.numel() * t.element_size()
            if name == "embed":
                x = start(t)
            elif name == "final_norm":
                final_norm = t
            elif name == "lm_head":
                end(x, final_norm, t)
            else:
                i, kind = name[1:].split(".")
                ly[kind] = t
                if len(ly) == len(LAYER_KINDS):
                    x = layer(x, int(i), ly)
                    ly = {}
            del t
        return nbytes


def capture(torch, fn, warm=2):
    """A CUDA graph of fn, warmed up on a side stream first (the PyTorch docs' recipe)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warm):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    torch.cuda.synchronize()
    return g


def ev_time(torch, fn, dev="cuda"):
    if dev != "cuda":
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    a.record()
    fn()
    b.record()
    b.synchronize()
    return a.elapsed_time(b) / 1000.0


def spread(ts):
    s = sorted(ts)
    n = len(s)
    med = s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    return {"median": med, "min": s[0], "max": s[-1], "all": [round(x, 6) for x in ts]}


def page_sample(torch, m):
    """Where every 2 MiB page of the weights, the KV cache and the rest of the caching allocator's
    segments (activations, graph pools, workspaces) lives, by the driver's own answer."""
    try:
        loc = common.PageLocator()
    except (OSError, AttributeError) as e:
        return {"error": f"no page locator: {e}"}
    where = {}

    def located(start, nbytes):
        host = 0
        at, end = start, start + nbytes
        while at < end:
            base = at - at % PAGE
            if base not in where:
                where[base] = loc.in_host(base)
            n = min(end, base + PAGE) - at
            if where[base]:
                host += n
            at += n
        return host

    out = {"weights": {"bytes": 0, "host_bytes": 0}, "kv": {"bytes": 0, "host_bytes": 0},
           "by_kind": {}}
    ranges = []
    for name, t in m.weights:
        nb = t.numel() * t.element_size()
        hb = located(t.data_ptr(), nb)
        out["weights"]["bytes"] += nb
        out["weights"]["host_bytes"] += hb
        kind = name.split(".")[-1] if "." in name else name
        k = out["by_kind"].setdefault(kind, {"bytes": 0, "host_bytes": 0})
        k["bytes"] += nb
        k["host_bytes"] += hb
        ranges.append((t.data_ptr(), t.data_ptr() + nb))
    for t in m.kc + m.vc:
        nb = t.numel() * t.element_size()
        out["kv"]["bytes"] += nb
        out["kv"]["host_bytes"] += located(t.data_ptr(), nb)
        ranges.append((t.data_ptr(), t.data_ptr() + nb))
    # everything else in the allocator's segments: activations, graph pools, cuBLAS workspaces
    other = {"bytes": 0, "host_bytes": 0, "segments": 0}
    try:
        ranges.sort()
        for seg in torch.cuda.memory_snapshot():
            a0, size = int(seg.get("address", 0)), int(seg.get("total_size", 0))
            if not size:
                continue
            if any(r0 < a0 + size and a0 < r1 for r0, r1 in ranges):
                continue  # a segment holding weights or cache (counted above)
            other["segments"] += 1
            other["bytes"] += size
            other["host_bytes"] += located(a0, size)
    except Exception as e:
        other["error"] = str(e)
    out["other_segments"] = other
    out["pages_asked"] = len(where)
    return out


def safe_sample(torch, m):
    """page_sample, or {"error"} (a failure here must not lose the measurements)."""
    t = time.perf_counter()
    try:
        pg = page_sample(torch, m)
    except Exception as e:
        pg = {"error": f"{type(e).__name__}: {e}"}
    pg["seconds"] = round(time.perf_counter() - t, 2)
    if "weights" in pg:
        common.log(f"page sample ({pg['seconds']} s): weights host {pg['weights']['host_bytes'] / 1e9:.2f} "
                   f"of {pg['weights']['bytes'] / 1e9:.2f} GB, kv host {pg['kv']['host_bytes'] / 1e6:.0f} "
                   f"of {pg['kv']['bytes'] / 1e6:.0f} MB, other host {pg['other_segments']['host_bytes'] / 1e6:.0f} "
                   f"of {pg['other_segments']['bytes'] / 1e6:.0f} MB")
    else:
        common.log(f"page sample: {pg.get('error')}")
    return pg


def decode_read_bytes(m, pos, sample):
    """Bytes one decode step at position pos must read, split by tier from the page sample:
    every weight but the embedding (one row), and the KV cache up to pos."""
    if not sample or "weights" not in sample:
        return None
    emb = sample["by_kind"].get("embed", {"bytes": 0, "host_bytes": 0})
    w_b = sample["weights"]["bytes"] - emb["bytes"]
    w_h = sample["weights"]["host_bytes"] - emb["host_bytes"]
    kv_frac = min(1.0, (pos + 1) / m.S)
    kv_b = sample["kv"]["bytes"] * kv_frac
    kv_h = sample["kv"]["host_bytes"] * kv_frac
    return {"host_bytes": int(w_h + kv_h), "vram_bytes": int(w_b - w_h + kv_b - kv_h)}


def stats_now(torch, dev):
    """The interposer's stats record (None on the CPU, where there is none)."""
    return common.stats_now(torch) if dev == "cuda" else None


def prompt_of(torch, cfg, V):
    """The fixed prompt tokens on the CPU (the same draws in every mode)."""
    pm, _, seq_prompt, _ = lengths(cfg)
    gen = torch.Generator().manual_seed(int(cfg["seed"]) + 1)
    return torch.randint(3, V, (1, max(pm, seq_prompt)), generator=gen)


def fixed_sequence(m, prompt_cpu, L, steps, prefill, step):
    """The sequence every mode hashes: the cache zeroed, prefill(prompt[:L]), then `steps` greedy
    steps; the tokens fed to each step and the sha256 of the last step's logits (as float32)."""
    for c in m.kc + m.vc:
        c.zero_()
    prefill(prompt_cpu[:, :L].to(m.dev))
    toks = []
    for _ in range(steps):
        toks.append(m.tok.clone())
        step()
    m.sync()
    logits = m.logits.float().cpu().numpy().tobytes()
    return {"prompt_tokens": L, "steps": steps, "tokens": [int(t.item()) for t in toks],
            "final_logits_sha256": hashlib.sha256(logits).hexdigest()}


def reference(cfg):
    """--mode reference: the fixed sequence of run(cfg) without ever holding the model (see the
    module's doc): each forward regenerates the weights (Lean.streamed) and runs every layer with
    the eager path's own code (prefill_layer, decode_layer) on the same cache and buffers."""
    import torch

    pm, _, seq_prompt, max_seq = lengths(cfg)
    steps = int(cfg["seq_steps"])
    m = Lean(torch, cfg, build=False)
    wb = weight_bytes_of(cfg["hidden"], cfg["intermediate"], cfg["layers"], cfg["heads"], cfg["kv_heads"], cfg["vocab"])
    common.log(f"lean decoder reference: {cfg['layers']} layers, {wb / 1e9:.2f} GB of weights regenerated "
               f"{1 + steps} times (prompt {seq_prompt} tokens, {steps} steps), max_seq {max_seq}, device {m.dev}")
    m.alloc_state(max_seq, pm if pm else seq_prompt)
    prompt_cpu = prompt_of(torch, cfg, m.V)
    generated = []

    def prefill(ids):
        M = ids.shape[1]
        generated.append(m.streamed(lambda embed: m.prefill_start(ids, embed), m.prefill_layer,
                                    lambda x, fn, lm: m.prefill_end(x, M, fn, lm)))

    def step():
        at = []

        def start(embed):
            x, a = m.decode_start(embed)
            at.append(a)
            return x

        generated.append(m.streamed(start, lambda x, i, ly: m.decode_layer(x, i, ly, at[0]), m.decode_end))

    t0 = time.perf_counter()
    with torch.no_grad():
        seq = fixed_sequence(m, prompt_cpu, seq_prompt, steps, prefill, step)
    secs = time.perf_counter() - t0
    seq["graph_steps"] = False
    out = {"config": {k: (v if not isinstance(v, list) else ",".join(v)) for k, v in cfg.items()},
           "mode_effective": "reference", "weight_bytes": wb, "kv_bytes": m.kv_bytes, "max_seq": max_seq,
           "sequence": seq,
           "reference": {"forwards": len(generated), "generated_bytes": sum(generated), "seconds": round(secs, 3),
                         "generated_gb_per_s": round(sum(generated) / secs / 1e9, 2) if secs > 0 else None}}
    if sum(generated) != len(generated) * wb:
        raise RuntimeError(f"the reference generated {sum(generated)} bytes in {len(generated)} forwards; "
                           f"the model has {wb}: its load order is not the build's")
    if m.dev == "cuda":
        out["reference"]["peak_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
        out["torch_max_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
        free, total = torch.cuda.mem_get_info()
        out["reported_vram_total_bytes"] = int(total)
    out["torch_version"] = torch.__version__
    common.log(f"reference sequence: tokens {seq['tokens']}, logits sha256 {seq['final_logits_sha256'][:16]}; "
               f"{len(generated)} forwards, {sum(generated) / 1e9:.1f} GB generated in {secs:.1f} s"
               + (f", peak allocated {out['reference']['peak_allocated_bytes'] / 1e9:.2f} GB" if m.dev == "cuda" else ""))
    return out


def run(cfg):
    import torch

    if cfg["mode"] == "reference":
        return reference(cfg)
    m_out = {"config": {k: (v if not isinstance(v, list) else ",".join(v)) for k, v in cfg.items()}}
    mode = cfg["mode"]
    phases = cfg["phases"]
    dev = cfg["device"]
    pm, dpos, seq_prompt, max_seq = lengths(cfg)
    T = max(1, int(cfg["decode_tokens"]))
    R = max(1, int(cfg["reps"]))
    sample_pages = cfg["sample_pages"] and dev == "cuda"
    common.log(f"lean decoder: {cfg['layers']} layers, hidden {cfg['hidden']}, intermediate {cfg['intermediate']}, "
               f"mode {mode}, phases {phases}, max_seq {max_seq}, predicted weights "
               f"{weight_bytes_of(cfg['hidden'], cfg['intermediate'], cfg['layers'], cfg['heads'], cfg['kv_heads'], cfg['vocab']) / 1e9:.2f} GB")
    st0 = stats_now(torch, dev)
    t0 = time.perf_counter()
    m = Lean(torch, cfg)
    m_out["build_s"] = round(time.perf_counter() - t0, 3)
    m_out["weight_bytes"] = m.weight_bytes
    common.log(f"weights built: {m.weight_bytes / 1e9:.2f} GB in {m_out['build_s']} s")
    m.alloc_state(max_seq, pm if pm else seq_prompt)
    m_out["kv_bytes"] = m.kv_bytes
    m_out["max_seq"] = max_seq
    m_out["stats_after_build"] = stats_now(torch, dev)
    m_out["stats_at_start"] = st0
    prompt_cpu = prompt_of(torch, cfg, m.V)
    m.pf_tok.copy_(prompt_cpu[:, : m.pf_tok.shape[1]].to(dev))
    eff_mode = mode
    graphs = {}
    with torch.no_grad():
        if mode == "graph":
            for ph, fn in (("prefill", m.prefill_static), ("decode", m.decode_step)):
                if ph not in phases:
                    continue
                try:
                    if ph == "decode":
                        m.pos.fill_(dpos)
                    t = time.perf_counter()
                    graphs[ph] = capture(torch, fn)
                    m_out[f"capture_{ph}_s"] = round(time.perf_counter() - t, 3)
                    common.log(f"captured {ph} graph in {m_out[f'capture_{ph}_s']} s")
                except Exception as e:
                    m_out[f"capture_{ph}_error"] = f"{type(e).__name__}: {e}"[:2000]
                    common.log(f"graph capture of {ph} FAILED, eager instead: {e}")
                    eff_mode = "eager (capture failed)"
                    try:
                        torch.cuda.synchronize()
                    except Exception:
                        pass
        run_prefill = (lambda: graphs["prefill"].replay()) if "prefill" in graphs else m.prefill_static
        run_step = (lambda: graphs["decode"].replay()) if "decode" in graphs else m.decode_step
        m_out["mode_effective"] = eff_mode if (mode == "eager" or graphs) else "eager (capture failed)"
        m_out["graphs"] = sorted(graphs)

        if "prefill" in phases:
            ts = []
            warm_s = ev_time(torch, run_prefill, dev)  # warm-up
            st_pa = stats_now(torch, dev)
            for _ in range(R):
                ts.append(ev_time(torch, run_prefill, dev))
            st_pb = stats_now(torch, dev)
            sp = spread(ts)
            # every repetition computes the same logits from the same prompt: their bits are the
            # prefill's output (bench/stream/handwritten.py compares its own against them)
            pf_sha = hashlib.sha256(m.logits.float().cpu().numpy().tobytes()).hexdigest()
            m_out["prefill"] = {"tokens": pm, "seconds": sp, "tokens_per_s": round(pm / sp["median"], 2),
                                "warmup_s": round(warm_s, 6), "logits_sha256": pf_sha,
                                "stream": common.stream_delta(st_pa, st_pb)}
            m_out["stats_before_prefill"] = st_pa
            m_out["stats_after_prefill"] = st_pb
            common.log(f"prefill {pm}: median {sp['median'] * 1e3:.1f} ms (min {sp['min'] * 1e3:.1f}, "
                       f"max {sp['max'] * 1e3:.1f}), {pm / sp['median']:.0f} tok/s")

        if "decode" in phases:
            def rep(n):
                m.pos.fill_(dpos)
                m.tok.fill_(7)
                return ev_time(torch, lambda: [run_step() for _ in range(n)], dev)

            st_w0 = stats_now(torch, dev)
            warm = []
            tw = time.perf_counter()
            while len(warm) < int(cfg["warmup_reps"]) or (time.perf_counter() - tw < float(cfg["warmup_s"]) and len(warm) < 50):
                warm.append(rep(T) / T)
                # slow steps (big offloads): fewer tokens per repetition so the budget holds
                per = min(warm)
                if per * T * (R + 1) > float(cfg["decode_budget_s"]) and T > 1:
                    T = max(1, int(float(cfg["decode_budget_s"]) / (per * (R + 1))))
                if len(warm) >= int(cfg["warmup_reps"]) and sum(warm) * T > float(cfg["decode_budget_s"]):
                    break
            st_a = stats_now(torch, dev)
            ts = [rep(T) / T for _ in range(R)]
            st_b = stats_now(torch, dev)
            sp = spread(ts)
            d = {"position": dpos, "tokens_per_rep": T, "reps": R, "ms_per_token": {
                k: (round(v * 1e3, 4) if k != "all" else [round(x * 1e3, 4) for x in v]) for k, v in sp.items()},
                "warmup_ms_per_token": [round(x * 1e3, 4) for x in warm], "warmup_s": round(time.perf_counter() - tw, 3)}
            d["stream"] = common.stream_delta(st_a, st_b)
            if st_a and st_b:
                moved = st_b["migrations"] - st_a["migrations"]
                d["migrations_warmup"] = st_a["migrations"] - (st_w0 or st_a)["migrations"]
                d["migrations_timed"] = moved
                d["pages_moved_per_step"] = moved / (R * T)
            m_out["decode"] = d
            m_out["stats_before_decode"] = st_a
            m_out["stats_after_decode"] = st_b
            common.log(f"decode at {dpos}: median {d['ms_per_token']['median']} ms/token "
                       f"(min {d['ms_per_token']['min']}, max {d['ms_per_token']['max']}; {R} reps x {T} tokens), "
                       f"pages moved per step {d.get('pages_moved_per_step')}")

            if sample_pages:
                # where the pages are right after the timed decode: the bytes one step reads, by tier
                m_out["pages_after_decode"] = safe_sample(torch, m)
                m_out["decode_read"] = decode_read_bytes(m, dpos, m_out["pages_after_decode"])

        # the fixed sequence: the prompt, then greedy steps; its final logits are compared bitwise
        # (the prompt replays the prefill graph when it is that graph's input)
        def seq_prefill(ids):
            if "prefill" in graphs and ids.shape[1] == m.pf_tok.shape[1]:
                graphs["prefill"].replay()
            else:
                m.prefill(ids)

        steps = int(cfg["seq_steps"])
        m_out["sequence"] = dict(fixed_sequence(m, prompt_cpu, seq_prompt, steps, seq_prefill, run_step),
                                 graph_steps="decode" in graphs)
        common.log(f"sequence: tokens {m_out['sequence']['tokens']}, logits sha256 "
                   f"{m_out['sequence']['final_logits_sha256'][:16]}")
        if cfg["seq_eager"] and graphs:
            # the same sequence through the eager path, which is what --mode reference computes
            t = time.perf_counter()
            m_out["sequence_eager"] = dict(fixed_sequence(m, prompt_cpu, seq_prompt, steps, m.prefill, m.decode_step),
                                           graph_steps=False, seconds=round(time.perf_counter() - t, 3))
            common.log(f"sequence (eager): tokens {m_out['sequence_eager']['tokens']}, logits sha256 "
                       f"{m_out['sequence_eager']['final_logits_sha256'][:16]} in {m_out['sequence_eager']['seconds']} s")

    if sample_pages:
        m_out["pages"] = safe_sample(torch, m)
        if "decode_read" not in m_out and "decode" in phases:
            m_out["decode_read"] = decode_read_bytes(m, dpos, m_out["pages"])
    if dev == "cuda":
        free, total = torch.cuda.mem_get_info()
        m_out["reported_vram_total_bytes"] = int(total)
        m_out["reported_vram_free_bytes"] = int(free)
        m_out["torch_max_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
    m_out["torch_version"] = torch.__version__
    return m_out


def main():
    cfg, out = parse()
    t0 = time.time()
    try:
        metrics = run(cfg)
    except BaseException:
        traceback.print_exc()
        sys.stdout.flush()
        sys.exit(1)
    result = {"metrics": metrics, "spill_stats": common.read_stats(), "vram_used_smi_mib": common.nvidia_smi_process_mib(),
              "env": common.spill_env_summary(), "duration_s": round(time.time() - t0, 3)}
    with open(out, "w") as f:
        json.dump(result, f)
    common.log(f"done in {result['duration_s']} s")


if __name__ == "__main__":
    main()

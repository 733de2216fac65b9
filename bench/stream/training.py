"""training.py: AdamW training steps of a ~1.1B-parameter fp32 Llama (Hugging Face
LlamaForCausalLM built from a config, TinyLlama's shapes by default, random init from a fixed seed
on the GPU), for issue 10's stream.training proof. The same program runs without spillover (its
peak sets the limit of the run under spillover) and under it.

Every step: forward on a fixed random batch, cross-entropy loss on the next tokens, backward,
AdamW step, zero_grad. warmup steps first, then `steps` timed with CUDA events (median, min, max,
all). Outputs compared bitwise between runs: the sha256 of every step's loss (fp32 bits) and an
exact checksum of every parameter's bits after the last step (llm.py's weight_checksum, on the
GPU). Attention is HF's eager implementation and deterministic algorithms are asked for (warn
only), so the program repeats itself bit for bit.
From the interposer's stats record (None without it), before and after the timed steps: the host
bytes and the streaming engine's counters.

  python3 bench/stream/training.py --spec '{"steps": 5}' --out r.json
Output: bench/suite.py's workload protocol; metrics.peak_bytes is torch's peak reserved memory."""

import hashlib
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the working tree (it is copied to the GPU machine)
BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(BENCH, "workloads"))
import common  # noqa: E402  (the workload protocol, the stats record)
from llm import weight_checksum  # noqa: E402  (an exact checksum of every parameter, on the GPU)

DEFAULTS = {"hidden": 2048, "intermediate": 5632, "layers": 22, "heads": 32, "kv_heads": 4, "vocab": 32000,
            "batch": 2, "seq": 512, "warmup": 2, "steps": 5, "lr": 1e-4, "seed": 1234}


def config(spec):
    unknown = sorted(set(spec) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"training.py: unknown spec keys {unknown}; known: {sorted(DEFAULTS)}")
    return dict(DEFAULTS, **spec)


def params_of(c):
    """Parameters of the model these keys build (no biases, untied embeddings)."""
    hd = c["hidden"] // c["heads"]
    attn = 2 * c["hidden"] * c["heads"] * hd + 2 * c["hidden"] * c["kv_heads"] * hd
    per_layer = attn + 3 * c["hidden"] * c["intermediate"] + 2 * c["hidden"]
    return c["layers"] * per_layer + 2 * c["vocab"] * c["hidden"] + c["hidden"]


def host_bytes(st):
    """Bytes of the program's memory in host pages per the stats record (tiered + its own VMM)."""
    return None if not st else st.get("tier_pinned_bytes", 0) + st.get("program_vmm_host_bytes", 0)


def main(spec):
    import torch
    import transformers

    c = config(spec)
    torch.manual_seed(int(c["seed"]))
    torch.use_deterministic_algorithms(True, warn_only=True)
    kw = dict(hidden_size=c["hidden"], intermediate_size=c["intermediate"], num_hidden_layers=c["layers"],
              num_attention_heads=c["heads"], num_key_value_heads=c["kv_heads"], vocab_size=c["vocab"],
              max_position_embeddings=max(2048, c["seq"]), tie_word_embeddings=False, rms_norm_eps=1e-5,
              initializer_range=0.02, use_cache=False)
    # eager attention: SDPA's memory-efficient backward is not deterministic
    try:
        cfg = transformers.LlamaConfig(**kw, attn_implementation="eager")
    except TypeError:
        cfg = transformers.LlamaConfig(**kw)
        cfg._attn_implementation = "eager"
    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = transformers.LlamaForCausalLM(cfg)
    model = model.float().train()
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    n_params = sum(p.numel() for p in model.parameters())
    common.log(f"built a {n_params / 1e9:.3f}B-parameter fp32 Llama in {build_s:.1f} s")
    opt = torch.optim.AdamW(model.parameters(), lr=float(c["lr"]), weight_decay=0.01)
    g = torch.Generator(device="cuda").manual_seed(int(c["seed"]) + 1)
    ids = torch.randint(3, c["vocab"], (int(c["batch"]), int(c["seq"]) + 1), device="cuda", generator=g)
    x, y = ids[:, :-1].contiguous(), ids[:, 1:].contiguous()
    losses = []

    def step():
        out = model(input_ids=x, use_cache=False)
        loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, out.logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())

    warm = []
    for _ in range(int(c["warmup"])):
        t = time.perf_counter()
        step()
        torch.cuda.synchronize()
        warm.append(round(time.perf_counter() - t, 4))
    st_a = common.stats_now(torch)
    ts = []
    for _ in range(int(c["steps"])):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        step()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b) / 1000.0)
    st_b = common.stats_now(torch)
    s = sorted(ts)
    med = s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2
    loss_bits = torch.stack(losses).float().cpu().numpy().tobytes()
    params = list(model.parameters())
    out = {
        "config": c, "params": n_params, "param_bytes": sum(p.numel() * p.element_size() for p in params),
        "build_s": round(build_s, 2), "warmup_step_s": warm,
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "step_s": {"median": med, "min": s[0], "max": s[-1], "all": [round(v, 6) for v in ts]},
        "losses": [float(v) for v in torch.stack(losses).cpu()],
        "losses_sha256": hashlib.sha256(loss_bits).hexdigest(),
        "params_checksum": weight_checksum(torch, model),
        "peak_bytes": int(torch.cuda.max_memory_reserved()),
        "max_allocated_bytes": int(torch.cuda.max_memory_allocated()),
        "stats_before_steps": st_a, "stats_after_steps": st_b,
        "host_bytes_before": host_bytes(st_a), "host_bytes_after": host_bytes(st_b),
        "stream": common.stream_delta(st_a, st_b),
    }
    out["hash"] = hashlib.sha256((out["losses_sha256"] + out["params_checksum"]).encode()).hexdigest()
    common.log(f"step median {med:.4f} s (min {s[0]:.4f}, max {s[-1]:.4f}; warm-up {warm}), losses "
                f"{[round(v, 4) for v in out['losses']]}, peak reserved {out['peak_bytes'] / 1e9:.2f} GB, "
                f"host bytes {out['host_bytes_after']}")
    return out


if __name__ == "__main__":
    common.run_main(main)

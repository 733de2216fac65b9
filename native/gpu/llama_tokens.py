#!/usr/bin/env python3
"""llama_tokens.py: issue 2 item 8b. Builds a random-initialised Llama-architecture model (bf16,
about 7 GB of weights) directly on the GPU with a fixed seed, generates 64 tokens greedily from a
fixed prompt, and writes tokens, a weight checksum, timings and spillover's tier statistics to a
JSON file. prove.sh runs it once without spillover (the reference) and then under LD_PRELOAD
with a VRAM limit below the model size for each PyTorch allocator configuration; the tokens must
be identical.

  python3 llama_tokens.py --out run.json [--ref reference.json] [--label NAME]
  python3 llama_tokens.py --model-bytes      # prints the weight bytes; imports nothing heavy
  python3 llama_tokens.py --rehearse --out x.json   # tiny model on the CPU, to test the script itself
"""

import argparse
import json
import os
import struct
import sys
import time

HIDDEN = 4096
LAYERS = 16
INTERMEDIATE = 11008
VOCAB = 32000
HEADS = 32
SEED = 1234
PROMPT_LEN = 32
NEW_TOKENS = 64


def use_tiny_model() -> None:
    """--rehearse: a model small enough for a CPU, same code path."""
    global HIDDEN, LAYERS, INTERMEDIATE, VOCAB, HEADS
    HIDDEN, LAYERS, INTERMEDIATE, VOCAB, HEADS = 64, 2, 128, 1000, 4


def model_bytes() -> int:
    """bf16 weight bytes of the model below (untied embeddings, no biases)."""
    per_layer = 4 * HIDDEN * HIDDEN + 3 * HIDDEN * INTERMEDIATE + 2 * HIDDEN
    params = 2 * VOCAB * HIDDEN + LAYERS * per_layer + HIDDEN
    return 2 * params


def prompt_ids() -> list[int]:
    # Fixed, tokenizer-free prompt: a deterministic spread over the vocabulary.
    return [(17 + 7919 * i) % VOCAB for i in range(PROMPT_LEN)]


def read_spillover_stats() -> dict | None:
    """The interposer's stats record (native/include/spillover_protocol.h) for this process."""
    path = os.path.join(
        os.environ.get("SPILLOVER_STATS_DIR") or "/dev/shm",
        f"spillover-{os.getuid()}-{os.getpid()}.stats",
    )
    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
    except OSError:
        return None
    if len(raw) < 4096:
        return None
    magic, version = struct.unpack_from("<QI", raw, 0)
    if magic != 0x3153544154535053 or version != 1:
        return None
    mode = struct.unpack_from("<I", raw, 48)[0]
    pinned = struct.unpack_from("<5Q", raw, 64)
    counters = struct.unpack_from("<12Q", raw, 144)
    gpu = struct.unpack_from("<15Q", raw, 528)  # gpu[0], the fields before reserved[3]
    return {
        "path": path,
        "mode": {0: "passthrough", 1: "standalone", 2: "broker"}.get(mode, str(mode)),
        "pinned_limit": pinned[0],
        "pinned_pool_bytes": pinned[2],
        "pinned_used_bytes": pinned[3],
        "pinned_peak_bytes": pinned[4],
        "alloc_calls": counters[0],
        "tiered_allocs": counters[2],
        "passthrough_allocs": counters[3],
        "oom_returned": counters[4],
        "pages_vram": counters[5],
        "pages_pinned": counters[6],
        "vram_physical": gpu[0],
        "vram_limit": gpu[1],
        "vram_reserve": gpu[2],
        "tier_bytes": {"vram": gpu[3], "pinned": gpu[4], "swap": gpu[5]},
        "tier_peak": {"vram": gpu[6], "pinned": gpu[7], "swap": gpu[8]},
        "passthrough_bytes": gpu[9],
        "program_vmm_bytes": gpu[11],
        "program_vmm_host_bytes": gpu[12],
        "reported_total": gpu[13],
    }


def sync(torch, device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def build_model(torch, transformers, device: str):
    config = transformers.LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=2048,
        tie_word_embeddings=False,
    )
    torch.manual_seed(SEED)
    if device == "cuda":
        torch.cuda.manual_seed_all(SEED)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        # Parameters are created and initialised on the GPU from the seeded CUDA generator: the
        # same weights in every process, and no host copy that would hide where memory lives.
        with torch.device(device):
            model = transformers.LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    return model.eval()


def checksum(torch, model) -> dict:
    total = 0.0
    for p in model.parameters():
        total += torch.sum(p, dtype=torch.float64).item()
    sd = model.state_dict()
    probe = {
        "embed[0,:4]": [float(x) for x in sd["model.embed_tokens.weight"][0, :4].float().tolist()],
        "layer0.q_proj[0,:4]": [
            float(x) for x in sd["model.layers.0.self_attn.q_proj.weight"][0, :4].float().tolist()
        ],
        "lm_head[-1,-4:]": [float(x) for x in sd["lm_head.weight"][-1, -4:].float().tolist()],
    }
    return {"sum_f64": total, "probe": probe, "params": sum(p.numel() for p in model.parameters())}


def generate(torch, model, device: str) -> tuple[list[int], float, float]:
    """Greedy decoding with the KV cache, by hand so that an early EOS cannot stop it."""
    ids = torch.tensor([prompt_ids()], device=device)
    with torch.inference_mode():
        sync(torch, device)
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        past = out.past_key_values
        nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
        tokens = [int(nxt.item())]
        sync(torch, device)
        t1 = time.perf_counter()
        for _ in range(NEW_TOKENS - 1):
            out = model(input_ids=nxt, past_key_values=past, use_cache=True)
            past = out.past_key_values
            nxt = out.logits[:, -1, :].argmax(dim=-1, keepdim=True)
            tokens.append(int(nxt.item()))
        sync(torch, device)
        t2 = time.perf_counter()
    return tokens, (t1 - t0) * 1e3, (t2 - t1) * 1e3


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", help="write the result JSON here")
    ap.add_argument("--ref", help="reference result JSON to compare tokens and checksum with")
    ap.add_argument("--label", default="run")
    ap.add_argument("--model-bytes", action="store_true", help="print the model's weight bytes and exit")
    ap.add_argument("--rehearse", action="store_true", help="tiny model on the CPU (tests this script)")
    args = ap.parse_args()
    if args.rehearse:
        use_tiny_model()
    device = "cpu" if args.rehearse else "cuda"
    if args.model_bytes:
        print(model_bytes())
        return 0
    if not args.out:
        ap.error("--out is required")

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    t_start = time.perf_counter()
    import torch
    import transformers

    if device == "cuda" and not torch.cuda.is_available():
        print("llama_tokens: no CUDA device visible to PyTorch", file=sys.stderr)
        return 1
    free_b, total_b = torch.cuda.mem_get_info() if device == "cuda" else (0, 0)
    t0 = time.perf_counter()
    model = build_model(torch, transformers, device)
    sync(torch, device)
    build_s = time.perf_counter() - t0
    sums = checksum(torch, model)
    tokens, prefill_ms, decode_ms = generate(torch, model, device)
    stats = read_spillover_stats()
    result = {
        "label": args.label,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (rehearsal)",
        "alloc_conf": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
        "spillover_vram_limit": os.environ.get("SPILLOVER_VRAM_LIMIT"),
        "preloaded": "libspillover" in os.environ.get("LD_PRELOAD", ""),
        "model_bytes": model_bytes(),
        "mem_get_info_at_start": {"free": free_b, "total": total_b},
        "max_memory_allocated": torch.cuda.max_memory_allocated() if device == "cuda" else None,
        "build_seconds": build_s,
        "checksum": sums,
        "prompt": prompt_ids(),
        "tokens": tokens,
        "prefill_ms": prefill_ms,
        "decode_ms": decode_ms,
        "decode_tokens_per_s": (NEW_TOKENS - 1) / (decode_ms / 1e3) if decode_ms > 0 else None,
        "spillover_stats": stats,
        "wall_seconds": time.perf_counter() - t_start,
    }
    ok = True
    if args.ref:
        with open(args.ref) as f:
            ref = json.load(f)
        same_tokens = ref["tokens"] == tokens
        same_weights = ref["checksum"] == sums
        first_diff = next((i for i, (a, b) in enumerate(zip(ref["tokens"], tokens)) if a != b), None)
        spilled = bool(
            stats
            and (
                stats["tier_peak"]["pinned"] > 0
                or stats["program_vmm_host_bytes"] > 0
                or stats["pages_pinned"] > 0
            )
        )
        result["compare"] = {
            "same_tokens": same_tokens,
            "same_weights_checksum": same_weights,
            "first_differing_token": first_diff,
            "spilled_to_host": spilled,
            "decode_slowdown_vs_ref": decode_ms / ref["decode_ms"] if ref.get("decode_ms") else None,
        }
        ok = same_tokens and same_weights and spilled
    result["ok"] = ok
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(
        f"{args.label}: tokens {tokens[:8]}... checksum {sums['sum_f64']:.6e} "
        f"prefill {prefill_ms:.1f} ms decode {decode_ms:.1f} ms"
    )
    if stats:
        print(
            f"{args.label}: spillover {stats['mode']}: VRAM limit {stats['vram_limit'] / 2**30:.2f} GiB, "
            f"peak pinned {stats['tier_peak']['pinned'] / 2**30:.2f} GiB, "
            f"program VMM host {stats['program_vmm_host_bytes'] / 2**30:.2f} GiB"
        )
    if args.ref:
        c = result["compare"]
        verdict = "PASS" if ok else "FAIL"
        print(
            f"{verdict} {args.label}: same tokens {c['same_tokens']}, same weights {c['same_weights_checksum']}, "
            f"spilled to host {c['spilled_to_host']}"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

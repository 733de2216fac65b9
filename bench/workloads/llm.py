"""One LLM measurement in one process: builds a randomly initialised Llama or Mixtral-style model
in bf16 directly on the GPU with a fixed seed (so runs with and without spillover hold
bit-identical weights, checked by a checksum), then measures prefill, time to first token and
greedy decode. Modes:
  baseline    the model in VRAM, no interposer (the suite sets no LD_PRELOAD)
  spillover   the same program under libspillover.so (the suite sets LD_PRELOAD and SPILLOVER_*)
  accelerate  Hugging Face accelerate's CPU offload: the device map device_map="auto" builds,
              with max_memory={0: <the same VRAM limit>, "cpu": ...}
  reference-repeat  the baseline again in a fresh process, decode only (decode_tokens greedy
              tokens, decode_reps times): tells whether the program gives the same tokens on its own
Speed does not depend on the weights' values, so random weights measure what real ones would."""

import inspect
import time

import common


def build_config(transformers, model_spec):
    cfg = dict(model_spec["config"])
    arch = model_spec["arch"]
    if arch == "llama":
        return transformers.LlamaConfig(**cfg)
    if arch == "mixtral":
        return transformers.MixtralConfig(**cfg)
    raise ValueError(f"unknown arch {arch!r}: use llama or mixtral")


def model_class(transformers, arch):
    return transformers.LlamaForCausalLM if arch == "llama" else transformers.MixtralForCausalLM


def model_facts(model, config, arch):
    """What the planner needs to predict this model, measured from the built model."""
    embed = expert = lm_head = total = params = 0
    for name, p in model.named_parameters():
        b = p.numel() * p.element_size()
        total += b
        params += p.numel()
        if "embed_tokens" in name:
            embed += b
        elif "experts" in name:
            expert += b
        elif name.startswith("lm_head"):
            lm_head += b
    heads = config.num_attention_heads
    return {
        "arch": arch,
        "hidden": config.hidden_size,
        "layers": config.num_hidden_layers,
        "intermediate": config.intermediate_size,
        "heads": heads,
        "kv_heads": getattr(config, "num_key_value_heads", heads) or heads,
        "head_dim": getattr(config, "head_dim", None) or config.hidden_size // heads,
        "vocab": config.vocab_size,
        "experts": getattr(config, "num_local_experts", 0) or 0,
        "experts_per_token": getattr(config, "num_experts_per_tok", 0) or 0,
        "tied_embeddings": bool(getattr(config, "tie_word_embeddings", False)),
        "dtype": "bfloat16",
        "params": params,
        "weight_bytes": total,
        "embed_bytes": embed,
        "expert_bytes": expert,
        "lm_head_bytes": lm_head,
        # read by every token: everything except the embedding table (one row per token) and,
        # for MoE, the experts that are not routed to
        "dense_bytes": total - embed - expert,
    }


def weight_checksum(torch, model):
    """An exact checksum of every parameter's bits, in parameter order, computed on the GPU."""
    mod = (1 << 61) - 1
    h = 0
    chunk = 1 << 24
    for _, p in model.named_parameters():
        flat = p.detach().reshape(-1)
        v = flat.view(torch.int16) if p.element_size() == 2 else flat.view(torch.int32)
        s1 = torch.zeros((), dtype=torch.int64, device=v.device)
        s2 = torch.zeros((), dtype=torch.int64, device=v.device)
        for i in range(0, v.numel(), chunk):
            c = v[i : i + chunk].to(torch.int64)
            w = torch.arange(i, i + c.numel(), device=c.device, dtype=torch.int64) % 65521 + 1
            s1 += c.sum()
            s2 += (c * w).sum()
        h = (h * 1000003 + int(s1)) % mod
        h = (h * 1000003 + int(s2)) % mod
    return f"{h:016x}"


def timed(torch, fn):
    torch.cuda.synchronize()
    t = time.perf_counter()
    r = fn()
    torch.cuda.synchronize()
    return time.perf_counter() - t, r


def timed_reps(torch, fn, cheap=0.5, mid=3.0, reps=None):
    """Time fn, repeating only while that is cheap: expensive runs (big offloads) are timed once.
    The first run is a warm-up whenever a later one exists. With reps: one warm-up, then the
    median of exactly that many runs (the placement proofs ask for a median of 5)."""
    first, _ = timed(torch, fn)
    if reps:
        later = sorted(timed(torch, fn)[0] for _ in range(int(reps)))
        return later[len(later) // 2], [first] + later
    ts = [first]
    if first < cheap:
        ts += [timed(torch, fn)[0] for _ in range(3)]
        later = sorted(ts[1:])
        return later[len(later) // 2], ts
    if first < mid:
        ts.append(timed(torch, fn)[0])
        return ts[1], ts
    return first, ts


def setup_accelerate(torch, model, spec):
    import accelerate

    model.to("cpu")
    torch.cuda.empty_cache()
    limit = int(spec["vram_limit_bytes"])
    max_memory = {0: limit, "cpu": int(spec.get("cpu_max_memory_bytes", 100 << 30))}
    no_split = list(getattr(model, "_no_split_modules", None) or [])
    device_map = accelerate.infer_auto_device_map(
        model, max_memory=max_memory, no_split_module_classes=no_split, dtype=torch.bfloat16
    )
    on_cpu = [n for n, d in device_map.items() if d == "cpu"]
    on_disk = [n for n, d in device_map.items() if d == "disk"]
    if on_disk:
        raise RuntimeError(f"accelerate put {len(on_disk)} modules on disk; give it more cpu memory")
    sizes = {}
    for name, p in model.named_parameters():
        sizes[name] = p.numel() * p.element_size()
    offloaded = sum(b for n, b in sizes.items() if any(n == m or n.startswith(m + ".") for m in on_cpu))
    model = accelerate.dispatch_model(model, device_map=device_map)
    model.hf_device_map = device_map  # what from_pretrained(device_map="auto") leaves behind
    return model, {
        "max_memory_gpu_bytes": limit,
        "offloaded_bytes": offloaded,
        "gpu_weight_bytes": sum(sizes.values()) - offloaded,
        "modules_on_cpu": len(on_cpu),
        "modules_total": len(device_map),
    }


def repeat_decode(torch, model, config, spec, metrics):
    """reference-repeat: the baseline's prompt, greedy tokens of a fixed count, no timing claims."""
    seed = int(spec.get("seed", 1234))
    lens = [int(x) for x in spec.get("prompt_lens", [512, 2048])]
    ttft_len = int(spec.get("ttft_prompt", 512))
    # the same prompt the baseline draws (same generator, same length), then its first ttft_len ids
    gen = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(3, config.vocab_size, (1, max(lens + [ttft_len])), generator=gen).to("cuda")
    prompt = ids[:, :ttft_len]
    n_new = int(spec.get("decode_tokens", 64))
    runs = []
    tokens = None
    with torch.inference_mode():
        for _ in range(int(spec.get("decode_reps", 2))):
            t, out = timed(torch, lambda: model.generate(
                input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=n_new,
                min_new_tokens=n_new, do_sample=False, pad_token_id=0))
            toks = out[0, prompt.shape[1]:].tolist()
            if tokens is None:
                tokens = toks
            runs.append({"seconds": round(t, 5), "same_tokens_as_first": toks == tokens})
    metrics["decode"] = {"new_tokens": n_new, "runs": runs}
    metrics["tokens"] = tokens
    common.log(f"reference repeat: {n_new} tokens x {len(runs)}, repeats equal: "
               f"{all(r['same_tokens_as_first'] for r in runs)}")
    return metrics


def weight_placement(model):
    """Where the weights are now, asked of the driver page by page (2 MiB, common.PageLocator).
    With migration (placement that follows use) this changes during a run, so it is sampled after
    prefill and after decode. None without libcuda's VMM queries."""
    try:
        loc = common.PageLocator()
    except (OSError, AttributeError):
        return None
    page = 2 << 20
    where = {}  # page address -> True when in host memory
    host = vram = 0
    for prm in model.parameters():
        if not prm.is_cuda:  # offloaded by accelerate: host memory
            host += prm.numel() * prm.element_size()
            continue
        start = prm.data_ptr()
        end = start + prm.numel() * prm.element_size()
        at = start
        while at < end:
            base = at - at % page
            if base not in where:
                where[base] = loc.in_host(base)
            n = min(end, base + page) - at
            if where[base]:
                host += n
            else:
                vram += n
            at += n
    return {"weights_host_bytes": host, "weights_vram_bytes": vram}


def main(spec):
    import torch
    import transformers

    mode = spec["mode"]
    mspec = spec["model"]
    seed = int(spec.get("seed", 1234))
    torch.manual_seed(seed)
    torch.set_default_dtype(torch.bfloat16)
    config = build_config(transformers, mspec)
    cls = model_class(transformers, mspec["arch"])

    t0 = time.perf_counter()
    with torch.device("cuda"):
        model = cls(config)
    model = model.to(torch.bfloat16).eval()
    torch.cuda.synchronize()
    build_s = time.perf_counter() - t0
    common.log(f"built {mspec['id']} in {build_s:.1f} s")

    facts = model_facts(model, config, mspec["arch"])
    t0 = time.perf_counter()
    checksum = weight_checksum(torch, model)
    checksum_s = time.perf_counter() - t0
    common.log(f"weights checksum {checksum} ({checksum_s:.1f} s), {facts['weight_bytes']} bytes")

    if mode == "reference-repeat":
        return repeat_decode(torch, model, config, spec, {
            "facts": facts, "weights_checksum": checksum, "build_s": round(build_s, 2),
            "checksum_s": round(checksum_s, 2)})

    offload = None
    if mode == "accelerate":
        t0 = time.perf_counter()
        model, offload = setup_accelerate(torch, model, spec)
        offload["setup_s"] = round(time.perf_counter() - t0, 2)
        common.log(f"accelerate offload: {offload}")

    vocab = config.vocab_size
    lens = [int(x) for x in spec.get("prompt_lens", [512, 2048])]
    ttft_len = int(spec.get("ttft_prompt", 512))
    gen = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(3, vocab, (1, max(lens + [ttft_len])), generator=gen).to("cuda")

    fwd_kwargs = {"use_cache": False}
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        fwd_kwargs["logits_to_keep"] = 1  # a server keeps only the last position's logits

    metrics = {"facts": facts, "weights_checksum": checksum, "build_s": round(build_s, 2),
               "checksum_s": round(checksum_s, 2), "offload": offload, "prefill": {}}

    with torch.inference_mode():
        timed(torch, lambda: model(input_ids=ids[:, :16], **fwd_kwargs))  # warm-up
        for n in lens:
            x = ids[:, :n]
            last = {}

            def fwd(x=x, last=last):
                last["out"] = model(input_ids=x, **fwd_kwargs)

            t, ts = timed_reps(torch, fwd, reps=spec.get("prefill_reps"))
            logits = last["out"].logits[0, -1].float().cpu().numpy().tobytes()
            metrics["prefill"][str(n)] = {"tokens": n, "seconds": round(t, 5),
                                          "tokens_per_s": round(n / t, 2),
                                          "all_seconds": [round(v, 5) for v in ts],
                                          "last_logits_sha": common.sha16(logits)}
            del last["out"]
            common.log(f"prefill {n}: {n / t:.1f} tok/s")

        metrics["placement"] = {"after_prefill": weight_placement(model)}
        prompt = ids[:, :ttft_len]
        mask = torch.ones_like(prompt)

        def generate(k):
            return model.generate(input_ids=prompt, attention_mask=mask, max_new_tokens=k,
                                  min_new_tokens=k, do_sample=False, pad_token_id=0)

        t1, _ = timed(torch, lambda: generate(1))
        if t1 < 1.0:  # the first generate pays one-time set-up; re-time when cheap
            t1 = min(t1, timed(torch, lambda: generate(1))[0])
        t2, _ = timed(torch, lambda: generate(2))
        step = max(t2 - t1, 1e-4)
        budget = float(spec.get("decode_budget_s", 8.0))
        lo = int(spec.get("decode_min_tokens", 4))
        hi = int(spec.get("decode_max_tokens", 64))
        n_new = max(lo, min(hi, int(budget / step) + 1))
        runs = []
        tokens = None
        for rep in range(int(spec.get("decode_reps_max", 2))):
            if rep > 0 and sum(r["seconds"] for r in runs) > budget / 2:
                break
            st_a = common.read_stats()
            tn, out = timed(torch, lambda: generate(n_new))
            st_b = common.read_stats()
            toks = out[0, prompt.shape[1]:].tolist()
            if tokens is None:
                tokens = toks
            runs.append({"seconds": round(tn, 5), "tokens_per_s": round((n_new - 1) / max(tn - t1, 1e-9), 3),
                         "same_tokens_as_first": toks == tokens,
                         # pages the interposer moved during this generate (prompt prefill included)
                         "migrations": (st_b["migrations"] - st_a["migrations"]) if st_a and st_b else None})
        tps = sorted(r["tokens_per_s"] for r in runs)
        metrics["ttft_s"] = round(t1, 5)
        metrics["ttft_prompt"] = ttft_len
        metrics["decode"] = {"new_tokens": n_new, "step_estimate_s": round(step, 5),
                             "tokens_per_s": tps[len(tps) // 2] if len(tps) % 2 else round(sum(tps) / len(tps), 3),
                             "runs": runs}
        metrics["tokens"] = tokens
        metrics["placement"]["after_decode"] = weight_placement(model)
        common.log(f"placement of the weights: {metrics['placement']}")
        common.log(f"decode {n_new} tokens: {metrics['decode']['tokens_per_s']} tok/s, ttft {t1:.3f} s")

    free, total = torch.cuda.mem_get_info()
    metrics["torch_max_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    metrics["torch_max_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
    metrics["reported_vram_total_bytes"] = int(total)
    metrics["reported_vram_free_bytes"] = int(free)
    return metrics


if __name__ == "__main__":
    common.run_main(main)

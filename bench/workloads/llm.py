"""One LLM measurement in one process: builds a randomly initialised Llama or Mixtral-style model
in bf16 directly on the GPU with a fixed seed (so runs with and without spillover hold
bit-identical weights, checked by a checksum), then measures prefill, time to first token and
greedy decode, each after a warm-up and repeated (median, min and max of at least 5). Decode runs
the way serving systems run it: a static KV cache and one captured CUDA graph of a one-token step
(the HF model's own forward, replayed; a static-cache eager loop if capture fails, recorded as
such), never HF `generate`, whose Python overhead per token dominates batch-1 decode. Modes:
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


REPS = 5


def spread(values):
    """Median, min and max of a list of seconds (or rates)."""
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return med, v[0], v[-1]


def timed_reps(torch, fn, reps=REPS):
    """One warm-up, then `reps` timed runs: (median seconds, the timed runs, the warm-up)."""
    warm, _ = timed(torch, fn)
    ts = [timed(torch, fn)[0] for _ in range(reps)]
    return spread(ts)[0], ts, warm


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


def make_static_cache(transformers, config, max_len, dtype, device):
    """transformers 5.x: StaticCache(config=, max_cache_len=), allocated lazily on the first update
    (the eager prefill); 4.x before 4.56 took the batch size, device and dtype as well."""
    try:
        return transformers.StaticCache(config=config, max_cache_len=max_len)
    except TypeError:
        return transformers.StaticCache(config=config, max_batch_size=1, max_cache_len=max_len,
                                        device=device, dtype=dtype)


class LeanDecoder:
    """Greedy batch-1 decode as a serving loop runs it: the prompt goes through the model once
    (eager) into a static KV cache, then one-token steps. With `graph`, the step (the HF model's
    own forward at a fixed token buffer and cache position, the argmax, and the advance of both
    buffers) is captured once into a CUDA graph and replayed, so no Python runs per token. HF's
    eager MoE experts route with .nonzero() (a host sync), which a graph cannot hold: MoE models
    and accelerate's hooks (host copies per forward) run the same loop without a graph.

    Where the KV of a step lands depends on the transformers version. Up to 5.2 the static cache
    writes at the `cache_position` the caller passes. From 5.3 (huggingface/transformers#44181,
    "Completely remove cache positions") the forward has no such argument: each StaticLayer writes
    at `arange(n) + self.cumulative_length`, a device tensor it advances in place by n (inside a
    captured graph too, on every replay), and the causal mask's query offset is that same tensor.
    The loop rewinds to the end of the prompt before every run, so it rewinds those offsets with
    its own position; otherwise each run writes further on until `index_copy_` runs past
    max_cache_len (the device-side assert "index_copy_(): index out of bounds")."""

    def __init__(self, torch, transformers, model, config, prompt, max_new, graph):
        self.torch = torch
        self.model = model
        self.prompt = prompt
        self.n_prompt = prompt.shape[1]
        dev = self.device = prompt.device
        dtype = next(model.parameters()).dtype
        self.cache = make_static_cache(transformers, config, self.n_prompt + max_new + 1, dtype, dev)
        self.tok = torch.zeros((1, 1), dtype=torch.long, device=dev)
        self.pos = torch.zeros((1,), dtype=torch.long, device=dev)
        self.out = torch.zeros((max_new,), dtype=torch.long, device=dev)
        self.first = None
        params = inspect.signature(model.forward).parameters
        self.kw = {}
        if "logits_to_keep" in params:
            self.kw["logits_to_keep"] = 1
        self.pass_cache_position = "cache_position" in params
        self.graph = None
        self.method = "static-eager"
        self.graph_error = None
        self.want_graph = graph

    def _forward(self, ids, pos):
        kw = dict(self.kw, cache_position=pos) if self.pass_cache_position else self.kw
        o = self.model(input_ids=ids, past_key_values=self.cache, position_ids=pos.unsqueeze(0),
                       use_cache=True, **kw)
        return o.logits[:, -1, :].argmax(dim=-1)

    def _advance(self):
        nxt = self._forward(self.tok, self.pos)
        self.tok.copy_(nxt.view(1, 1))
        self.pos.add_(1)
        return nxt

    def _cache_offsets(self):
        """The write offsets the cache keeps itself (transformers >= 5.3; none before)."""
        layers = getattr(self.cache, "layers", ())
        return [c for c in (getattr(x, "cumulative_length", None) for x in layers) if self.torch.is_tensor(c)]

    def _seek_cache(self, n):
        """Puts the cache's own write offsets at n, in place: a captured graph holds these very
        tensors. Sliding-window layers also keep a Python int (read only by eager code)."""
        for layer in getattr(self.cache, "layers", ()):
            c = getattr(layer, "cumulative_length", None)
            if self.torch.is_tensor(c):
                c.fill_(n)
            elif isinstance(c, int):
                layer.cumulative_length = n
            if isinstance(getattr(layer, "cumulative_length_int", None), int):
                layer.cumulative_length_int = n

    def prefill(self):
        """The prompt into the cache and the first token (time to first token). Slots past the
        current position keep stale values; the causal mask never reads them."""
        torch = self.torch
        self._seek_cache(0)
        self.first = self._forward(self.prompt, torch.arange(self.n_prompt, device=self.device))
        self.reset()
        return self.first

    def reset(self):
        self.tok.copy_(self.first.view(1, 1))
        self.pos.fill_(self.n_prompt)
        self._seek_cache(self.n_prompt)

    def check_offsets(self, steps):
        """After run(steps): the loop's position and the cache's own write offsets must both be at
        n_prompt + steps, else a step wrote its KV where the next run or the mask does not look."""
        want = self.n_prompt + steps
        got = sorted({int(c) for c in self._cache_offsets()} | {int(self.pos)})
        if got != [want]:
            raise RuntimeError(
                f"static-cache decode drifted: after {steps} steps from a {self.n_prompt}-token prompt the "
                f"position and cache write offsets are {got}, expected {want}; this transformers version "
                f"tracks the cache position in a way LeanDecoder does not rewind")

    def capture(self):
        if not self.want_graph:
            return
        torch = self.torch
        try:
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self._advance()
            torch.cuda.current_stream().wait_stream(side)
            torch.cuda.synchronize()
            g = torch.cuda.CUDAGraph()
            with torch.cuda.graph(g):
                self._nxt = self._advance()
            self.graph = g
            self.method = "cuda-graph"
        except Exception as e:  # recorded; the eager static-cache loop still measures decode
            self.graph = None
            self.graph_error = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            common.log(f"CUDA graph capture failed, decoding without a graph: {self.graph_error}")
            torch.cuda.synchronize()
        self.reset()

    def run(self, steps):
        """`steps` one-token steps from the state after the prompt; the tokens stay on the GPU."""
        self.reset()
        for i in range(steps):
            if self.graph is not None:
                self.graph.replay()
                nxt = self._nxt
            else:
                nxt = self._advance()
            self.out[i:i + 1].copy_(nxt)

    def tokens(self, steps):
        return [int(self.first.item())] + self.out[:steps].tolist()


def lean_decode(torch, transformers, model, config, prompt, spec, graph, n_fixed=None):
    """Decode timed as a serving loop: prefill (time to first token: a warm-up, then REPS), graph
    capture, then REPS timed runs of the same steps after a warm-up run. Returns (ttft, decode)."""
    lo = int(spec.get("decode_min_tokens", 4))
    hi = int(n_fixed or spec.get("decode_max_tokens", 64))
    reps = max(REPS, int(spec.get("decode_reps", REPS)))
    dec = LeanDecoder(torch, transformers, model, config, prompt, hi, graph)
    ttft, ttft_all, ttft_warm = timed_reps(torch, dec.prefill)
    dec.capture()
    t_step, _ = timed(torch, lambda: dec.run(2))
    step = max(t_step / 2, 1e-5)
    if n_fixed:
        steps = max(1, int(n_fixed) - 1)
    else:
        budget = float(spec.get("decode_budget_s", 8.0))
        steps = max(lo, min(hi, int(budget / (reps * step)))) - 1
    warm, _ = timed(torch, lambda: dec.run(steps))
    runs = []
    tokens = None
    for _ in range(reps):
        st_a = common.read_stats()
        t, _ = timed(torch, lambda: dec.run(steps))
        st_b = common.read_stats()
        toks = dec.tokens(steps)
        if tokens is None:
            tokens = toks
        runs.append({"seconds": round(t, 6), "tokens_per_s": round(steps / t, 3),
                     "same_tokens_as_first": toks == tokens,
                     # pages the interposer moved during these decode steps (after warm-up)
                     "migrations": (st_b["migrations"] - st_a["migrations"]) if st_a and st_b else None})
    dec.check_offsets(steps)
    med, lo_tps, hi_tps = spread([r["tokens_per_s"] for r in runs])
    decode = {"new_tokens": steps + 1, "step_estimate_s": round(step, 6),
              "tokens_per_s": round(med, 3), "min_tokens_per_s": lo_tps, "max_tokens_per_s": hi_tps,
              "runs": runs, "method": dec.method, "graph_error": dec.graph_error,
              "warmup_s": round(warm, 6)}
    common.log(f"decode ({dec.method}) {steps} steps x {reps}: {med:.2f} tok/s "
               f"(min {lo_tps:.2f}, max {hi_tps:.2f}), ttft {ttft:.4f} s")
    return {"median_s": ttft, "all_s": [round(v, 6) for v in ttft_all],
            "warmup_s": round(ttft_warm, 6)}, decode, tokens


def repeat_decode(torch, transformers, model, config, spec, metrics):
    """reference-repeat: the baseline's prompt and decode loop, a fixed token count, compared
    between repetitions; no timing claims."""
    seed = int(spec.get("seed", 1234))
    lens = [int(x) for x in spec.get("prompt_lens", [512, 2048])]
    ttft_len = int(spec.get("ttft_prompt", 512))
    # the same prompt the baseline draws (same generator, same length), then its first ttft_len ids
    gen = torch.Generator().manual_seed(seed + 1)
    ids = torch.randint(3, config.vocab_size, (1, max(lens + [ttft_len])), generator=gen).to("cuda")
    prompt = ids[:, :ttft_len]
    n_new = int(spec.get("decode_tokens", 64))
    with torch.inference_mode():
        _, decode, tokens = lean_decode(torch, transformers, model, config, prompt, spec,
                                        graph=not metrics["facts"]["experts"], n_fixed=n_new)
    metrics["decode"] = {"new_tokens": decode["new_tokens"], "method": decode["method"],
                         "runs": [{"seconds": r["seconds"], "same_tokens_as_first": r["same_tokens_as_first"]}
                                  for r in decode["runs"]]}
    metrics["tokens"] = tokens
    common.log(f"reference repeat: {n_new} tokens x {len(decode['runs'])}, repeats equal: "
               f"{all(r['same_tokens_as_first'] for r in decode['runs'])}")
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
        return repeat_decode(torch, transformers, model, config, spec, {
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

            st_a = common.stats_now(torch)
            t, ts, warm = timed_reps(torch, fwd)
            st_b = common.stats_now(torch)
            logits = last["out"].logits[0, -1].float().cpu().numpy().tobytes()
            metrics["prefill"][str(n)] = {"tokens": n, "seconds": round(t, 6),
                                          "tokens_per_s": round(n / t, 2),
                                          "all_seconds": [round(v, 6) for v in ts],
                                          "warmup_s": round(warm, 6),
                                          "last_logits_sha": common.sha16(logits),
                                          # the interposer's record around the warm-up and timed runs
                                          # (None without it): host bytes, the streaming engine's counters
                                          "stats_before": st_a, "stats_after": st_b}
            del last["out"]
            common.log(f"prefill {n}: {n / t:.1f} tok/s")

        metrics["placement"] = {"after_prefill": weight_placement(model)}
        if spec.get("decode") is False:  # prefill-only runs (bench/stream/prove.py)
            metrics["decode"] = None
            return metrics
        prompt = ids[:, :ttft_len]
        graph = mode != "accelerate" and not facts["experts"]
        try:
            ttft, decode, tokens = lean_decode(torch, transformers, model, config, prompt, spec, graph)
        except Exception as e:  # noqa: BLE001  (the prefill figures above stand on their own)
            import traceback

            metrics["decode_error"] = f"{type(e).__name__}: {e}"[:2000]
            metrics["decode_traceback"] = traceback.format_exc()[-6000:]
            common.log(f"decode loop failed: {metrics['decode_error'][:300]}")
            return metrics
        metrics["ttft_s"] = round(ttft["median_s"], 6)
        metrics["ttft_all_s"] = ttft["all_s"]
        metrics["ttft_prompt"] = ttft_len
        metrics["decode"] = decode
        metrics["tokens"] = tokens
        metrics["placement"]["after_decode"] = weight_placement(model)
        common.log(f"placement of the weights: {metrics['placement']}")

    free, total = torch.cuda.mem_get_info()
    metrics["torch_max_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
    metrics["torch_max_reserved_bytes"] = int(torch.cuda.max_memory_reserved())
    metrics["reported_vram_total_bytes"] = int(total)
    metrics["reported_vram_free_bytes"] = int(free)
    return metrics


if __name__ == "__main__":
    common.run_main(main)

"""The spillover benchmark suite and correctness corpus: one command runs every workload, each in
its own process (a crash, OOM or hang in one is recorded as failed with its error tail and the
suite goes on), and writes bench/results/<date>-<card>.json, which `npm run bench:report`
renders into docs/benchmarks.md.

  python3 bench/suite.py            full suite, sized to finish in < 17 min on one H100
  python3 bench/suite.py --smoke    tiny models and few tokens, < 2 min: checks the plumbing
  python3 bench/suite.py --list     prints the plan (workloads, limits, env) without running
When $OUT names a folder, the results JSON is copied there too (the GPU machine's only way back).

The suite holds a time budget: it starts no workload after --budget-s and cuts each workload's
timeout so the whole run ends by --hard-cap-s. Decode token counts scale to the measured cost
of a step inside each workload (decode_budget_s), so slow configurations get few tokens.
Standard library only; the workloads import torch, transformers, accelerate, jax, cupy."""

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the working tree (it is copied to the GPU machine)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SCHEMA = "spillover-bench/1"
GIB = 1 << 30
MIB = 1 << 20

# VRAM of the LLM spillover runs: SPILLOVER_VRAM_LIMIT = fraction x weight bytes + ALLOWANCE and
# SPILLOVER_VRAM_RESERVE = ALLOWANCE - HEADROOM. The interposer lets only requests up to
# SPILLOVER_THRESHOLD (2 MiB) use the reserve; everything larger (weights, the caching allocator's
# large segments for activations) shares limit - reserve = fraction x weights + HEADROOM. With
# reserve = ALLOWANCE (the 2026-11-27 run) limit - reserve was exactly the weights' bytes, so at a
# 100% limit 0.65 GB (dense-8g) and 0.81 GB (dense-20g) still went to host memory. HEADROOM covers
# what that run measured above the weights (PyTorch's peak reserved memory minus the weights:
# 0.66, 0.73 and 0.62 GB for dense-8g, dense-20g and moe-11g), so a 100% limit holds every weight
# and those allocations in VRAM. Below 100% the weights arrive first and take the headroom too:
# the weights' VRAM share is (limit - reserve) / weights, which the report's bounds use.
ALLOWANCE_FULL = 2 * GIB
HEADROOM_FULL = 1 * GIB
ALLOWANCE_SMOKE = 512 * MIB
HEADROOM_SMOKE = 256 * MIB

_COMMON_CFG = {
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 0,
    "initializer_range": 0.02,
    "use_cache": True,
}


def _llama(hidden, inter, layers, heads, kv, vocab=32000):
    return dict(_COMMON_CFG, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                num_attention_heads=heads, num_key_value_heads=kv, vocab_size=vocab)


def _mixtral(hidden, inter, layers, heads, kv, experts, topk, vocab=32000):
    return dict(_llama(hidden, inter, layers, heads, kv, vocab), num_local_experts=experts,
                num_experts_per_tok=topk, sliding_window=None, output_router_logits=False)


MODELS_FULL = {
    # Llama-3-8B layer shapes, 18 layers: about 8.4 GB of bf16 weights
    "dense-8g": {"arch": "llama", "config": _llama(4096, 14336, 18, 32, 8)},
    # Llama-2-13B-like widths with GQA, 36 layers: about 20.5 GB
    "dense-20g": {"arch": "llama", "config": _llama(5120, 13824, 36, 40, 8)},
    # Mixtral-style, 8 experts top-2, 12 layers: about 11.2 GB, 3.7 GB read per token
    "moe-11g": {"arch": "mixtral", "config": _mixtral(4096, 4096, 12, 32, 8, 8, 2)},
}
MODELS_SMOKE = {
    "dense-smoke": {"arch": "llama", "config": _llama(1024, 4096, 4, 16, 4)},
    "moe-smoke": {"arch": "mixtral", "config": _mixtral(1024, 1024, 4, 16, 4, 8, 2)},
}


def predicted_weight_bytes(model):
    """bf16 weight bytes from the config, before any process builds it (the VRAM limits are
    fractions of this). The workload reports the measured figure; the suite records both."""
    c = model["config"]
    h, i, n, v = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"], c["vocab_size"]
    hd = h // c["num_attention_heads"]
    attn = h * c["num_attention_heads"] * hd * 2 + h * c["num_key_value_heads"] * hd * 2
    if model["arch"] == "mixtral":
        e = c["num_local_experts"]
        mlp = e * 3 * h * i + h * e
    else:
        mlp = 3 * h * i
    per_layer = attn + mlp + 2 * h
    params = n * per_layer + h + v * h * (1 if c["tie_word_embeddings"] else 2)
    return params * 2


def _w(wid, group, script, spec, timeout_s, **kw):
    """One workload. `unit` groups workloads that --part keeps together; `est_s` is a guess of
    its cost on an H100 (process start, model build, measurements) used only to balance parts."""
    d = {"id": wid, "group": group, "script": script, "spec": spec, "timeout_s": timeout_s,
         "model": None, "mode": "reference", "variant": None, "fraction": None,
         "vram_limit_bytes": None, "spill": False, "env": {}, "unit": group, "est_s": 20.0}
    d.update(kw)
    return d


def llm_workloads(mid, model, fractions, accel_fractions, allowance, reserve, smoke, timeouts):
    wbytes = predicted_weight_bytes(model)
    base = {"model": dict(model, id=mid), "seed": 1234, "prompt_lens": [512, 2048], "ttft_prompt": 512}
    budgets = {"baseline": 1.0 if smoke else 3.0, "spillover": 1.0 if smoke else 6.0,
               "accelerate": 1.0 if smoke else 10.0}
    out = []

    def spec(mode, limit):
        # Decode: a warm-up run, then decode_reps timed runs of the same token count (median and
        # spread); accelerate steps take seconds, so its runs are a couple of tokens each.
        s = dict(base, mode=mode, decode_budget_s=budgets[mode],
                 decode_min_tokens=2 if mode == "accelerate" else 4,
                 decode_max_tokens=16 if smoke else (64 if mode != "accelerate" else 16),
                 decode_reps=5)
        if limit is not None:
            s["vram_limit_bytes"] = limit
        return s

    gb = wbytes / 1e9
    out.append(_w(f"{mid}/baseline", "llm", "llm.py", spec("baseline", None), timeouts["baseline"],
                  model=mid, mode="baseline", unit=mid, est_s=18 + gb))
    for f in fractions:
        limit = int(f * wbytes) + allowance
        out.append(_w(f"{mid}/spillover-{int(f * 100)}", "llm", "llm.py", spec("spillover", limit),
                      timeouts["spillover"], model=mid, mode="spillover", fraction=f,
                      vram_limit_bytes=limit, spill=True, unit=mid, est_s=20 + gb * (1 + 2.5 * (1 - f)),
                      env={"SPILLOVER_VRAM_LIMIT": str(limit), "SPILLOVER_VRAM_RESERVE": str(reserve)}))
    # The reference again, in its own process and without spillover, decode only: greedy tokens of
    # random-weight models sit on near-ties that run-time conditions can flip (2026-11-27: a second
    # no-spillover process diverged at token 15), so a spillover run whose tokens differ is a
    # finding only if the program agrees with itself. Cost: about 12 s of process start, build and
    # checksum, plus a warm-up and 5 runs of rep_tokens with the baseline's decode loop (a CUDA
    # graph step of a few ms for the dense models; the MoE's eager step took up to 30 ms).
    rep_tokens = 16 if smoke else 64
    out.append(_w(f"{mid}/reference-repeat", "llm-repeat", "llm.py",
                  dict(base, mode="reference-repeat", decode_tokens=rep_tokens, decode_reps=5),
                  timeouts["baseline"], model=mid, mode="reference-repeat", unit=mid,
                  est_s=12 + 6 * rep_tokens * 0.03))
    for f in accel_fractions:
        limit = int(f * wbytes) + allowance
        out.append(_w(f"{mid}/accelerate-{int(f * 100)}", "llm", "llm.py", spec("accelerate", limit),
                      timeouts["accelerate"], model=mid, mode="accelerate", fraction=f,
                      vram_limit_bytes=limit, unit=f"{mid}-accelerate", est_s=25 + gb * (0.6 + 5 * (1 - f))))
    return out


def array_workloads(group, script, spec, limit, pinned_limit, variants):
    """A reference run without spillover, then each (variant, env) under the VRAM limit.
    The pinned limit is explicit because the interposer reports VRAM limit + pinned limit as the
    card's total, and XLA's default preallocation takes 75% of what is reported free: with the
    default pinned limit (most of the host's RAM) that would pin tens of GiB for nothing."""
    out = [_w(f"{group}/reference", group, script, spec, 150, mode="reference", unit="arrays",
              est_s=18, env=variants[0][1] if group == "jax" else {})]
    for name, env in variants:
        out.append(_w(f"{group}/spillover-{name}", group, script, spec, 180, mode="spillover",
                      variant=name, vram_limit_bytes=limit, spill=True, unit="arrays", est_s=28,
                      env=dict(env, SPILLOVER_VRAM_LIMIT=str(limit), SPILLOVER_PINNED_LIMIT=str(pinned_limit))))
    return out


def plan(smoke):
    if smoke:
        allowance = ALLOWANCE_SMOKE
        t = {"baseline": 90, "spillover": 90, "accelerate": 90}
        arr = {"arrays": 8, "array_mib": 16, "cols": 1024, "seed": 0}
        arr_limit = 64 * MIB
        noprealloc = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
        w = [_w("probe", "probe", "probe.py", {"bytes": 256 * MIB, "reps": 3}, 60, mode="probe")]
        w += array_workloads("jax", "jax_chain.py", arr, arr_limit, 512 * MIB, [("prealloc-false", noprealloc)])
        w += array_workloads("cupy", "cupy_chain.py", arr, arr_limit, 512 * MIB, [("pool", {})])
        reserve = allowance - HEADROOM_SMOKE
        w += llm_workloads("dense-smoke", MODELS_SMOKE["dense-smoke"], [0.5], [0.5], allowance, reserve, True, t)
        w += llm_workloads("moe-smoke", MODELS_SMOKE["moe-smoke"], [0.5], [], allowance, reserve, True, t)
        return w, allowance, MODELS_SMOKE
    allowance = ALLOWANCE_FULL
    reserve = allowance - HEADROOM_FULL
    arr = {"arrays": 40, "array_mib": 256, "cols": 4096, "seed": 0}  # 10 GiB alive at once
    arr_limit = 4 * GIB
    jax_variants = [("prealloc-false", {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}),
                    # the default: XLA takes 75% (XLA_PYTHON_CLIENT_MEM_FRACTION) of what the
                    # driver reports free, at start-up, in one allocation
                    ("prealloc-default", {})]
    w = [_w("probe", "probe", "probe.py", {"bytes": GIB, "reps": 5}, 90, mode="probe", est_s=15)]
    w += array_workloads("jax", "jax_chain.py", arr, arr_limit, 16 * GIB, jax_variants)
    w += array_workloads("cupy", "cupy_chain.py", arr, arr_limit, 16 * GIB, [("pool", {})])
    fr = [1.0, 0.75, 0.5, 0.25]
    t_small = {"baseline": 150, "spillover": 180, "accelerate": 240}
    t_big = {"baseline": 180, "spillover": 240, "accelerate": 300}
    # accelerate's offload is slow (pageable copies of every offloaded weight, every forward):
    # it runs at fewer points for the 20 GB model, and after every spillover run, so a time
    # budget that runs out skips accelerate points first.
    llm = (llm_workloads("dense-8g", MODELS_FULL["dense-8g"], fr, [0.75, 0.5, 0.25], allowance, reserve, False, t_small)
           + llm_workloads("moe-11g", MODELS_FULL["moe-11g"], [0.5], [0.5], allowance, reserve, False, t_small)
           + llm_workloads("dense-20g", MODELS_FULL["dense-20g"], fr, [0.5, 0.25], allowance, reserve, False, t_big))
    w += [x for x in llm if x["mode"] != "accelerate"] + [x for x in llm if x["mode"] == "accelerate"]
    return w, allowance, MODELS_FULL


def select_part(workloads, k, n):
    """Part k of n (1-based): the probe (every part measures its own bandwidths) plus whole units,
    balanced by estimated cost (longest first, each to the lightest part), in suite order."""
    units = {}
    for w in workloads:
        if w["group"] != "probe":
            units[w["unit"]] = units.get(w["unit"], 0.0) + w["est_s"]
    loads = [0.0] * n
    owner = {}
    for unit, cost in sorted(units.items(), key=lambda kv: (-kv[1], kv[0])):
        i = min(range(n), key=lambda j: (loads[j], j))
        owner[unit] = i
        loads[i] += cost
    return [w for w in workloads if w["group"] == "probe" or owner[w["unit"]] == k - 1]


def clean_env(extra, spill, lib, stats_dir):
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD" and not k.startswith("SPILLOVER_")
           and not k.startswith("XLA_PYTHON_CLIENT_")}
    env.update({"PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_VERBOSITY": "error", "TOKENIZERS_PARALLELISM": "false"})
    # Same XLA kernels with and without spillover: deterministic ops, and no autotuning (timings
    # taken while weights sit in slow host memory could pick other GEMM algorithms, whose float
    # results differ in the last bits for reasons that have nothing to do with spillover).
    flags = env.get("XLA_FLAGS", "")
    for f in ("--xla_gpu_deterministic_ops=true", "--xla_gpu_autotune_level=0"):
        if f.split("=")[0] not in flags:
            flags = (flags + " " + f).strip()
    env["XLA_FLAGS"] = flags
    if spill:
        env.update({"LD_PRELOAD": lib, "SPILLOVER_LOG": "info", "SPILLOVER_BROKER": "off",
                    "SPILLOVER_KEEP_STATS": "1", "SPILLOVER_STATS_DIR": stats_dir})
    env.update(extra)
    return env


def _tail(text, lines=40, chars=4000):
    t = "\n".join(text.rstrip().splitlines()[-lines:])
    return t[-chars:]


def _read_kept_stats(stats_dir, pid):
    sys.path.insert(0, os.path.join(HERE, "workloads"))
    import common  # noqa: E402  (the workloads' stats reader)

    old = os.environ.get("SPILLOVER_STATS_DIR")
    os.environ["SPILLOVER_STATS_DIR"] = stats_dir
    try:
        return common.read_stats(pid)
    finally:
        if old is None:
            del os.environ["SPILLOVER_STATS_DIR"]
        else:
            os.environ["SPILLOVER_STATS_DIR"] = old


def run_workload(w, lib, stats_dir, log, timeout_s):
    entry = {k: w[k] for k in ("id", "group", "model", "mode", "variant", "fraction", "vram_limit_bytes")}
    entry.update({"spillover": w["spill"], "spec": w["spec"], "status": "failed", "error": None,
                  "exit_code": None, "duration_s": 0.0, "timeout_s": timeout_s, "metrics": None,
                  "spill_stats": None, "vram_used_smi_mib": None, "env": {}})
    if w["spill"] and not os.path.exists(lib):
        entry["error"] = f"interposer not built: {lib} is missing (make -C native failed or was not run)"
        log.write(f"\n===== {w['id']}: not run: {entry['error']}\n")
        return entry
    env = clean_env(w["env"], w["spill"], lib, stats_dir)
    fd, out_path = tempfile.mkstemp(prefix="spill-bench-", suffix=".json")
    os.close(fd)
    os.unlink(out_path)
    cmd = [sys.executable, os.path.join(HERE, "workloads", w["script"]), "--spec", json.dumps(w["spec"]),
           "--out", out_path]
    log.write(f"\n===== {w['id']} (timeout {timeout_s:.0f} s)\n")
    log.write("env: " + " ".join(f"{k}={v}" for k, v in sorted(env.items())
                                 if k.startswith(("SPILLOVER_", "XLA_", "LD_PRELOAD"))) + "\n")
    log.flush()
    with tempfile.TemporaryFile(mode="w+") as cap:
        t0 = time.time()
        p = subprocess.Popen(cmd, stdout=cap, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                             start_new_session=True)
        try:
            rc = p.wait(timeout=max(1.0, timeout_s))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            rc = None
        entry["duration_s"] = round(time.time() - t0, 2)
        cap.seek(0)
        text = cap.read()
    if len(text) > 1_000_000:
        text = text[:200_000] + "\n[... log cut ...]\n" + text[-800_000:]
    log.write(text)
    log.flush()
    entry["exit_code"] = rc
    if rc is None:
        entry["status"] = "timeout"
        entry["error"] = f"killed after {timeout_s:.0f} s\n" + _tail(text)
    elif rc != 0 or not os.path.exists(out_path):
        entry["error"] = f"exit code {rc}\n" + _tail(text)
    else:
        with open(out_path) as f:
            r = json.load(f)
        entry.update({"status": "ok", "metrics": r["metrics"], "spill_stats": r["spill_stats"],
                      "vram_used_smi_mib": r["vram_used_smi_mib"], "env": r["env"]})
    if os.path.exists(out_path):
        os.unlink(out_path)
    if w["spill"]:
        if entry["spill_stats"] is None:
            entry["spill_stats"] = _read_kept_stats(stats_dir, p.pid)
        sp = os.path.join(stats_dir, f"spillover-{os.getuid()}-{p.pid}.stats")
        if os.path.exists(sp):
            os.unlink(sp)
    return entry


def versions():
    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "accelerate", "jax", "jaxlib", "numpy"):
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    out["cupy"] = None
    for d in importlib.metadata.distributions():
        n = (d.metadata["Name"] or "").lower()
        if n == "cupy" or n.startswith("cupy-cuda"):
            out["cupy"] = f"{d.version} ({n})"
    return out


def host_info(probe):
    info = {"cpu_model": None, "cpu_count": os.cpu_count(), "mem_total_bytes": None,
            "kernel": platform.release()}
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.+)", f.read())
            info["cpu_model"] = m.group(1).strip() if m else None
        with open("/proc/meminfo") as f:
            m = re.search(r"MemTotal:\s*(\d+) kB", f.read())
            info["mem_total_bytes"] = int(m.group(1)) * 1024 if m else None
    except OSError:
        pass
    m = (probe or {}).get("metrics") or {}
    smi = m.get("smi") or {}
    info.update({"gpu_name": m.get("gpu_name") or smi.get("name"), "driver": smi.get("driver"),
                 "cuda_runtime": m.get("cuda_runtime"), "vram_total_bytes": m.get("vram_total_bytes"),
                 "pcie": f"Gen{smi['pcie_gen']} x{smi['pcie_width']}" if smi.get("pcie_gen") else None})
    try:
        r = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20,
                           env={k: v for k, v in os.environ.items() if k != "LD_PRELOAD"})
        mm = re.search(r"CUDA Version:\s*([\d.]+)", r.stdout)
        info["cuda_driver"] = mm.group(1) if mm else None
        if not info["driver"]:
            mm = re.search(r"Driver Version:\s*([\d.]+)", r.stdout)
            info["driver"] = mm.group(1) if mm else None
    except Exception:
        info["cuda_driver"] = None
    name = info["gpu_name"] or "unknown-gpu"
    card = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    info["card"] = re.sub(r"^nvidia-", "", card) or "unknown-gpu"
    return info


def reserve_of(smoke):
    """SPILLOVER_VRAM_RESERVE of the LLM spillover runs (recorded in the results)."""
    return ALLOWANCE_SMOKE - HEADROOM_SMOKE if smoke else ALLOWANCE_FULL - HEADROOM_FULL


def summarize(entries):
    """One line per workload for the log: the coordinator reads this before the report exists."""
    ref_tokens = {}
    ref_checks = {}
    for e in entries:
        m = e["metrics"] or {}
        if e["status"] == "ok" and e["mode"] == "baseline":
            ref_tokens[e["model"]] = m.get("tokens")
        if e["status"] == "ok" and e["mode"] == "reference" and e["group"] in ("jax", "cupy"):
            ref_checks[e["group"]] = m.get("checksums")
    lines = []
    for e in entries:
        m = e["metrics"] or {}
        s = f"{e['id']:<32} {e['status']:<8} {e['duration_s']:>7.1f}s"
        if e["status"] == "ok" and e["group"] == "llm":
            d = m.get("decode", {})
            p = m.get("prefill", {}).get("2048", {})
            ref = ref_tokens.get(e["model"])
            toks = m.get("tokens") or []
            n = min(len(ref or []), len(toks))
            eq = "n/a" if not ref else ("equal" if ref[:n] == toks[:n] else "DIFFERENT")
            s += f"  decode {d.get('tokens_per_s')} tok/s ({d.get('new_tokens')} tok)"
            s += f"  prefill2048 {p.get('tokens_per_s')} tok/s  tokens {eq} ({n})"
            st = e["spill_stats"] or {}
            if e["spillover"]:
                s += f"  pinned_peak {st.get('pinned_peak_bytes')}" if st else "  NO STATS RECORD"
                if st:
                    s += f"  staged {st.get('stream_staged_bytes')} late {st.get('stream_late_stages')}"
        elif e["status"] == "ok" and e["group"] == "llm-repeat":
            ref = ref_tokens.get(e["model"])
            toks = m.get("tokens") or []
            n = min(len(ref or []), len(toks))
            eq = "n/a" if not ref else ("equal" if ref[:n] == toks[:n] else "DIFFERENT: the program varies on its own")
            same = all(r.get("same_tokens_as_first") for r in (m.get("decode") or {}).get("runs", []))
            s += f"  tokens vs baseline {eq} ({n})  in-process repeats {'equal' if same else 'DIFFERENT'}"
        elif e["status"] == "ok" and e["group"] in ("jax", "cupy") and e["mode"] == "spillover":
            ref = ref_checks.get(e["group"])
            s += "  results " + ("n/a" if ref is None else ("equal" if ref == m.get("checksums") else "DIFFERENT"))
        elif e["status"] == "ok" and e["group"] == "probe":
            s += f"  h2d {m.get('h2d_pinned_gbps')} GB/s  vram read {m.get('vram_read_gbps')} GB/s"
        elif e["error"]:
            last = [x for x in e["error"].splitlines() if x.strip()]
            s += "  " + (last[-1] if last else "")[:140]
        lines.append(s)
    return "\n".join(lines)


def merge_results(parts):
    """One results object from the parts of a run (each a parsed results file). Bandwidths: the
    highest of the parts' measurements, so bounds are never made easier by a slow probe."""
    if not parts:
        raise ValueError("nothing to merge")
    first = parts[0]
    for p in parts:
        if p.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} results file (schema {p.get('schema')!r})")
        if p["smoke"] != first["smoke"] or p["host"]["card"] != first["host"]["card"]:
            raise ValueError("parts come from different cards or mix smoke and full runs")
    seen = set()
    workloads = []
    for i, p in enumerate(parts):
        for w in p["workloads"]:
            w = dict(w)
            if w["id"] in seen:
                w["id"] = f"{w['id']} (part {p.get('part') or i + 1})"
            seen.add(w["id"])
            workloads.append(w)
    bws = [p["bandwidth"] for p in parts if p.get("bandwidth")]
    bandwidth = None
    if bws:
        bandwidth = {}
        for k in bws[0]:
            vals = [b[k] for b in bws if b.get(k) is not None]
            bandwidth[k] = max(vals) if vals else None
    models = {}
    for p in parts:
        for mid, m in p["models"].items():
            if mid not in models or (models[mid]["facts"] is None and m["facts"] is not None):
                models[mid] = m
    commits = sorted({p["git_commit"] for p in parts if p.get("git_commit")})
    merged = dict(first)
    merged.update({
        "created_utc": min(p["created_utc"] for p in parts),
        "git_commit": " / ".join(commits) if commits else None,
        "command": " ; ".join(p["command"] for p in parts),
        "interposer": {"path": first["interposer"]["path"],
                       "present": all(p["interposer"]["present"] for p in parts)},
        "bandwidth": bandwidth,
        "budget_s": sum(p["budget_s"] for p in parts),
        "duration_s": round(sum(p["duration_s"] for p in parts), 1),
        "models": models,
        "workloads": workloads,
        "part": None,
        "parts": [{"part": p.get("part"), "duration_s": p["duration_s"], "bandwidth": p.get("bandwidth"),
                   "created_utc": p["created_utc"]} for p in parts],
    })
    return merged


def merge_main(files, results_dir):
    try:
        parts = []
        for f in files:
            with open(f) as fh:
                parts.append(json.load(fh))
        merged = merge_results(parts)
    except (OSError, ValueError, KeyError) as e:
        print(f"suite.py --merge: {e}", file=sys.stderr)
        return 1
    day = merged["created_utc"][:10]
    name = f"{day}-{merged['host']['card']}{'-smoke' if merged['smoke'] else ''}.json"
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, name)
    with open(path, "w") as fh:
        json.dump(merged, fh, indent=1)
        fh.write("\n")
    print(f"merged {len(files)} parts ({len(merged['workloads'])} workloads) into {path}")
    return 0


def main():
    ap = argparse.ArgumentParser(description="spillover benchmark suite")
    ap.add_argument("--smoke", action="store_true", help="tiny models, few tokens, < 2 min")
    ap.add_argument("--list", action="store_true", help="print the plan as JSON and exit")
    ap.add_argument("--only", default=None, help="run only workloads whose id contains this text")
    ap.add_argument("--lib", default=os.path.join(ROOT, "native", "build", "libspillover.so"))
    ap.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--log", default=None, help="combined log file (default: next to the results)")
    ap.add_argument("--started-at", type=float, default=None, help="epoch seconds the run began")
    ap.add_argument("--budget-s", type=float, default=None, help="start no workload after this")
    ap.add_argument("--hard-cap-s", type=float, default=None, help="every workload ends by this")
    ap.add_argument("--command", default=None, help="the command line to record")
    ap.add_argument("--part", default=None, metavar="K/N",
                    help="run only part K of N (each part fits a 10-minute call); merge with --merge")
    ap.add_argument("--merge", nargs="+", default=None, metavar="FILE",
                    help="merge part results files into one bench/results/<date>-<card>.json and exit")
    a = ap.parse_args()

    if a.merge:
        return merge_main(a.merge, a.results_dir)
    workloads, allowance, models = plan(a.smoke)
    part = None
    if a.part:
        m = re.fullmatch(r"(\d+)/(\d+)", a.part)
        if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
            print(f"suite.py: --part {a.part!r} is not K/N with 1 <= K <= N (e.g. --part 1/3)", file=sys.stderr)
            return 2
        part = (int(m.group(1)), int(m.group(2)))
        workloads = select_part(workloads, *part)
    if a.only:
        workloads = [w for w in workloads if a.only in w["id"] or w["id"] == "probe"]
    if a.list:
        for w in workloads:
            print(json.dumps({k: w[k] for k in ("id", "mode", "fraction", "vram_limit_bytes", "timeout_s", "env", "est_s")}))
        return 0
    # One call on the GPU machine may run 10 minutes: a part starts nothing after 8 min and
    # ends every workload by 9 min 15 s (the build and the machine's start come on top).
    default_budget, default_cap = (100.0, 115.0) if a.smoke else ((480.0, 555.0) if part else (960.0, 1040.0))
    budget = a.budget_s if a.budget_s is not None else default_budget
    hard_cap = a.hard_cap_s if a.hard_cap_s is not None else default_cap
    started = a.started_at or time.time()
    lib = os.path.abspath(a.lib)
    os.makedirs(a.results_dir, exist_ok=True)
    stats_dir = tempfile.mkdtemp(prefix="spillover-bench-stats-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    log_path = a.log or os.path.join(a.results_dir, f"{day}-suite{'-smoke' if a.smoke else ''}.log")
    if part:
        print(f"part {part[0]}/{part[1]}: {len(workloads)} workloads, estimated "
              f"{sum(w['est_s'] for w in workloads):.0f} s", flush=True)
    entries = []
    with open(log_path, "a") as log:
        log.write(f"spillover bench suite {'smoke' if a.smoke else 'full'}, {len(workloads)} workloads, "
                  f"budget {budget:.0f} s, hard cap {hard_cap:.0f} s, lib {lib}\n")
        for w in workloads:
            elapsed = time.time() - started
            if elapsed >= budget:
                entries.append({"id": w["id"], "group": w["group"], "model": w["model"], "mode": w["mode"],
                                "variant": w["variant"], "fraction": w["fraction"],
                                "vram_limit_bytes": w["vram_limit_bytes"], "spillover": w["spill"],
                                "spec": w["spec"], "status": "skipped",
                                "error": f"suite time budget spent ({elapsed:.0f} s of {budget:.0f} s)",
                                "exit_code": None, "duration_s": 0.0, "timeout_s": 0, "metrics": None,
                                "spill_stats": None, "vram_used_smi_mib": None, "env": {}})
                continue
            timeout = min(w["timeout_s"], hard_cap - elapsed)
            print(f"[{time.strftime('%H:%M:%S')}] {w['id']} (elapsed {elapsed:.0f} s)", flush=True)
            e = run_workload(w, lib, stats_dir, log, timeout)
            print(f"    -> {e['status']} in {e['duration_s']} s", flush=True)
            entries.append(e)
        summary = summarize(entries)
        log.write("\n===== summary\n" + summary + "\n")
    shutil.rmtree(stats_dir, ignore_errors=True)

    probe = next((e for e in entries if e["group"] == "probe" and e["status"] == "ok"), None)
    pm = (probe or {}).get("metrics") or {}
    host = host_info(probe)
    model_table = {}
    for mid, m in models.items():
        facts = next((e["metrics"]["facts"] for e in entries
                      if e["model"] == mid and e["status"] == "ok" and e["metrics"]), None)
        model_table[mid] = {"arch": m["arch"], "config": m["config"],
                            "predicted_weight_bytes": predicted_weight_bytes(m), "facts": facts}
    results = {
        "schema": SCHEMA,
        "fixture": False,
        "smoke": a.smoke,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": os.environ.get("GIT_COMMIT") or None,
        "command": a.command or " ".join([os.path.basename(sys.executable)] + sys.argv),
        "host": host,
        "versions": versions(),
        "interposer": {"path": lib, "present": os.path.exists(lib)},
        "bandwidth": None if not probe else {
            "h2d_pinned_gbps": pm.get("h2d_pinned_gbps"), "d2h_pinned_gbps": pm.get("d2h_pinned_gbps"),
            "vram_read_gbps": pm.get("vram_read_gbps"), "vram_copy_gbps": pm.get("vram_copy_gbps")},
        "allowance_bytes": allowance,
        "reserve_bytes": reserve_of(a.smoke),
        "budget_s": budget,
        "duration_s": round(time.time() - started, 1),
        "models": model_table,
        "workloads": entries,
    }
    results["part"] = f"{part[0]}/{part[1]}" if part else None
    suffix = ("-smoke" if a.smoke else "") + (f"-part{part[0]}of{part[1]}" if part else "")
    name = f"{day}-{host['card']}{suffix}.json"
    path = os.path.join(a.results_dir, name)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    out_dir = os.environ.get("OUT")
    if out_dir and os.path.isdir(out_dir):
        shutil.copy(path, os.path.join(out_dir, name))
    print(summary)
    print(f"results: {path}\nlog: {log_path}\ntotal {results['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

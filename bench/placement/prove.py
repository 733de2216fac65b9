"""prove.py: the GPU proofs of issue 9 (placement that never starves the program's working set).
Runs every measurement in its own process (bench/suite.py's run_workload: a crash, OOM or hang is
recorded with its output tail and the rest goes on), then computes the proof records

  bench/results/proofs/placement-<card>-<date>.json   placement.* (issue 9's table)
  bench/results/proofs/bench-<card>-<date>.json        bench.fits-overhead, bench.bigger-than-card (issue 12)

each {card, driver, commit, date, command, proofs: [{id, measured, target, unit, pass, detail}]};
a failed or missing measurement is a proof with pass: false and the reason, never left out.

One GPU call may last 10 minutes, so the runs come in two parts (bench/placement/run.sh builds
the interposer and calls this; see bench/README.md):
  python3 bench/placement/prove.py --part 1/2      lean decoder runs, torch corpus cases
  python3 bench/placement/prove.py --part 2/2      bigger-than-card, dense-8g, JAX, other cases
  python3 bench/placement/prove.py --merge A.json B.json    (any machine, python3 only)
  python3 bench/placement/prove.py --list [--part K/2]      the plan with expected seconds
Each part writes placement-results-<card>-<date>-partKof2.json (every raw number, spreads,
env, the log's tail) into --results-dir and $OUT. Without --part everything runs in one go
(about 16 min) and the proof records are written at once. A deadline (--budget-s after the
start: start nothing; --hard-cap-s: every run ends) records what did not fit as not run.
Standard library only."""

import argparse
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the working tree (it is copied to the GPU machine)
HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, BENCH)
sys.path.insert(0, os.path.join(BENCH, "lean"))
import suite  # noqa: E402  (run_workload, clean_env, the dense-8g model spec, versions)
from lean_decoder import weight_bytes_of  # noqa: E402

SCHEMA = "spillover-placement-results/1"
GIB = 1 << 30
LEAN = os.path.join(BENCH, "lean", "lean_decoder.py")
CORPUS = os.path.join(HERE, "corpus.py")
PROBE = "probe.py"  # bench/workloads/probe.py
LEAN_CFG = {"hidden": 4096, "intermediate": 14336, "layers": 32, "heads": 32, "kv_heads": 8, "vocab": 32000}
BIG_CFG = {"hidden": 8192, "intermediate": 28672, "heads": 64, "kv_heads": 8, "vocab": 32000}
BIG_FACTOR = 1.12          # the bigger-than-card model: this x the card's physical VRAM
BIG_MIN_FACTOR = 1.10      # what issue 9 asks for at least
HOST_RAM_SPARE = 16 * GIB  # RAM left free beside the big model's host share
SPILL_FRACTION = 0.60      # lean decoder's VRAM limit, of its weight bytes
JAX_GIB = 10               # the JAX program's arrays
JAX_FRACTION = 0.40        # its VRAM limit, of the arrays
CORPUS_FRACTION = 0.40     # corpus limits, of the peak the run without spillover reported
CORPUS_GIB = 2
PINNED_LIMIT_ARRAYS = "16G"  # as the suite: XLA's default preallocation takes 75% of limit + pinned limit
CORPUS_CASES = {1: ["adamw", "streams", "graphs"], 2: ["triton", "jax", "cupy"]}
TARGETS = {  # issue 9's table (and issue 12's bench.fits-overhead, bench.bigger-than-card)
    "placement.graph-decode-vs-bound": (">=", 0.9, "ratio (bound / measured time per token)"),
    "placement.bigger-than-card": (">=", 0.9, "ratio (bound / measured time per token)"),
    "placement.migrate-on-vs-off": (">=", 1.0, "ratio (time with migration off / on)"),
    "placement.jax-prealloc": ("<=", 1.5, "ratio (time with default preallocation / without)"),
    "placement.fits-prefill": (">=", 0.97, "ratio (prefill 2048 tok/s at a 100% limit / without spillover)"),
    "placement.steady-moves": ("<=", 0, "pages moved per decode step after warm-up (worst run)"),
    "placement.corpus-bitwise": (">=", 1.0, "fraction of programs with outputs equal to the run without spillover"),
    "bench.fits-overhead": (">=", 0.98, "ratio (decode time without spillover / with, model fits, graph mode)"),
    "bench.bigger-than-card": (">=", BIG_MIN_FACTOR, "ratio (model bytes / the card's physical VRAM bytes), counted only "
                               "when the run completed with no limit set and its output equals the reference's"),
}
BIG_RUN, BIG_REF = "lean/bigger-than-card-graph", "lean/bigger-than-card-reference"
# what the stats dir and logging need; any other SPILLOVER_ variable is a setting the run was given
HARNESS_ENV = ("SPILLOVER_LOG", "SPILLOVER_BROKER", "SPILLOVER_KEEP_STATS", "SPILLOVER_STATS_DIR")


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def smi_gpu():
    """name, driver, physical VRAM bytes of GPU 0, asked of nvidia-smi without the interposer
    (its own capacity numbers are larger than the card). PROVE_PHYSICAL_VRAM_BYTES overrides."""
    out = {"name": None, "driver": None, "physical_vram_bytes": None}
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=30, env=env)
        parts = [x.strip() for x in r.stdout.splitlines()[0].split(",")]
        out["name"], out["driver"] = parts[0], parts[1]
        out["physical_vram_bytes"] = int(float(parts[2])) << 20
    except Exception as e:
        out["error"] = f"nvidia-smi: {e}"
    override = env_bytes("PROVE_PHYSICAL_VRAM_BYTES")
    if override:
        out["physical_vram_bytes"] = override
    return out


class BadEnv(ValueError):
    pass


def env_bytes(name):
    """A byte count from the environment (None when unset); BadEnv names what is wrong."""
    v = os.environ.get(name)
    if not v:
        return None
    if not v.isdigit() or int(v) <= 0:
        raise BadEnv(f"{name}={v!r} is not a byte count (a positive integer); fix it or unset it")
    return int(v)


def card_slug(name):
    card = re.sub(r"[^a-z0-9]+", "-", (name or "unknown-gpu").lower()).strip("-")
    card = re.sub(r"^nvidia-", "", card) or "unknown-gpu"
    return re.sub(r"-\d+gb.*$", "", card) if card.startswith("h200") else card


def mem_available():
    """MemAvailable (bytes) that the bigger-than-card model is sized against;
    PROVE_MEM_AVAILABLE_BYTES overrides (to plan for another machine)."""
    override = env_bytes("PROVE_MEM_AVAILABLE_BYTES")
    if override:
        return override
    try:
        with open("/proc/meminfo") as f:
            m = re.search(r"MemAvailable:\s*(\d+) kB", f.read())
        return int(m.group(1)) * 1024 if m else None
    except OSError:
        return None


def git_commit():
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    if os.path.exists(os.path.join(ROOT, ".git")):
        try:
            r = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
            if r.returncode == 0 and r.stdout.strip():
                return r.stdout.strip()
        except Exception:
            pass
    return "unknown"


def big_config(phys, avail):
    """Layers of the bigger-than-card model: about BIG_FACTOR x the physical VRAM, and never more
    host memory than RAM allows (host share ~ model - physical VRAM)."""
    if not phys:
        return None, "the card's physical VRAM is unknown (nvidia-smi failed; set PROVE_PHYSICAL_VRAM_BYTES)"
    fixed = weight_bytes_of(layers=0, **BIG_CFG)
    per_layer = weight_bytes_of(layers=1, **BIG_CFG) - fixed
    for factor in (BIG_FACTOR, 1.11, BIG_MIN_FACTOR + 0.005):
        layers = max(1, round((factor * phys - fixed) / per_layer))
        while fixed + layers * per_layer < BIG_MIN_FACTOR * phys:
            layers += 1
        wb = fixed + layers * per_layer
        host = wb - 0.9 * phys  # generous: the interposer keeps some VRAM back
        if avail is None or host + HOST_RAM_SPARE <= avail:
            return dict(BIG_CFG, layers=layers, weight_bytes=wb, factor=round(wb / phys, 4)), None
    return None, (f"host RAM too small: a {BIG_MIN_FACTOR}x model needs about {host / 1e9:.1f} GB of host memory "
                  f"plus {HOST_RAM_SPARE / GIB:.0f} GiB spare, MemAvailable is {avail / 1e9:.1f} GB")


def plan(gpu, avail):
    """Every step: (part, workload dict for suite.run_workload plus est_s and the proof keys)."""
    steps = []
    spill_env = {}

    def add(part, wid, script, spec, timeout_s, est_s, spill=False, env=None, **kw):
        w = suite._w(wid, kw.pop("group", "placement"), script, spec, timeout_s, spill=spill, env=dict(env or {}),
                     est_s=est_s, **kw)
        w["part"] = part
        steps.append(w)
        return w

    for part in (1, 2):
        add(part, f"probe (part {part})", PROBE, {"bytes": GIB, "reps": 5}, 90, 12, group="probe", mode="probe")
        if part == 1:
            lw = weight_bytes_of(**LEAN_CFG)
            limit = int(SPILL_FRACTION * lw)
            base = dict(LEAN_CFG, phases="prefill,decode", reps=5, decode_tokens=4, warmup_s=3.0, seq_steps=8)
            lim_env = dict(spill_env, SPILLOVER_VRAM_LIMIT=str(limit))
            add(1, "lean/baseline-graph", LEAN, dict(base, mode="graph"), 150, 25, mode="baseline")
            add(1, "lean/spill60-graph", LEAN, dict(base, mode="graph"), 210, 60, spill=True, env=lim_env,
                mode="spillover", fraction=SPILL_FRACTION, vram_limit_bytes=limit)
            add(1, "lean/spill60-graph-migrate-off", LEAN, dict(base, mode="graph"), 210, 60, spill=True,
                env=dict(lim_env, SPILLOVER_MIGRATE="0"), mode="spillover", variant="migrate-off",
                fraction=SPILL_FRACTION, vram_limit_bytes=limit)
            add(1, "lean/spill-nolimit-graph", LEAN, dict(base, mode="graph"), 150, 30, spill=True, env=spill_env,
                mode="spillover", variant="no-limit")
            add(1, "lean/baseline-eager", LEAN, dict(base, mode="eager"), 150, 25, mode="baseline")
            add(1, "lean/spill60-eager", LEAN, dict(base, mode="eager"), 210, 60, spill=True, env=lim_env,
                mode="spillover", fraction=SPILL_FRACTION, vram_limit_bytes=limit)
        else:
            model = suite.MODELS_FULL["dense-8g"]
            reserve = suite.ALLOWANCE_FULL - suite.HEADROOM_FULL
            t = {"baseline": 150, "spillover": 180, "accelerate": 240}
            for lw_ in suite.llm_workloads("dense-8g", model, [1.0], [], suite.ALLOWANCE_FULL, reserve, False, t):
                if lw_["mode"] not in ("baseline", "spillover"):
                    continue
                lw_["spec"].update({"prompt_lens": [2048], "ttft_prompt": 512, "prefill_reps": 5, "decode_budget_s": 3.0,
                                    "decode_max_tokens": 16, "decode_reps_max": 3})
                lw_["script"] = "llm.py"
                lw_["est_s"] = 35 if lw_["mode"] == "baseline" else 45
                lw_["part"] = 2
                steps.append(lw_)
            jspec = {"case": "jax", "size_gib": JAX_GIB, "reps": 5}
            jlimit = int(JAX_FRACTION * JAX_GIB * GIB)
            nopre = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"}
            add(2, "jax/reference", CORPUS, jspec, 120, 25, env=nopre, group="jax", mode="reference")
            for name, env in (("prealloc-default", {}), ("prealloc-false", nopre)):
                add(2, f"jax/spillover-{name}", CORPUS, jspec, 150, 35, spill=True, group="jax", mode="spillover",
                    variant=name, vram_limit_bytes=jlimit, fraction=JAX_FRACTION,
                    env=dict(env, SPILLOVER_VRAM_LIMIT=str(jlimit), SPILLOVER_PINNED_LIMIT=PINNED_LIMIT_ARRAYS))
            bc, why = big_config(gpu.get("physical_vram_bytes"), avail)
            spec = dict(bc or BIG_CFG, mode="graph", phases="decode", reps=5, decode_tokens=2, warmup_reps=2,
                        warmup_s=2.0, decode_budget_s=40.0, seq_steps=3, decode_pos=128, seq_prompt=32, seq_eager=True)
            for k in ("weight_bytes", "factor"):
                spec.pop(k, None)
            if bc is None:
                spec["layers"] = 0
            # after dense-8g and JAX: if it runs long, cheaper proofs are already in. It took 31-36 s
            # on the H200 (12-16 s of it building 169 GB under the interposer); the eager copy of
            # its sequence (--seq-eager: a 32-token prefill and 3 steps at ~0.43 s) adds ~3 s
            w = add(2, BIG_RUN, LEAN, spec, 240, 70, spill=True, env=spill_env, mode="spillover", variant="no-limit")
            w["big"] = bc
            w["not_runnable"] = why
            # its output check, without spillover and without holding the model: the same spec in
            # --mode reference regenerates every weight once per forward (1 + seq_steps = 4 x ~169 GB
            # of normal_ draws, a few s each on the GPU) in ~4 GB of VRAM; ~10 s of start-up
            w = add(2, BIG_REF, LEAN, dict(spec, mode="reference"), 180, 45, mode="reference", variant="no-spillover")
            w["after"] = BIG_RUN
            w["not_runnable"] = why
        for case in CORPUS_CASES[part]:
            cenv = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"} if case == "jax" else {}
            spec = {"case": case, "size_gib": CORPUS_GIB, "reps": 3}
            add(part, f"corpus/{case}/reference", CORPUS, spec, 120, 12, env=cenv, group="corpus", mode="reference",
                variant=case)
            w = add(part, f"corpus/{case}/spillover", CORPUS, spec, 150, 15, spill=True, group="corpus",
                    mode="spillover", variant=case, fraction=CORPUS_FRACTION,
                    env=dict(cenv, SPILLOVER_PINNED_LIMIT=PINNED_LIMIT_ARRAYS))
            w["limit_from"] = f"corpus/{case}/reference"
    return steps


def not_run(w, why):
    e = {k: w.get(k) for k in ("id", "group", "model", "mode", "variant", "fraction", "vram_limit_bytes", "spec")}
    e.update({"spillover": w["spill"], "status": "not run", "error": why, "exit_code": None, "duration_s": 0.0,
              "timeout_s": 0, "metrics": None, "spill_stats": None, "vram_used_smi_mib": None, "env": {}})
    return e


def headline(e):
    """One line of what a finished step measured, for the progress output."""
    m = e.get("metrics") or {}
    if e["status"] != "ok":
        last = [x for x in (e.get("error") or "").splitlines() if x.strip()]
        return (last[-1] if last else "")[:160]
    if e["group"] == "probe":
        return f"h2d {m.get('h2d_pinned_gbps')} GB/s, vram read {m.get('vram_read_gbps')} GB/s"
    if "decode" in m or "prefill" in m:
        d, p = m.get("decode") or {}, m.get("prefill") or {}
        s = []
        if isinstance(p, dict) and "seconds" in p:
            s.append(f"prefill {p['seconds']['median'] * 1e3:.1f} ms")
        elif isinstance(p, dict) and "2048" in p:
            s.append(f"prefill2048 {p['2048'].get('tokens_per_s')} tok/s")
        if "ms_per_token" in d:
            s.append(f"decode {d['ms_per_token']['median']} ms/token, moved/step {d.get('pages_moved_per_step')}")
        elif "tokens_per_s" in d:
            s.append(f"decode {d['tokens_per_s']} tok/s")
        return ", ".join(s)
    if "hash" in m:
        f = m.get("forward_s")
        return f"hash {m['hash'][:16]} peak {m.get('peak_bytes')}" + (f", forward {f['median']:.4f} s" if f else "")
    return ""


def run_part(steps, a, started, budget, hard_cap, part_label):
    lib = os.path.abspath(a.lib)
    stats_dir = tempfile.mkdtemp(prefix="spillover-prove-stats-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    total = sum(w["est_s"] for w in steps)
    log(f"{part_label}: {len(steps)} steps, expected about {total:.0f} s of runs; start nothing after {budget:.0f} s, "
        f"all done by {hard_cap:.0f} s (from the start, build included)")
    for w in steps:
        log(f"  plan: {w['id']:<40} ~{w['est_s']:.0f} s (timeout {w['timeout_s']} s)")
    done = {}
    entries = []
    planned = {w["id"] for w in steps}
    with open(a.log, "a") as lf:
        lf.write(f"{a.command or 'prove.py'}: {part_label}, {len(steps)} steps, lib {lib}\n")
        for w in steps:
            elapsed = time.time() - started
            if elapsed >= budget:
                e = not_run(w, f"time budget spent ({elapsed:.0f} s of {budget:.0f} s)")
            elif elapsed + 0.6 * w["est_s"] > hard_cap:
                e = not_run(w, f"{hard_cap - elapsed:.0f} s left, it needs about {w['est_s']:.0f} s")
            elif w.get("not_runnable"):
                e = not_run(w, w["not_runnable"])
            elif w.get("after") in planned and (done.get(w["after"]) or {}).get("status") != "ok":
                # a check of a run that did not complete checks nothing (alone, with --only, it runs)
                e = not_run(w, f"{w['after']} did not complete ({(done.get(w['after']) or {}).get('status', 'not run')}): "
                            "nothing to check")
            else:
                if w.get("limit_from"):
                    ref = done.get(w["limit_from"])
                    peak = ((ref or {}).get("metrics") or {}).get("peak_bytes")
                    if not peak:
                        peak = int(w.get("peak_fallback") or w["spec"].get("size_gib", CORPUS_GIB) * GIB)
                        w["limit_basis"] = "declared size (the reference run reported no peak)"
                    else:
                        w["limit_basis"] = f"peak of {w['limit_from']}"
                    limit = max(256 << 20, int((w.get("fraction") or CORPUS_FRACTION) * peak))
                    w["vram_limit_bytes"] = limit
                    w["env"]["SPILLOVER_VRAM_LIMIT"] = str(limit)
                timeout = max(5.0, min(w["timeout_s"], hard_cap - elapsed))
                log(f"{w['id']}: expected ~{w['est_s']:.0f} s, timeout {timeout:.0f} s, elapsed {elapsed:.0f} s")
                e = suite.run_workload(w, lib, stats_dir, lf, timeout)
            e["part"] = part_label
            e["est_s"] = w["est_s"]
            for k in ("limit_basis", "big"):
                if w.get(k) is not None:
                    e[k] = w[k]
            e["vram_limit_bytes"] = w.get("vram_limit_bytes")
            e["env_set"] = {k: v for k, v in w["env"].items()}
            done[w["id"]] = e
            entries.append(e)
            log(f"    -> {e['status']} in {e['duration_s']} s: {headline(e)}")
    shutil.rmtree(stats_dir, ignore_errors=True)
    return entries


# ---- proofs -------------------------------------------------------------------------------

def proof(pid, measured, ok, detail):
    op, target, unit = TARGETS[pid]
    passed = False
    if ok and measured is not None and not (isinstance(measured, float) and math.isnan(measured)):
        passed = measured >= target if op == ">=" else measured <= target
    return {"id": pid, "measured": None if measured is None else round(measured, 4), "target": f"{op} {target}",
            "unit": unit, "pass": bool(passed), "detail": detail}


def ok_entry(by_id, sid):
    e = by_id.get(sid)
    if e is None:
        return None, f"{sid}: no such run in these results"
    if e["status"] != "ok":
        last = [x for x in (e.get("error") or "").splitlines() if x.strip()]
        return None, f"{sid}: {e['status']} ({(last[-1] if last else 'no output')[:200]})"
    return e, None


def bandwidth_of(entries, part):
    for e in entries:
        if e["group"] == "probe" and e["status"] == "ok" and e.get("part") == part:
            m = e["metrics"]
            if m.get("h2d_pinned_gbps") and m.get("vram_read_gbps"):
                return {"h2d_pinned_gbps": m["h2d_pinned_gbps"], "vram_read_gbps": m["vram_read_gbps"]}
    return None


def decode_s(e):
    return e["metrics"]["decode"]["ms_per_token"]["median"] / 1e3


def decode_spread(e):
    d = e["metrics"]["decode"]["ms_per_token"]
    return f"{d['median']} ms/token (min {d['min']}, max {d['max']}, {e['metrics']['decode']['reps']} reps x {e['metrics']['decode']['tokens_per_rep']} tokens)"


def bound_of(e, entries):
    """(ratio, detail) of a decode run against its bound, from the stats record after its timed
    decode and the bandwidths measured by the probe of the same part. The bound also comes from
    the bytes one step reads (the weights' and KV cache's pages located one by one); the proof
    takes the smaller ratio of the two, so memory that no decode step reads never eases it."""
    bw = bandwidth_of(entries, e.get("part"))
    if not bw:
        return None, f"no probe bandwidth measured in {e.get('part')}"
    m = e["metrics"]
    st = m.get("stats_after_decode") or e.get("spill_stats")
    if not st:
        return None, "no stats record (was the interposer loaded?)"
    h2d, hbm = bw["h2d_pinned_gbps"] * 1e9, bw["vram_read_gbps"] * 1e9
    host = st["tier_pinned_bytes"]
    vram = st["tier_vram_bytes"] + st["passthrough_bytes"]
    t = decode_s(e)
    b_stats = host / h2d + vram / hbm
    parts = [f"decode {decode_spread(e)}; mode {m.get('mode_effective')}",
             f"stats record after the timed decode: host {host / 1e9:.3f} GB, VRAM {vram / 1e9:.3f} GB "
             f"(tiered {st['tier_vram_bytes'] / 1e9:.3f} + passthrough {st['passthrough_bytes'] / 1e9:.3f}); "
             f"limit {st['vram_limit'] / 1e9:.3f} GB, reserve {st['vram_reserve'] / 1e9:.3f} GB",
             f"probe: pinned H2D {bw['h2d_pinned_gbps']} GB/s, VRAM read {bw['vram_read_gbps']} GB/s",
             f"bound from the stats record {b_stats * 1e3:.2f} ms -> ratio {b_stats / t:.3f}"]
    ratio = b_stats / t
    rd = m.get("decode_read")
    pg = m.get("pages_after_decode") or m.get("pages") or {}
    seen_host = sum((pg.get(k) or {}).get("host_bytes", 0) for k in ("weights", "kv", "other_segments"))
    if rd and host > GIB and seen_host == 0:
        # the stats record has host pages but the driver's answer shows none: the locator cannot
        # see through the interposer's handles, so its per-step bytes say nothing
        parts.append(f"page sample found no host page while the stats record has {host / 1e9:.3f} GB in host: "
                     "the per-step bound is not used")
        rd = None
    if rd:
        b_read = rd["host_bytes"] / h2d + rd["vram_bytes"] / hbm
        parts.append(f"bytes one step reads (page-located weights + KV): host {rd['host_bytes'] / 1e9:.3f} GB, "
                     f"VRAM {rd['vram_bytes'] / 1e9:.3f} GB, bound {b_read * 1e3:.2f} ms -> ratio {b_read / t:.3f}")
        ratio = min(ratio, b_read / t)
    if "weights" in pg:
        parts.append(f"page sample after the timed decode: weights in host {pg['weights']['host_bytes'] / 1e9:.3f} of "
                     f"{pg['weights']['bytes'] / 1e9:.3f} GB, KV in host {pg['kv']['host_bytes'] / 1e6:.1f} of "
                     f"{pg['kv']['bytes'] / 1e6:.1f} MB, other segments (activations, graph pools, workspaces) in host "
                     f"{pg['other_segments']['host_bytes'] / 1e6:.1f} of {pg['other_segments']['bytes'] / 1e6:.1f} MB")
    if host == 0:
        parts.append("nothing was in host memory: the run did not spill")
    return ratio, "; ".join(parts)


def same_sequence(by_id, a, b):
    ea, eb = by_id.get(a), by_id.get(b)
    if not ea or not eb or ea["status"] != "ok" or eb["status"] != "ok":
        return "not compared (a run is missing)"
    ha = ea["metrics"]["sequence"]["final_logits_sha256"]
    hb = eb["metrics"]["sequence"]["final_logits_sha256"]
    return ("bitwise equal" if ha == hb else "DIFFERENT") + f" final logits vs {b} ({ha[:12]} / {hb[:12]})"


def compute_proofs(entries, physical):
    by_id = {e["id"]: e for e in entries}
    out = []

    # placement.graph-decode-vs-bound
    e, why = ok_entry(by_id, "lean/spill60-graph")
    if e:
        ratio, det = bound_of(e, entries)
        graph = e["metrics"].get("mode_effective") == "graph" and "decode" in e["metrics"].get("graphs", [])
        det = (f"lean decoder {e['metrics']['weight_bytes'] / 1e9:.2f} GB bf16, limit {SPILL_FRACTION:.0%} of the weights; "
               + det + "; " + same_sequence(by_id, "lean/spill60-graph", "lean/baseline-graph"))
        if not graph:
            det = "decode was not captured as a graph; " + det
        out.append(proof("placement.graph-decode-vs-bound", ratio, graph and ratio is not None, det))
    else:
        out.append(proof("placement.graph-decode-vs-bound", None, False, why))

    # placement.bigger-than-card
    e, why = ok_entry(by_id, BIG_RUN)
    if e:
        ratio, det = bound_of(e, entries)
        wb = e["metrics"]["weight_bytes"]
        phys = physical or (e.get("big") or {}).get("physical")
        factor = wb / phys if phys else None
        nolimit = "SPILLOVER_VRAM_LIMIT" not in (e.get("env") or {})
        det = (f"model {wb / 1e9:.2f} GB = {factor:.3f}x the card's physical VRAM ({phys / 1e9:.2f} GB); "
               if factor else f"model {wb / 1e9:.2f} GB, physical VRAM unknown; ") + (
            "no SPILLOVER_VRAM_LIMIT; " if nolimit else "a VRAM limit was set (not what the proof asks); ") + det
        if e["metrics"].get("capture_decode_error"):
            det += f"; graph capture failed, eager: {e['metrics']['capture_decode_error'][:300]}"
        out.append(proof("placement.bigger-than-card", ratio,
                         ratio is not None and factor is not None and factor >= BIG_MIN_FACTOR and nolimit, det))
    else:
        out.append(proof("placement.bigger-than-card", None, False, why))

    # placement.migrate-on-vs-off
    on, w1 = ok_entry(by_id, "lean/spill60-graph")
    off, w2 = ok_entry(by_id, "lean/spill60-graph-migrate-off")
    if on and off:
        r = decode_s(off) / decode_s(on)
        modes = {on["metrics"].get("mode_effective"), off["metrics"].get("mode_effective")}
        out.append(proof("placement.migrate-on-vs-off", r, modes == {"graph"},
                         ("" if modes == {"graph"} else f"not both graph-captured ({sorted(map(str, modes))}); ")
                         + f"graph decode, limit {SPILL_FRACTION:.0%} of the weights: migration off {decode_spread(off)}, "
                         f"on {decode_spread(on)}; " + same_sequence(by_id, "lean/spill60-graph-migrate-off", "lean/baseline-graph")))
    else:
        out.append(proof("placement.migrate-on-vs-off", None, False, "; ".join(x for x in (w1, w2) if x)))

    # placement.jax-prealloc
    d, w1 = ok_entry(by_id, "jax/spillover-prealloc-default")
    f, w2 = ok_entry(by_id, "jax/spillover-prealloc-false")
    ref, w3 = ok_entry(by_id, "jax/reference")
    if d and f:
        td, tf = d["metrics"]["forward_s"]["median"], f["metrics"]["forward_s"]["median"]
        hashes = {"default": d["metrics"]["hash"], "false": f["metrics"]["hash"]}
        if ref:
            hashes["no spillover"] = ref["metrics"]["hash"]
        equal = len(set(hashes.values())) == 1
        det = (f"{d['metrics']['arrays_bytes'] / 1e9:.2f} GB of arrays, limit {JAX_FRACTION:.0%} of them; forward median of "
               f"{len(d['metrics']['forward_s']['all'])}: default {td:.4f} s (min {d['metrics']['forward_s']['min']:.4f}, max "
               f"{d['metrics']['forward_s']['max']:.4f}), XLA_PYTHON_CLIENT_PREALLOCATE=false {tf:.4f} s (min "
               f"{f['metrics']['forward_s']['min']:.4f}, max {f['metrics']['forward_s']['max']:.4f})")
        if ref:
            det += f", without spillover {ref['metrics']['forward_s']['median']:.4f} s"
        det += "; results " + ("equal" if equal else "DIFFERENT: " + json.dumps({k: v[:12] for k, v in hashes.items()}))
        if not ref:
            det += f" (no reference: {w3})"
        out.append(proof("placement.jax-prealloc", td / tf, equal, det))
    else:
        out.append(proof("placement.jax-prealloc", None, False, "; ".join(x for x in (w1, w2) if x)))

    # placement.fits-prefill
    b, w1 = ok_entry(by_id, "dense-8g/baseline")
    s, w2 = ok_entry(by_id, "dense-8g/spillover-100")
    if b and s:
        pb, ps = b["metrics"]["prefill"]["2048"], s["metrics"]["prefill"]["2048"]
        st = s.get("spill_stats") or {}
        det = (f"dense-8g (HF Llama, {b['metrics']['facts']['weight_bytes'] / 1e9:.2f} GB) prefill 2048, median of "
               f"{len(pb['all_seconds']) - 1}: without spillover {pb['tokens_per_s']} tok/s {pb['all_seconds']}, "
               f"spillover at limit {s['vram_limit_bytes'] / 1e9:.2f} GB {ps['tokens_per_s']} tok/s {ps['all_seconds']}; "
               f"host bytes at exit {st.get('tier_pinned_bytes')}, pinned peak {st.get('tier_pinned_peak')}")
        out.append(proof("placement.fits-prefill", ps["tokens_per_s"] / pb["tokens_per_s"], True, det))
    else:
        out.append(proof("placement.fits-prefill", None, False, "; ".join(x for x in (w1, w2) if x)))

    # placement.steady-moves
    lean_runs = ["lean/spill60-graph", "lean/spill60-eager", "lean/spill60-graph-migrate-off", "lean/spill-nolimit-graph",
                 BIG_RUN]
    required = {"lean/spill60-graph", "lean/spill60-eager", "dense-8g/spillover-100"}
    vals, notes, missing = [], [], []
    for sid in lean_runs:
        e, why = ok_entry(by_id, sid)
        v = ((e or {}).get("metrics") or {}).get("decode", {}).get("pages_moved_per_step") if e else None
        if v is None:
            missing.append(sid)
            notes.append(f"{sid}: {why or 'no stats record'}")
        else:
            vals.append(v)
            d = e["metrics"]["decode"]
            notes.append(f"{sid}: {v:.3f} ({d.get('migrations_timed')} pages in {d['reps'] * d['tokens_per_rep']} timed steps, "
                         f"{d.get('migrations_warmup')} during warm-up)")
    e, why = ok_entry(by_id, "dense-8g/spillover-100")
    dec = ((e or {}).get("metrics") or {}).get("decode") or {}
    runs = dec.get("runs") or []
    if e and runs and all(r.get("migrations") is not None for r in runs):
        steps = max(1, int(dec["new_tokens"]) - 1) * len(runs)
        moved = sum(r["migrations"] for r in runs)
        v = moved / steps
        vals.append(v)
        notes.append(f"dense-8g/spillover-100: {v:.3f} ({moved} pages in {steps} timed decode steps of the static-cache "
                     f"loop after warm-up; per run {[r['migrations'] for r in runs]})")
    else:
        missing.append("dense-8g/spillover-100")
        notes.append(f"dense-8g/spillover-100: {why or 'no migration counts'}")
    worst = max(vals) if vals else None
    lacking = sorted(required & set(missing))
    det = "; ".join(notes) + (f"; required runs missing: {lacking}" if lacking else "") + "; no MoE run in this proof"
    out.append(proof("placement.steady-moves", worst, not lacking and worst is not None, det))

    # placement.corpus-bitwise
    cases = [c for p in (1, 2) for c in CORPUS_CASES[p]]
    good, notes = 0, []
    for c in cases:
        r, w1 = ok_entry(by_id, f"corpus/{c}/reference")
        s, w2 = ok_entry(by_id, f"corpus/{c}/spillover")
        if r and s:
            eq = r["metrics"]["hash"] == s["metrics"]["hash"]
            good += eq
            st = s.get("spill_stats") or {}
            peak_host = st.get("tier_pinned_peak")
            notes.append(f"{c}: {'equal' if eq else 'DIFFERENT'} (limit {s.get('vram_limit_bytes')} = "
                         f"{CORPUS_FRACTION:.0%} of {s.get('limit_basis')}, host peak {peak_host}"
                         + (", NOTHING SPILLED" if not peak_host else "") + ")")
        else:
            notes.append(f"{c}: not compared ({'; '.join(x for x in (w1, w2) if x)})")
    out.append(proof("placement.corpus-bitwise", good / len(cases), True, f"{good} of {len(cases)}: " + "; ".join(notes)))

    bench_big = bigger_than_card(by_id, physical)

    # bench.fits-overhead (its own record)
    b, w1 = ok_entry(by_id, "lean/baseline-graph")
    s, w2 = ok_entry(by_id, "lean/spill-nolimit-graph")
    if b and s:
        st = s.get("spill_stats") or {}
        bench = [proof("bench.fits-overhead", decode_s(b) / decode_s(s), True,
                       f"lean decoder {b['metrics']['weight_bytes'] / 1e9:.2f} GB in VRAM, graph decode: without spillover "
                       f"{decode_spread(b)}, spillover without a limit {decode_spread(s)}; host bytes "
                       f"{st.get('tier_pinned_bytes')}; prefill without / with: "
                       f"{b['metrics']['prefill']['seconds']['median'] * 1e3:.2f} / {s['metrics']['prefill']['seconds']['median'] * 1e3:.2f} ms; "
                       + same_sequence(by_id, "lean/spill-nolimit-graph", "lean/baseline-graph"))]
    else:
        bench = [proof("bench.fits-overhead", None, False, "; ".join(x for x in (w1, w2) if x))]
    return out, bench + [bench_big]


def gb(n):
    return "?" if n is None else f"{n / 1e9:.2f} GB"


def bigger_than_card(by_id, physical):
    """bench.bigger-than-card: the model of BIG_RUN over the card's physical VRAM, counted only
    when that run completed under spillover's defaults (no SPILLOVER_ setting beyond the
    harness's) and every sequence it hashed (graph replays and the eager copy) equals BIG_REF's,
    computed without spillover and without holding the model; the detail says what the defaults
    chose, from the run's stats record."""
    e, why = ok_entry(by_id, BIG_RUN)
    if not e:
        return proof("bench.bigger-than-card", None, False, why)
    m = e["metrics"]
    wb = m["weight_bytes"]
    factor = wb / physical if physical else None
    notes = [f"model {wb / 1e9:.2f} GB (bf16, {m['config'].get('layers')} layers, hidden {m['config'].get('hidden')}) = "
             + (f"{factor:.3f}x the card's physical VRAM ({physical / 1e9:.2f} GB, nvidia-smi)" if factor
                else "physical VRAM unknown")]
    ok = factor is not None
    settings = {k: v for k, v in (e.get("env") or {}).items() if k.startswith("SPILLOVER_") and k not in HARNESS_ENV}
    if settings:
        ok = False
        notes.append(f"NOT spillover's defaults: the run set {settings}")
    else:
        notes.append("no SPILLOVER_VRAM_LIMIT or other setting (only " + ", ".join(HARNESS_ENV) + ")")
    # the timed decode's record (the eager copy of the sequence runs after it); the exit record
    # for what the whole run reached
    st = m.get("stats_after_decode") or e.get("spill_stats") or {}
    ex = e.get("spill_stats") or st
    if st:
        notes.append(f"spillover's defaults chose: VRAM limit {gb(st.get('vram_limit'))} of {gb(st.get('vram_physical'))} "
                     f"physical, reserve {gb(st.get('vram_reserve'))}, pinned limit {gb(st.get('pinned_limit'))}; "
                     f"{'after the timed decode' if m.get('stats_after_decode') else 'at exit'}: host (pinned) "
                     f"{gb(st.get('tier_pinned_bytes'))}, VRAM {gb(st.get('tier_vram_bytes'))} tiered + "
                     f"{gb(st.get('passthrough_bytes'))} passthrough; whole run: host peak {gb(ex.get('tier_pinned_peak'))}, "
                     f"{ex.get('migrations')} migrations; the program was told {gb(st.get('reported_total'))} of VRAM")
    else:
        notes.append("no stats record (was the interposer loaded?)")
    d = m.get("decode") or {}
    if d.get("ms_per_token"):
        notes.append(f"{m.get('mode_effective')} decode {decode_spread(e)}")
    runs = {}
    seq = m.get("sequence") or {}
    if seq.get("final_logits_sha256"):
        runs["graph replays" if seq.get("graph_steps") else "eager"] = seq
    if (m.get("sequence_eager") or {}).get("final_logits_sha256"):
        runs["eager"] = m["sequence_eager"]
    r, why_r = ok_entry(by_id, BIG_REF)
    if not runs:
        ok = False
        notes.append("the run hashed no sequence")
    elif not r:
        ok = False
        notes.append(f"output not checked: {why_r}")
    else:
        rm = r["metrics"]
        ref = rm["sequence"]
        same_model = (rm.get("weight_bytes") == wb and rm.get("max_seq") == m.get("max_seq")
                      and (ref["prompt_tokens"], ref["steps"]) == (seq.get("prompt_tokens"), seq.get("steps")))
        rr = rm.get("reference") or {}
        desc = (f"reference without spillover ({rr.get('forwards')} forwards regenerating the weights layer by layer, "
                f"{(rr.get('generated_bytes') or 0) / 1e9:.0f} GB drawn in {rr.get('seconds')} s, peak allocated "
                f"{gb(rr.get('peak_allocated_bytes'))}): tokens {ref['tokens']}, logits {ref['final_logits_sha256'][:12]}")
        if r.get("spillover"):
            ok = False
            desc += "; it ran UNDER spillover (it must not)"
        if not same_model:
            ok = False
            desc += (f"; NOT the same model and sequence (weights {rm.get('weight_bytes')} vs {wb}, max_seq "
                     f"{rm.get('max_seq')} vs {m.get('max_seq')})")
        notes.append(desc)
        for name, sq in runs.items():
            eq = sq["final_logits_sha256"] == ref["final_logits_sha256"]
            ok = ok and eq
            notes.append(f"run's {name}: tokens {sq['tokens']}, logits {sq['final_logits_sha256'][:12]}: "
                         + ("bitwise EQUAL to the reference" if eq else "DIFFERENT from the reference"))
        if "eager" not in runs:
            notes.append("the run has no eager sequence (lean_decoder --seq-eager true), so only its graph replays "
                         "were compared with the reference's eager path")
    return proof("bench.bigger-than-card", factor, ok, "; ".join(notes))


def write_records(results, out_dir, command):
    """The two proof records (and the merged results) into out_dir; returns their paths."""
    proofs, bench = compute_proofs(results["steps"], results.get("gpu", {}).get("physical_vram_bytes"))
    card = results["card"]
    day = results["date"]
    os.makedirs(out_dir, exist_ok=True)
    paths = []
    for topic, items in (("placement", proofs), ("bench", bench)):
        rec = {"card": card, "driver": results["gpu"].get("driver"), "commit": results["commit"], "date": day,
               "command": command, "proofs": items}
        p = os.path.join(out_dir, f"{topic}-{card}-{day}.json")
        with open(p, "w") as f:
            json.dump(rec, f, indent=1)
            f.write("\n")
        paths.append(p)
    for pr in proofs + bench:
        print(f"{'PASS' if pr['pass'] else 'FAIL'}  {pr['id']:<36} {pr['measured']!s:<10} {pr['target']:<8} {pr['detail'][:200]}",
              flush=True)
    return paths


def merge_main(files, out_dir, commit):
    try:
        parts = []
        for f in files:
            with open(f) as fh:
                p = json.load(fh)
            if p.get("schema") != SCHEMA:
                raise ValueError(f"{f} is not a {SCHEMA} file (schema {p.get('schema')!r})")
            parts.append(p)
        if not parts:
            raise ValueError("nothing to merge")
        cards = {p["card"] for p in parts}
        if len(cards) > 1:
            raise ValueError(f"parts come from different cards: {sorted(cards)}")
    except (OSError, ValueError, KeyError) as e:
        print(f"prove.py --merge: {e}", file=sys.stderr)
        return 1
    merged = dict(parts[0])
    steps = []
    for p in parts:
        steps += p["steps"]
    commits = sorted({p["commit"] for p in parts if p.get("commit") and p["commit"] != "unknown"})
    merged.update({"steps": steps, "part": None, "parts": [{k: p.get(k) for k in ("part", "created_utc", "duration_s", "command",
                                                                                  "bandwidth", "commit")} for p in parts],
                   "commit": commit or (" / ".join(commits) if commits else "unknown"),
                   "command": " ; ".join(p["command"] for p in parts) + " ; python3 bench/placement/prove.py --merge "
                   + " ".join(os.path.basename(f) for f in files),
                   "duration_s": round(sum(p["duration_s"] for p in parts), 1)})
    merged.pop("proofs_partial", None)
    os.makedirs(out_dir, exist_ok=True)
    full = os.path.join(out_dir, f"placement-results-{merged['card']}-{merged['date']}.json")
    with open(full, "w") as fh:
        json.dump(merged, fh, indent=1)
        fh.write("\n")
    paths = write_records(merged, out_dir, merged["command"])
    print("wrote " + ", ".join([full] + paths))
    return 0


def main():
    ap = argparse.ArgumentParser(description="issue 9's GPU proofs (placement)")
    ap.add_argument("--part", default=None, metavar="K/2", help="run part 1/2 or 2/2 (each < 9.5 min with the build)")
    ap.add_argument("--only", default=None, metavar="NAME[,NAME]", help="run only steps whose id contains one of these (the probe always runs)")
    ap.add_argument("--list", action="store_true", help="print the plan with expected seconds and exit")
    ap.add_argument("--merge", nargs="+", default=None, metavar="FILE", help="assemble the proof records from part results")
    ap.add_argument("--commit", default=None, help="with --merge: the commit to record (default: the parts')")
    ap.add_argument("--lib", default=os.path.join(ROOT, "native", "build", "libspillover.so"))
    ap.add_argument("--results-dir", default=os.path.join(BENCH, "results", "proofs"))
    ap.add_argument("--log", default=None, help="combined log of every run (default: next to the results)")
    ap.add_argument("--started-at", type=float, default=None, help="epoch seconds the call began (run.sh: before the build)")
    ap.add_argument("--budget-s", type=float, default=None, help="start no step after this many seconds (part: 480)")
    ap.add_argument("--hard-cap-s", type=float, default=None, help="every step ends by this (part: 550)")
    ap.add_argument("--command", default=None, help="the command line to record")
    a = ap.parse_args()
    if a.merge:
        return merge_main(a.merge, a.results_dir, a.commit)
    part = None
    if a.part:
        m = re.fullmatch(r"([12])/2", a.part)
        if not m:
            print(f"prove.py: --part {a.part!r} is not 1/2 or 2/2", file=sys.stderr)
            return 2
        part = int(m.group(1))
    started = a.started_at or time.time()
    try:
        gpu = smi_gpu()
        avail = mem_available()
    except BadEnv as e:
        print(f"prove.py: {e}", file=sys.stderr)
        return 2
    steps = plan(gpu, avail)
    if part:
        steps = [w for w in steps if w["part"] == part]
    else:  # one go: one probe is enough for both halves
        steps = [w for w in steps if not (w["group"] == "probe" and w["part"] == 2)]
    if a.only:
        names = [x for x in a.only.split(",") if x]
        steps = [w for w in steps if w["group"] == "probe" or any(n in w["id"] for n in names)]
    if a.list:
        for w in steps:
            print(json.dumps({"id": w["id"], "part": w["part"], "est_s": w["est_s"], "timeout_s": w["timeout_s"],
                              "spill": w["spill"], "env": w["env"], "spec": w["spec"],
                              **({"after": w["after"]} if w.get("after") else {}),
                              **({"big": w.get("big"), "not_runnable": w.get("not_runnable")} if "big" in w else {})}))
        print(f"expected {sum(w['est_s'] for w in steps):.0f} s of runs")
        return 0
    budget = a.budget_s if a.budget_s is not None else (480.0 if part else 900.0)
    hard_cap = a.hard_cap_s if a.hard_cap_s is not None else (550.0 if part else 1000.0)
    part_label = f"part {part}/2" if part else "all"
    # a one-go run labels every step "all": the bounds then use its one probe
    for w in steps:
        w["part"] = part_label
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    card = card_slug(gpu.get("name"))
    os.makedirs(a.results_dir, exist_ok=True)
    if not a.log:
        a.log = os.path.join(a.results_dir, f"placement-{card}-{day}{'-part%d' % part if part else ''}.log")
    log(f"GPU {gpu.get('name')} driver {gpu.get('driver')}, physical VRAM {gpu.get('physical_vram_bytes')}, "
        f"MemAvailable {avail}, lib {a.lib} ({'present' if os.path.exists(a.lib) else 'MISSING'})")
    entries = run_part(steps, a, started, budget, hard_cap, part_label)
    logs_tail = ""
    try:
        with open(a.log, errors="replace") as f:
            logs_tail = f.read()[-12000:]
    except OSError:
        pass
    results = {
        "schema": SCHEMA, "card": card, "date": day, "gpu": gpu, "mem_available_bytes": avail,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(), "command": a.command or " ".join(["python3"] + sys.argv),
        "part": part_label, "versions": suite.versions(), "bandwidth": bandwidth_of(entries, part_label),
        "lib": {"path": os.path.abspath(a.lib), "present": os.path.exists(a.lib)},
        "budget_s": budget, "hard_cap_s": hard_cap, "duration_s": round(time.time() - started, 1),
        "steps": entries, "logs_tail": logs_tail,
    }
    proofs, bench = compute_proofs(entries, gpu.get("physical_vram_bytes"))
    results["proofs_partial"] = proofs + bench  # this part's view; --merge computes the records
    name = f"placement-results-{card}-{day}{'-part%dof2' % part if part else ''}.json"
    path = os.path.join(a.results_dir, name)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    written = [path]
    if not part:
        written += write_records(results, a.results_dir, results["command"])
    else:
        for pr in proofs + bench:
            if "not run" in pr["detail"] or "no such run" in pr["detail"]:
                continue
            print(f"(this part) {'PASS' if pr['pass'] else 'FAIL'}  {pr['id']:<36} {pr['measured']!s:<10} {pr['detail'][:240]}",
                  flush=True)
    out_dir = os.environ.get("OUT")
    if out_dir and os.path.isdir(out_dir):
        for p in written:
            shutil.copy(p, os.path.join(out_dir, os.path.basename(p)))
    log(f"results: {', '.join(written)}; log {a.log}; {results['duration_s']} s since the start")
    return 0


if __name__ == "__main__":
    sys.exit(main())

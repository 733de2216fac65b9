"""prove.py: the GPU proofs of issue 10 (the streaming engine). Every measurement runs in its own
process through bench/placement/prove.py's run_part (a crash, OOM or hang is recorded with its
output tail and the rest goes on; a deadline stops starting steps and cuts timeouts), then the
proof record is computed:

  bench/results/proofs/stream-<card>-<date>.json
    {card, driver, commit, date, command, proofs: [{id, measured, target, unit, pass, detail}]}

A failed, timed-out or not-run measurement is a proof with measured null, pass false and the
reason; a missed target is pass false with the numbers that explain it (the stats record's
streaming block: staged bytes, late stages, copy-engine busy time, write-backs, fallbacks).

One GPU call may last 10 minutes, so the runs come in two parts (bench/stream/run.sh builds the
interposer and calls this; see bench/README.md, "Streaming engine proofs"):
  python3 bench/stream/prove.py --part 1/2    probe, lean decoder (all in VRAM, 60/30/10% limits,
                                              engine on and off), hand-written streaming, corpus
  python3 bench/stream/prove.py --part 2/2    probe, HF dense-8g prefill (spillover and accelerate at
                                              75/50/25%), ~1.1B fp32 Llama AdamW training, corpus,
                                              then dense-20g while time remains
  python3 bench/stream/prove.py --merge A.json B.json   (any machine, python3 only)
  python3 bench/stream/prove.py --list [--part K/2]     the plan with expected seconds (--dry-run too)
Each part writes stream-results-<card>-<date>-partKof2.json (every raw number, the log's tail)
into --results-dir and $OUT. Spillover steps set SPILLOVER_STREAM=1 or =0 explicitly (the same
script runs the engine on and off); --spill-env KEY=VALUE adds a setting to every spillover step
(for example SPILLOVER_STREAM_BUDGET=40%). Standard library only."""

import argparse
import datetime
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the working tree (it is copied to the GPU machine)
HERE = os.path.dirname(os.path.abspath(__file__))
BENCH = os.path.dirname(HERE)
ROOT = os.path.dirname(BENCH)


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


# issue 9's orchestration (run_part, not_run, ok_entry, smi_gpu, card_slug, git_commit, LEAN_CFG);
# loaded by path because this file is a prove.py too
pp = _load("placement_prove", os.path.join(BENCH, "placement", "prove.py"))
suite = pp.suite
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(BENCH, "workloads"))
import common  # noqa: E402  (stream_delta: the streaming engine's counters between two records)
from training import DEFAULTS as TRAIN_DEFAULTS  # noqa: E402
from training import params_of  # noqa: E402

SCHEMA = "spillover-stream-results/1"
GIB = 1 << 30
PAGE = 2 << 20
LEAN = pp.LEAN
HANDWRITTEN = os.path.join(HERE, "handwritten.py")
TRAINING = os.path.join(HERE, "training.py")
CORPUS = pp.CORPUS
LEAN_CFG = pp.LEAN_CFG
LEAN_FRACTIONS = (0.60, 0.30, 0.10)
DECODE_FRACTION = 0.30
HF_FRACTIONS = (0.75, 0.50, 0.25)
HF_MODELS = ("dense-8g", "dense-20g")
TRAIN_FRACTION = 0.40
ACCEL_MIN_OFFLOAD = 1e9  # stream.over-accelerate counts points where accelerate keeps >= 1 GB off the GPU
CORPUS_CASES = pp.CORPUS_CASES
TARGETS = {  # issue 10's table
    "stream.lean-prefill-60": (">=", 0.8, "ratio (bound B / measured prefill 2048 time), limit 60% of the weights"),
    "stream.lean-prefill-30": (">=", 0.8, "ratio (bound B / measured prefill 2048 time), limit 30% of the weights"),
    "stream.lean-prefill-10": (">=", 0.8, "ratio (bound B / measured prefill 2048 time), limit 10% of the weights"),
    "stream.beats-handwritten": (">=", 1.0, "ratio (hand-written streaming time, all in host / spillover at 10% time)"),
    "stream.hf-prefill": (">=", 0.8, "ratio (copy bound / measured prefill 2048 time), worst point"),
    "stream.over-accelerate": (">=", 3.0, "ratio (spillover prefill tok/s / accelerate's), worst point"),
    "stream.training": (">=", 0.67, "ratio (link bound / measured AdamW step time)"),
    "stream.decode-no-worse": ("<=", 1.03, "ratio (decode time engine on / engine off), worst mode"),
    "stream.bitwise": (">=", 1.0, "fraction of programs with outputs equal to the run without spillover"),
}
log = pp.log
ok = pp.ok_entry  # (entry, None) when the step ran to the end, else (None, why)


def pct(f):
    return int(round(f * 100))


def lean_bytes():
    return pp.weight_bytes_of(**LEAN_CFG)


def hf_limit(model, f):
    """The suite's limit for a fraction of an HF model's weights: f x weights + the allowance."""
    return int(f * suite.predicted_weight_bytes(model)) + suite.ALLOWANCE_FULL


def plan(spill_env=None):
    """Every step: a bench/suite.py workload dict plus part, est_s and what the proofs need."""
    steps = []
    extra = dict(spill_env or {})

    def add(part, wid, script, spec, timeout_s, est_s, spill=False, env=None, **kw):
        env = dict(env or {})
        if spill:
            env = dict(extra, **env)
        w = suite._w(wid, kw.pop("group", "stream"), script, spec, timeout_s, spill=spill, env=env, est_s=round(est_s, 1),
                     **kw)
        w["part"] = part
        steps.append(w)
        return w

    def on(limit, stream="1"):
        return {"SPILLOVER_VRAM_LIMIT": str(limit), "SPILLOVER_STREAM": stream}

    def corpus(part):
        for case in CORPUS_CASES[part]:
            cenv = {"XLA_PYTHON_CLIENT_PREALLOCATE": "false"} if case == "jax" else {}
            spec = {"case": case, "size_gib": pp.CORPUS_GIB, "reps": 3}
            add(part, f"corpus/{case}/reference", CORPUS, spec, 120, 12, env=cenv, group="corpus", mode="reference",
                variant=case)
            w = add(part, f"corpus/{case}/spillover", CORPUS, spec, 150, 15, spill=True, group="corpus",
                    mode="spillover", variant=case, fraction=pp.CORPUS_FRACTION,
                    env=dict(cenv, SPILLOVER_PINNED_LIMIT=pp.PINNED_LIMIT_ARRAYS, SPILLOVER_STREAM="1"))
            w["limit_from"] = f"corpus/{case}/reference"

    # ---- part 1: the lean decoder, the hand-written baseline ----
    lw = lean_bytes()
    add(1, "probe (part 1)", pp.PROBE, {"bytes": GIB, "reps": 5}, 90, 10, group="probe", mode="probe")
    eager = dict(LEAN_CFG, mode="eager", reps=5, decode_tokens=8, warmup_s=2.0, seq_steps=8)
    add(1, "lean/baseline-eager", LEAN, dict(eager, phases="prefill,decode"), 150, 15, mode="baseline")
    add(1, "handwritten", HANDWRITTEN, {"prefill_m": 2048, "reps": 5, "warmup_reps": 2}, 180, 40, mode="handwritten")
    for f in (0.10, 0.60, 0.30):  # the one spillover proof that needs all three first, then decode
        phases = "prefill,decode" if f == DECODE_FRACTION else "prefill"
        limit = int(f * lw)
        add(1, f"lean/stream{pct(f)}-eager", LEAN, dict(eager, phases=phases), 180, 45 if f < 0.3 else 35, spill=True,
            env=on(limit), mode="spillover", variant="stream-on", fraction=f, vram_limit_bytes=limit)
    limit30 = int(DECODE_FRACTION * lw)
    add(1, "lean/stream30-eager-off", LEAN, dict(eager, phases="prefill,decode"), 210, 55, spill=True,
        env=on(limit30, "0"), mode="spillover", variant="stream-off", fraction=DECODE_FRACTION, vram_limit_bytes=limit30)
    corpus(1)
    graph = dict(LEAN_CFG, mode="graph", phases="decode", reps=5, decode_tokens=8, warmup_s=2.0, seq_steps=8,
                 decode_pos=2048, seq_prompt=2048)
    add(1, "lean/baseline-graph", LEAN, graph, 150, 15, mode="baseline")
    for name, stream in (("", "1"), ("-off", "0")):
        add(1, f"lean/stream30-graph{name}", LEAN, graph, 180, 35, spill=True, env=on(limit30, stream),
            mode="spillover", variant="stream-on" if stream == "1" else "stream-off", fraction=DECODE_FRACTION,
            vram_limit_bytes=limit30)

    # ---- part 2: HF models, training ----
    add(2, "probe (part 2)", pp.PROBE, {"bytes": GIB, "reps": 5}, 90, 10, group="probe", mode="probe")
    reserve = suite.ALLOWANCE_FULL - suite.HEADROOM_FULL

    def hf(mid, est_gb, fractions=HF_FRACTIONS):
        model = suite.MODELS_FULL[mid]
        base = {"model": dict(model, id=mid), "seed": 1234, "prompt_lens": [2048], "ttft_prompt": 2048, "decode": False}
        add(2, f"{mid}/baseline", "llm.py", dict(base, mode="baseline"), 180, 12 + est_gb, mode="baseline",
            group="llm", model=mid)
        for f in fractions:
            limit = hf_limit(model, f)
            add(2, f"{mid}/stream{pct(f)}", "llm.py", dict(base, mode="spillover", vram_limit_bytes=limit), 240,
                15 + est_gb * (1 + 1.5 * (1 - f)), spill=True, group="llm", model=mid, mode="spillover",
                variant="stream-on", fraction=f, vram_limit_bytes=limit,
                env={"SPILLOVER_VRAM_LIMIT": str(limit), "SPILLOVER_VRAM_RESERVE": str(reserve), "SPILLOVER_STREAM": "1"})
        return model, base

    def accel(mid, model, base, fractions, est_gb):
        for f in fractions:
            limit = hf_limit(model, f)
            add(2, f"{mid}/accelerate-{pct(f)}", "llm.py", dict(base, mode="accelerate", vram_limit_bytes=limit), 240,
                20 + est_gb * (0.5 + 3 * (1 - f)), group="llm", model=mid, mode="accelerate", fraction=f,
                vram_limit_bytes=limit)

    model8, base8 = hf("dense-8g", 8.4)
    # the points where accelerate offloads most first (at 75% it may keep nearly everything)
    accel("dense-8g", model8, base8, (0.25, 0.50), 8.4)
    tparams = params_of(TRAIN_DEFAULTS)
    add(2, "train/reference", TRAINING, {}, 180, 35, mode="reference", group="train")
    # a timeout short enough that a slow training run leaves the rest of the part its time
    w = add(2, "train/stream40", TRAINING, {}, 150, 70, spill=True, group="train", mode="spillover",
            variant="stream-on", fraction=TRAIN_FRACTION, env={"SPILLOVER_STREAM": "1"})
    w["limit_from"] = "train/reference"
    # without a reference peak: weights, gradients and two AdamW moments in fp32, plus 4 GB
    w["peak_fallback"] = 16 * tparams + 4 * 10**9
    accel("dense-8g", model8, base8, (0.75,), 8.4)
    corpus(2)
    # dense-20g last: it runs where the part's time allows, and the proofs say which points did not
    model20, base20 = hf("dense-20g", 20.5, (0.25, 0.50, 0.75))  # the most telling point first
    accel("dense-20g", model20, base20, (0.25, 0.50), 20.5)
    return steps


# ---- proofs -------------------------------------------------------------------------------

def proof(pid, measured, ok, detail):
    op, target, unit = TARGETS[pid]
    passed = False
    if ok and measured is not None and not (isinstance(measured, float) and math.isnan(measured)):
        passed = measured >= target if op == ">=" else measured <= target
    return {"id": pid, "measured": None if measured is None else round(measured, 4), "target": f"{op} {target}",
            "unit": unit, "pass": bool(passed), "detail": detail}


def bandwidth_of(entries, part):
    """The probe of that part: {h2d, d2h, duplex, vram_read} in bytes/s, or None."""
    for e in entries:
        if e["group"] == "probe" and e["status"] == "ok" and e.get("part") == part:
            m = e["metrics"]
            if m.get("h2d_pinned_gbps"):
                return {"h2d": m["h2d_pinned_gbps"] * 1e9, "d2h": (m.get("d2h_pinned_gbps") or 0) * 1e9 or None,
                        "duplex": (m.get("duplex_pinned_gbps") or 0) * 1e9 or None,
                        "vram_read": (m.get("vram_read_gbps") or 0) * 1e9 or None,
                        "spread_gbps": m.get("spread_gbps")}
    return None


def host_bytes(st):
    """Bytes of the program's memory in host pages (gpu tier_bytes[1] + its own VMM host bytes)."""
    if not st:
        return None
    return int(st.get("tier_pinned_bytes") or 0) + int(st.get("program_vmm_host_bytes") or 0)


def most_host(*records):
    vals = [host_bytes(s) for s in records if s]
    return max(vals) if vals else None


def stream_text(d, per=1, what="run"):
    """The streaming engine's counters (a delta from common.stream_delta) as one phrase."""
    if not d:
        return "streaming block: no stats record"
    per = max(1, per)
    return (f"streaming engine per {what}: staged {d['staged_bytes'] / per / 1e9:.3f} GB in "
            f"{d['staged_ranges'] / per:.1f} ranges, stage hits {d['stage_hits'] / per:.1f}, late stages "
            f"{d['late_stages'] / per:.1f}, in-place launches {d['inplace_launches'] / per:.1f}, written back "
            f"{d['writeback_pages'] / per:.1f} pages ({d['writeback_pages'] * PAGE / per / 1e9:.3f} GB), copy stream busy "
            f"{d['copy_busy_ns'] / per / 1e6:.1f} ms, fallbacks {d['fallbacks'] / per:.1f}; staging budget now "
            f"{d['budget_bytes'] / 1e9:.3f} GB")


def spread_text(sp, scale=1e3, unit="ms"):
    return (f"median {sp['median'] * scale:.1f} {unit} (min {sp['min'] * scale:.1f}, max {sp['max'] * scale:.1f}, "
            f"{len(sp.get('all') or [])} reps)")


def lean_prefill_proof(by_id, entries, f):
    pid = f"stream.lean-prefill-{pct(f)}"
    sid = f"lean/stream{pct(f)}-eager"
    e, w1 = ok(by_id, sid)
    b, w2 = ok(by_id, "lean/baseline-eager")
    if not (e and b):
        return proof(pid, None, False, "; ".join(x for x in (w1, w2) if x))
    bw = bandwidth_of(entries, e.get("part"))
    if not bw:
        return proof(pid, None, False, f"no probe bandwidth measured in {e.get('part')}")
    m, mb = e["metrics"], b["metrics"]
    t = m["prefill"]["seconds"]["median"]
    t_vram = mb["prefill"]["seconds"]["median"]
    host = most_host(m.get("stats_before_prefill"), m.get("stats_after_prefill"))
    if host is None:
        return proof(pid, None, False, f"{sid}: no stats record (was the interposer loaded?)")
    link = host / bw["h2d"]
    B = max(link, t_vram)
    reps = len(m["prefill"]["seconds"]["all"])
    eq_pf = m["prefill"].get("logits_sha256") == mb["prefill"].get("logits_sha256")
    det = (f"lean decoder {m['weight_bytes'] / 1e9:.2f} GB bf16, eager prefill 2048, limit {e['vram_limit_bytes'] / 1e9:.2f} GB "
           f"({pct(f)}% of the weights), SPILLOVER_STREAM=1: {spread_text(m['prefill']['seconds'])}; host bytes during the "
           f"prefills {host / 1e9:.3f} GB (stats record: tier_bytes[1] + program_vmm_host_bytes), pinned H2D "
           f"{bw['h2d'] / 1e9:.2f} GB/s -> {link * 1e3:.1f} ms; all in VRAM without spillover "
           f"{spread_text(mb['prefill']['seconds'])}; B = {B * 1e3:.1f} ms; "
           + stream_text(m["prefill"].get("stream"), reps, "prefill")
           + f"; prefill logits {'equal' if eq_pf else 'DIFFERENT'}, " + pp.same_sequence(by_id, sid, "lean/baseline-eager"))
    if host == 0:
        det = "nothing was in host memory: the run did not spill; " + det
    return proof(pid, B / t, host > 0, det)


def beats_handwritten_proof(by_id):
    pid = "stream.beats-handwritten"
    h, w1 = ok(by_id, "handwritten")
    s, w2 = ok(by_id, "lean/stream10-eager")
    if not (h and s):
        return proof(pid, None, False, "; ".join(x for x in (w1, w2) if x))
    hm, sm = h["metrics"], s["metrics"]
    th, ts = hm["streamed"]["seconds"]["median"], sm["prefill"]["seconds"]["median"]
    b = by_id.get("lean/baseline-eager")
    ref_sha = (((b or {}).get("metrics") or {}).get("prefill") or {}).get("logits_sha256")
    det = (f"hand-written double-buffered streaming, all {hm['weight_bytes'] / 1e9:.2f} GB in pinned host memory "
           f"({hm['streamed_bytes_per_prefill'] / 1e9:.2f} GB copied per prefill, two VRAM buffers of "
           f"{hm['buffer_bytes'] / 2 / 1e6:.0f} MB, {hm['streamed']['link_gbps_effective']} GB/s effective): prefill 2048 "
           f"{spread_text(hm['streamed']['seconds'])}; its own all-in-VRAM run {spread_text(hm['in_vram']['seconds'])}; "
           f"outputs {'equal' if hm['equal_to_in_vram'] else 'DIFFERENT'} (streamed vs in VRAM)"
           + ("" if not ref_sha else f", {'equal' if hm['in_vram']['logits_sha256'] == ref_sha else 'DIFFERENT'} to "
              "lean/baseline-eager's prefill logits")
           + f"; spillover at 10% (SPILLOVER_STREAM=1) {spread_text(sm['prefill']['seconds'])}; "
           + stream_text(sm["prefill"].get("stream"), len(sm["prefill"]["seconds"]["all"]), "prefill"))
    if not hm["equal_to_in_vram"]:
        det = "the hand-written baseline's outputs differ from its all-in-VRAM run, so it is not a valid baseline; " + det
    return proof(pid, th / ts, bool(hm["equal_to_in_vram"]), det)


def decode_ms(e):
    return e["metrics"]["decode"]["ms_per_token"]["median"]


def decode_no_worse_proof(by_id):
    pid = "stream.decode-no-worse"
    ratios, notes, missing = [], [], []
    for mode, on_id, off_id in (("eager", "lean/stream30-eager", "lean/stream30-eager-off"),
                                ("graph", "lean/stream30-graph", "lean/stream30-graph-off")):
        on, w1 = ok(by_id, on_id)
        off, w2 = ok(by_id, off_id)
        if not (on and off):
            missing.append(mode)
            notes.append(f"{mode}: not measured ({'; '.join(x for x in (w1, w2) if x)})")
            continue
        if mode == "graph" and "decode" not in (on["metrics"].get("graphs") or []) + (off["metrics"].get("graphs") or []):
            notes.append(f"graph: capture failed, ran eager ({on['metrics'].get('capture_decode_error', '')[:160]})")
        r = decode_ms(on) / decode_ms(off)
        ratios.append(r)
        d_on, d_off = on["metrics"]["decode"], off["metrics"]["decode"]
        steps = d_on["reps"] * d_on["tokens_per_rep"]
        note = (f"{mode} decode at position 2048, limit {on['vram_limit_bytes'] / 1e9:.2f} GB (30%): engine on "
                f"{pp.decode_spread(on)}, off {pp.decode_spread(off)} -> {r:.4f}; engine on, "
                + stream_text(d_on.get("stream"), steps, "decode step")
                + f"; pages moved per step on/off {d_on.get('pages_moved_per_step')}/{d_off.get('pages_moved_per_step')}")
        if mode == "eager" and "prefill" in on["metrics"] and "prefill" in off["metrics"]:
            note += (f"; prefill 2048 in the same processes: on {spread_text(on['metrics']['prefill']['seconds'])}, off "
                     f"{spread_text(off['metrics']['prefill']['seconds'])}")
        notes.append(note)
    eager_ok = "eager" not in missing
    return proof(pid, max(ratios) if ratios else None, eager_ok, "; ".join(notes))


def hf_prefill_points(by_id, entries):
    """Per (model, fraction): the spillover run's prefill against its copy bound and accelerate."""
    pts = []
    for mid in HF_MODELS:
        b, wb = ok(by_id, f"{mid}/baseline")
        for f in HF_FRACTIONS:
            sid = f"{mid}/stream{pct(f)}"
            s, ws = ok(by_id, sid)
            a, wa = ok(by_id, f"{mid}/accelerate-{pct(f)}")
            p = {"model": mid, "fraction": f, "id": sid, "why": "; ".join(x for x in (wb, ws) if x) or None}
            if b and s:
                bw = bandwidth_of(entries, s.get("part"))
                ps, pb = s["metrics"]["prefill"]["2048"], b["metrics"]["prefill"]["2048"]
                host = most_host(ps.get("stats_before"), ps.get("stats_after"))
                if host is None:  # no record around the prefill: the one at exit
                    host = host_bytes(s.get("spill_stats"))
                if not bw or host is None:
                    p["why"] = "no probe bandwidth" if not bw else f"{sid}: no stats record"
                else:
                    link = host / bw["h2d"]
                    B = max(link, pb["seconds"])
                    p.update({"t": ps["seconds"], "tok_s": ps["tokens_per_s"], "all": ps["all_seconds"], "host": host,
                              "link": link, "t_vram": pb["seconds"], "B": B, "ratio": B / ps["seconds"],
                              "limit": s["vram_limit_bytes"], "h2d": bw["h2d"],
                              "stream": common.stream_delta(ps.get("stats_before"), ps.get("stats_after")),
                              "equal": ps.get("last_logits_sha") == pb.get("last_logits_sha")})
            if a:
                pa = a["metrics"]["prefill"]["2048"]
                p["accel"] = {"tok_s": pa["tokens_per_s"], "all": pa["all_seconds"],
                              "offloaded": (a["metrics"].get("offload") or {}).get("offloaded_bytes")}
            else:
                p["accel_why"] = wa
            pts.append(p)
    return pts


def hf_prefill_proof(pts):
    pid = "stream.hf-prefill"
    notes, ratios = [], []
    missing8 = [p for p in pts if p["model"] == "dense-8g" and "ratio" not in p]
    none20 = not any(p["model"] == "dense-20g" and "ratio" in p for p in pts)
    for p in pts:
        if "ratio" not in p:
            if not (none20 and p["model"] == "dense-20g"):
                notes.append(f"{p['id']}: not measured ({p['why']})")
            continue
        ratios.append(p["ratio"])
        notes.append(f"{p['id']} (limit {p['limit'] / 1e9:.2f} GB = {pct(p['fraction'])}% of the weights + 2 GiB): "
                     f"{p['tok_s']} tok/s, {p['t'] * 1e3:.1f} ms {p['all']}; host {p['host'] / 1e9:.3f} GB / "
                     f"{p['h2d'] / 1e9:.2f} GB/s = {p['link'] * 1e3:.1f} ms, in VRAM {p['t_vram'] * 1e3:.1f} ms -> "
                     f"B {p['B'] * 1e3:.1f} ms, ratio {p['ratio']:.3f}; logits {'equal' if p['equal'] else 'DIFFERENT'}; "
                     + stream_text(p.get("stream"), 6, "prefill (warm-up and 5 timed)"))
    worst = min(ratios) if ratios else None
    if none20:
        why = next((p["why"] for p in pts if p["model"] == "dense-20g" and p.get("why")), "")
        notes.append(f"dense-20g: not measured (it runs last in part 2, only while time remains; {why})")
    return proof(pid, worst, not missing8 and worst is not None, "; ".join(notes))


def over_accelerate_proof(pts):
    pid = "stream.over-accelerate"
    notes, ratios = [], []
    for p in pts:
        acc = p.get("accel")
        if acc is None:
            if p["model"] == "dense-8g" or "ratio" in p:
                notes.append(f"{p['model']} {pct(p['fraction'])}%: accelerate not measured ({p.get('accel_why')})")
            continue
        off = acc.get("offloaded") or 0
        if off < ACCEL_MIN_OFFLOAD:
            notes.append(f"{p['model']} {pct(p['fraction'])}%: accelerate kept only {off / 1e9:.2f} GB off the GPU, "
                         "not counted")
            continue
        if "tok_s" not in p:
            notes.append(f"{p['model']} {pct(p['fraction'])}%: spillover not measured ({p['why']})")
            continue
        r = p["tok_s"] / acc["tok_s"]
        ratios.append(r)
        notes.append(f"{p['model']} {pct(p['fraction'])}%: spillover {p['tok_s']} tok/s, accelerate {acc['tok_s']} tok/s "
                     f"{acc['all']} with {off / 1e9:.2f} GB offloaded -> {r:.3f}")
    if not any(p["model"] == "dense-20g" and p.get("accel") for p in pts):
        notes.append("dense-20g: not measured")
    return proof(pid, min(ratios) if ratios else None, bool(ratios), "; ".join(notes))


def training_proof(by_id, entries):
    pid = "stream.training"
    r, w1 = ok(by_id, "train/reference")
    s, w2 = ok(by_id, "train/stream40")
    if not (r and s):
        return proof(pid, None, False, "; ".join(x for x in (w1, w2) if x))
    bw = bandwidth_of(entries, s.get("part"))
    if not bw or not bw.get("d2h"):
        return proof(pid, None, False, f"no probe bandwidth (H2D and D2H) measured in {s.get('part')}")
    m, mr = s["metrics"], r["metrics"]
    host = most_host(m.get("stats_before_steps"), m.get("stats_after_steps"))
    if host is None:
        return proof(pid, None, False, "train/stream40: no stats record (was the interposer loaded?)")
    t, t_ref = m["step_s"]["median"], mr["step_s"]["median"]
    # every host-resident byte of the training state (weights, gradients, both AdamW moments) is
    # read and rewritten by each step: at least `host` bytes in and `host` bytes back out
    t_in, t_out = host / bw["h2d"], host / bw["d2h"]
    t_both = 2 * host / bw["duplex"] if bw.get("duplex") else t_in + t_out
    link = max(t_in, t_out, t_both)
    bound = max(link, t_ref)
    steps = len(m["step_s"]["all"])
    d = m.get("stream")
    det = (f"HF LlamaForCausalLM fp32 {m['params'] / 1e9:.3f}B parameters, batch {m['config']['batch']} x "
           f"{m['config']['seq']}, AdamW; peak without spillover {mr['peak_bytes'] / 1e9:.2f} GB, limit "
           f"{(s.get('vram_limit_bytes') or 0) / 1e9:.2f} GB ({s.get('limit_basis')}, 40%); step "
           f"{spread_text(m['step_s'])}, without spillover {spread_text(mr['step_s'])}; host bytes during the steps "
           f"{host / 1e9:.3f} GB, in and written back: H2D {bw['h2d'] / 1e9:.2f} GB/s -> {t_in * 1e3:.1f} ms, D2H "
           f"{bw['d2h'] / 1e9:.2f} GB/s -> {t_out * 1e3:.1f} ms, both at once "
           + (f"{bw['duplex'] / 1e9:.2f} GB/s" if bw.get("duplex") else "not measured (sum used)")
           + f" -> {t_both * 1e3:.1f} ms; bound {bound * 1e3:.1f} ms; " + stream_text(d, steps, "step"))
    if d and (d["staged_bytes"] or d["writeback_pages"]):
        eng = (d["staged_bytes"] / steps) / bw["h2d"] + (d["writeback_pages"] * PAGE / steps) / bw["d2h"]
        det += f"; the engine's own traffic per step would take {eng * 1e3:.1f} ms at those bandwidths"
    eq = m.get("hash") == mr.get("hash")
    det += f"; losses and weights {'equal' if eq else 'DIFFERENT'} to the run without spillover"
    if host == 0:
        det = "nothing was in host memory: the run did not spill; " + det
    return proof(pid, bound / t, host > 0, det)


def bitwise_proof(by_id):
    pid = "stream.bitwise"
    pairs = []  # (program, spillover id, reference id, how to read the output)
    seq = lambda e: (e["metrics"].get("sequence") or {}).get("final_logits_sha256")  # noqa: E731
    for sid in ("lean/stream60-eager", "lean/stream30-eager", "lean/stream30-eager-off", "lean/stream10-eager"):
        pairs.append((sid, sid, "lean/baseline-eager", seq))
    for sid in ("lean/stream30-graph", "lean/stream30-graph-off"):
        pairs.append((sid, sid, "lean/baseline-graph", seq))
    hf = lambda e: e["metrics"]["prefill"]["2048"].get("last_logits_sha")  # noqa: E731
    for mid in HF_MODELS:
        for f in HF_FRACTIONS:
            pairs.append((f"{mid}/stream{pct(f)}", f"{mid}/stream{pct(f)}", f"{mid}/baseline", hf))
    pairs.append(("train/stream40", "train/stream40", "train/reference", lambda e: e["metrics"].get("hash")))
    for c in [c for p in (1, 2) for c in CORPUS_CASES[p]]:
        pairs.append((f"corpus/{c}", f"corpus/{c}/spillover", f"corpus/{c}/reference", lambda e: e["metrics"].get("hash")))
    good, n, notes, missing = 0, 0, [], []
    for name, sid, rid, out in pairs:
        s, r = by_id.get(sid), by_id.get(rid)
        if not s or not r or s["status"] != "ok" or r["status"] != "ok":
            if s is not None or sid.startswith(("lean/", "dense-8g", "train", "corpus")):
                missing.append(name)
            continue
        a, b = out(s), out(r)
        n += 1
        eq = a is not None and a == b
        good += eq
        if not eq:
            notes.append(f"{name}: DIFFERENT ({str(a)[:12]} vs {str(b)[:12]})")
        else:
            notes.append(f"{name}: equal")
    det = f"{good} of {n} compared" + (": " + "; ".join(notes) if notes else "")
    if missing:
        det += f"; not compared (a run is missing or failed): {', '.join(missing)}"
    return proof(pid, good / n if n else None, n > 0, det)


def compute_proofs(entries):
    by_id = {e["id"]: e for e in entries}
    pts = hf_prefill_points(by_id, entries)
    out = [lean_prefill_proof(by_id, entries, f) for f in LEAN_FRACTIONS]
    out += [beats_handwritten_proof(by_id), hf_prefill_proof(pts), over_accelerate_proof(pts),
            training_proof(by_id, entries), decode_no_worse_proof(by_id), bitwise_proof(by_id)]
    return out


def safe_proofs(entries):
    """compute_proofs, or one failed proof per id naming the error: a surprise in a run's output
    must not lose the record (the raw results are written either way)."""
    try:
        return compute_proofs(entries)
    except Exception as e:  # noqa: BLE001
        why = f"the proof could not be computed: {type(e).__name__}: {e}"
        return [proof(pid, None, False, why) for pid in TARGETS]


def write_record(results, out_dir, command):
    proofs = safe_proofs(results["steps"])
    os.makedirs(out_dir, exist_ok=True)
    rec = {"card": results["card"], "driver": results["gpu"].get("driver"), "commit": results["commit"],
           "date": results["date"], "command": command, "proofs": proofs}
    path = os.path.join(out_dir, f"stream-{results['card']}-{results['date']}.json")
    with open(path, "w") as f:
        json.dump(rec, f, indent=1)
        f.write("\n")
    for pr in proofs:
        print(f"{'PASS' if pr['pass'] else 'FAIL'}  {pr['id']:<28} {pr['measured']!s:<10} {pr['target']:<8} "
              f"{pr['detail'][:220]}", flush=True)
    return path


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
    commits = sorted({p["commit"] for p in parts if p.get("commit") and p["commit"] != "unknown"})
    merged.update({"steps": [s for p in parts for s in p["steps"]], "part": None,
                   "parts": [{k: p.get(k) for k in ("part", "created_utc", "duration_s", "command", "commit")} for p in parts],
                   "commit": commit or (" / ".join(commits) if commits else "unknown"),
                   "command": " ; ".join(p["command"] for p in parts) + " ; python3 bench/stream/prove.py --merge "
                   + " ".join(os.path.basename(f) for f in files),
                   "duration_s": round(sum(p["duration_s"] for p in parts), 1)})
    merged.pop("proofs_partial", None)
    os.makedirs(out_dir, exist_ok=True)
    full = os.path.join(out_dir, f"stream-results-{merged['card']}-{merged['date']}.json")
    with open(full, "w") as fh:
        json.dump(merged, fh, indent=1)
        fh.write("\n")
    path = write_record(merged, out_dir, merged["command"])
    print(f"wrote {full}, {path}")
    return 0


def parse_spill_env(items):
    """--spill-env KEY=VALUE pairs; the knobs each step sets itself are refused."""
    out = {}
    for it in items or []:
        k, sep, v = it.partition("=")
        if not sep or not re.fullmatch(r"SPILLOVER_[A-Z0-9_]+", k):
            raise ValueError(f"--spill-env {it!r}: use KEY=VALUE with a SPILLOVER_* key, e.g. SPILLOVER_STREAM_BUDGET=40%")
        if k in ("SPILLOVER_STREAM", "SPILLOVER_VRAM_LIMIT", "SPILLOVER_VRAM_RESERVE"):
            raise ValueError(f"--spill-env {k}: each step sets {k} itself (engine on and off, the limits); leave it out")
        out[k] = v
    return out


def main():
    ap = argparse.ArgumentParser(description="issue 10's GPU proofs (the streaming engine)")
    ap.add_argument("--part", default=None, metavar="K/2", help="run part 1/2 or 2/2 (each < 9.5 min with the build)")
    ap.add_argument("--only", default=None, metavar="NAME[,NAME]", help="run only steps whose id contains one of these (the probe always runs)")
    ap.add_argument("--list", "--dry-run", dest="list", action="store_true", help="print the plan with expected seconds and exit")
    ap.add_argument("--merge", nargs="+", default=None, metavar="FILE", help="assemble the proof record from part results")
    ap.add_argument("--commit", default=None, help="with --merge: the commit to record (default: the parts')")
    ap.add_argument("--spill-env", action="append", default=[], metavar="KEY=VALUE", help="a SPILLOVER_* setting for every spillover step")
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
    try:
        spill_env = parse_spill_env(a.spill_env)
    except ValueError as e:
        print(f"prove.py: {e}", file=sys.stderr)
        return 2
    started = a.started_at or time.time()
    steps = plan(spill_env)
    if part:
        steps = [w for w in steps if w["part"] == part]
    else:  # one go: one probe serves both halves
        steps = [w for w in steps if not (w["group"] == "probe" and w["part"] == 2)]
    if a.only:
        names = [x for x in a.only.split(",") if x]
        steps = [w for w in steps if w["group"] == "probe" or any(n in w["id"] for n in names)]
    if a.list:
        for w in steps:
            print(json.dumps({"id": w["id"], "part": w["part"], "est_s": w["est_s"], "timeout_s": w["timeout_s"],
                              "spill": w["spill"], "env": w["env"], "spec": w["spec"],
                              **({"limit_from": w["limit_from"], "fraction": w["fraction"]} if w.get("limit_from") else {})}))
        print(f"expected {sum(w['est_s'] for w in steps):.0f} s of runs")
        return 0
    budget = a.budget_s if a.budget_s is not None else (480.0 if part else 960.0)
    hard_cap = a.hard_cap_s if a.hard_cap_s is not None else (550.0 if part else 1040.0)
    part_label = f"part {part}/2" if part else "all"
    for w in steps:
        w["part"] = part_label  # the bounds use the probe of the same label
    gpu = pp.smi_gpu()
    day = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")
    card = pp.card_slug(gpu.get("name"))
    os.makedirs(a.results_dir, exist_ok=True)
    if not a.log:
        a.log = os.path.join(a.results_dir, f"stream-{card}-{day}{'-part%d' % part if part else ''}.log")
    a.command = a.command or " ".join(["python3"] + sys.argv)
    log(f"GPU {gpu.get('name')} driver {gpu.get('driver')}, lib {a.lib} ({'present' if os.path.exists(a.lib) else 'MISSING'}), "
        f"extra spillover settings {spill_env or 'none'}")
    entries = pp.run_part(steps, a, started, budget, hard_cap, part_label)
    logs_tail = ""
    try:
        with open(a.log, errors="replace") as f:
            logs_tail = f.read()[-12000:]
    except OSError:
        pass
    results = {
        "schema": SCHEMA, "card": card, "date": day, "gpu": gpu, "mem_available_bytes": pp.mem_available(),
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "commit": pp.git_commit(), "command": a.command, "part": part_label, "versions": suite.versions(),
        "lib": {"path": os.path.abspath(a.lib), "present": os.path.exists(a.lib),
                "sha256": _sha256(a.lib)},
        "spill_env": spill_env, "budget_s": budget, "hard_cap_s": hard_cap,
        "duration_s": round(time.time() - started, 1), "steps": entries, "logs_tail": logs_tail,
    }
    results["proofs_partial"] = safe_proofs(entries)  # this part's view; --merge computes the record
    name = f"stream-results-{card}-{day}{'-part%dof2' % part if part else ''}.json"
    path = os.path.join(a.results_dir, name)
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    written = [path]
    if not part:
        written.append(write_record(results, a.results_dir, results["command"]))
    else:
        for pr in results["proofs_partial"]:
            if pr["measured"] is None and "no such run" in pr["detail"]:
                continue
            print(f"(this part) {'PASS' if pr['pass'] else 'FAIL'}  {pr['id']:<28} {pr['measured']!s:<10} "
                  f"{pr['detail'][:240]}", flush=True)
    out_dir = os.environ.get("OUT")
    if out_dir and os.path.isdir(out_dir):
        for p in written:
            shutil.copy(p, os.path.join(out_dir, os.path.basename(p)))
    log(f"results: {', '.join(written)}; log {a.log}; {results['duration_s']} s since the start")
    return 0


def _sha256(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())

"""prove.py: the two-GPU proofs of issue 11 (many GPUs under spillover). Every step is its own
process group with a timeout (bench/mgpu/work.py does the measuring): a crash or a hang becomes a
recorded failure with its output tail, and the rest goes on. Writes

  bench/results/proofs/mgpu-<card>-<date>.json
    {card, driver, commit, date, command, proofs: [{id, measured, target, unit, pass, detail}]}
  <results-dir>/mgpu-results-<card>-<date>.json      every step's raw JSON, exit code and output tail

and copies both to $OUT. Proofs: mgpu.peer-copy, mgpu.nccl-allreduce, mgpu.ddp-bitwise,
mgpu.tp-decode, mgpu.single-gpu-unchanged (with --prev-native: the previous commit's native/ source,
built here). A missing or failed measurement is a proof with pass: false and the reason.

NVLink multicast stays off (NCCL_NVLS_ENABLE=0, TORCH_SYMM_MEM_DISABLE_MULTICAST=1,
NVSHMEM_DISABLE_NVLS=1); torchrun runs on 127.0.0.1 with a free port. Standard library only.
  python3 bench/mgpu/prove.py [--budget-s 440] [--only peer-copy,tp] [--list]"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WORK = os.path.join(HERE, "work.py")
GIB = 1 << 30

TARGETS = {
    "mgpu.peer-copy": (">=", 1.0, "fraction of bytes equal (cuda:0 -> cuda:1 -> cuda:0, tiered source)"),
    "mgpu.nccl-allreduce": (">=", 1, "1 if the all-reduce result equals the run without spillover"),
    "mgpu.ddp-bitwise": (">=", 1, "1 if the weights after 5 DDP steps equal the run without spillover"),
    "mgpu.tp-decode": (">=", 0.8, "ratio (bound / measured time per token)"),
    "mgpu.single-gpu-unchanged": ("<=", 1.02, "ratio (lean single-GPU decode time with this change / before it)"),
}
MULTICAST_OFF = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
PEER_LIMIT = "3G"
ALLREDUCE_GIB, ALLREDUCE_LIMIT = 6, "3G"
DDP_FRACTION = 0.40
TP_LIMIT_GIB = 12  # per GPU; the model is ~42 GB, more than both limits together
PINNED_PER_PROCESS = "48G"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def smi():
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    try:
        r = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
                           capture_output=True, text=True, timeout=30, env=env)
        rows = [[x.strip() for x in line.split(",")] for line in r.stdout.splitlines() if line.strip()]
        return {"gpus": [{"name": n, "driver": d, "vram_mib": int(float(m))} for n, d, m in rows]}
    except Exception as e:  # noqa: BLE001
        return {"gpus": [], "error": f"nvidia-smi: {e}"}


def card_slug(name):
    card = re.sub(r"[^a-z0-9]+", "-", (name or "unknown-gpu").lower()).strip("-")
    card = re.sub(r"^nvidia-", "", card) or "unknown-gpu"
    return re.sub(r"-\d+gb.*$", "", card) if card.startswith("h200") else card


def git_commit():
    if os.environ.get("GIT_COMMIT"):
        return os.environ["GIT_COMMIT"]
    try:
        r = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if r.returncode == 0 and r.stdout.strip():
            return r.stdout.strip()
    except Exception:  # noqa: BLE001
        pass
    return "unknown"


class Runner:
    """Runs steps as process groups against one deadline; each step's output goes to the log."""

    def __init__(self, a):
        self.a = a
        self.t0 = a.started_at or time.time()
        self.work = tempfile.mkdtemp(prefix="mgpu-proofs-")
        self.stats = tempfile.mkdtemp(prefix="mgpu-stats-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
        self.steps = {}
        self.lib = os.path.abspath(a.lib)

    def left(self):
        return self.a.budget_s - (time.time() - self.t0)

    def env(self, spill, extra=None):
        e = {k: v for k, v in os.environ.items() if not k.startswith("SPILLOVER_") and k != "LD_PRELOAD"}
        e.update(MULTICAST_OFF)
        e.update({"MASTER_ADDR": "127.0.0.1", "CUBLAS_WORKSPACE_CONFIG": ":4096:8", "NCCL_ALGO": "Ring",
                  "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"})
        if spill:
            e.update({"LD_PRELOAD": self.lib, "SPILLOVER_BROKER": "off", "SPILLOVER_STATS_DIR": self.stats,
                      "SPILLOVER_PINNED_LIMIT": PINNED_PER_PROCESS, "SPILLOVER_HOST_RESERVE": "8G",
                      "SPILLOVER_LOG": "info"})
        e.update(extra or {})
        return e

    def run(self, sid, argv, env, timeout_s, ranks=0, script=WORK):
        """argv after the python/torchrun part; ranks=2: torchrun --nproc-per-node 2."""
        out = os.path.join(self.work, sid.replace("/", "_") + ".json")
        budget = self.left()
        rec = {"id": sid, "status": None, "exit_code": None, "duration_s": 0.0, "timeout_s": 0, "results": [],
               "env": {k: v for k, v in env.items() if k.startswith(("SPILLOVER_", "NCCL_", "TORCH_", "NVSHMEM_"))
                       or k == "LD_PRELOAD"}}
        self.steps[sid] = rec
        if self.a.only and not any(o in sid for o in self.a.only.split(",")):
            rec["status"] = "not run"
            rec["error"] = "not selected (--only)"
            return rec
        if budget < 20:
            rec["status"] = "not run"
            rec["error"] = f"the run's time budget ({self.a.budget_s:.0f} s) was spent"
            log(f"{sid}: not run (budget spent)")
            return rec
        timeout_s = int(min(timeout_s, budget))
        if ranks:
            cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks), "--master-addr",
                   "127.0.0.1", "--master-port", str(free_port()), WORK] + argv + ["--out", out]
        else:
            cmd = [sys.executable, script] + argv + ["--out", out]
        rec["command"] = " ".join(cmd)
        rec["timeout_s"] = timeout_s
        log(f"{sid}: start (timeout {timeout_s} s)")
        t = time.time()
        with open(self.a.log, "a") as lf:
            lf.write(f"\n== {sid}: {' '.join(cmd)}\n== env: {json.dumps(rec['env'])}\n")
            lf.flush()
            p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
                                 cwd=ROOT)
            try:
                text, _ = p.communicate(timeout=timeout_s)
                rec["exit_code"] = p.returncode
                rec["status"] = "ok" if p.returncode == 0 else "failed"
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)  # torchrun and both ranks: a hang must not outlive its step
                text, _ = p.communicate()
                rec["status"] = "timeout"
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else (text or "")
            lf.write(text)
        rec["duration_s"] = round(time.time() - t, 1)
        rec["tail"] = text[-3000:]
        paths = [out] if not ranks else [f"{out}.rank{r}.json" for r in range(ranks)]
        for path in paths:
            try:
                with open(path) as f:
                    rec["results"].append(json.load(f))
            except (OSError, ValueError):
                rec["results"].append(None)
        if rec["status"] == "ok" and None in rec["results"]:
            rec["status"] = "failed"
        if rec["status"] != "ok" and "error" not in rec:
            lines = [x for x in text.splitlines() if x.strip()]
            rec["error"] = f"{rec['status']} (exit {rec['exit_code']}): " + (lines[-1][:300] if lines else "no output")
        log(f"{sid}: {rec['status']} in {rec['duration_s']} s" + ("" if rec["status"] == "ok" else f": {rec['error']}"))
        return rec


def proof(pid, measured, detail, passed=None):
    op, target, unit = TARGETS[pid]
    if passed is None:
        passed = measured is not None and (measured >= target if op == ">=" else measured <= target)
    return {"id": pid, "measured": measured, "target": f"{op} {target}", "unit": unit, "pass": bool(passed),
            "detail": detail}


def why_not(*recs):
    return "; ".join(f"{r['id']}: {r.get('error') or r['status']}" for r in recs if r and r["status"] != "ok")


def peer_copy(R):
    r = R.run("peer-copy/spillover", ["peer-copy", "--gib", "8"], R.env(True, {"SPILLOVER_VRAM_LIMIT": PEER_LIMIT}), 120)
    if r["status"] != "ok":
        return proof("mgpu.peer-copy", None, why_not(r), False)
    m = r["results"][0]
    frac = m["bytes_equal"] / m["bytes_total"] if m["bytes_total"] else None
    host = m.get("source_host_pages")
    detail = (f"{m['gib']} GiB on cuda:0 under SPILLOVER_VRAM_LIMIT={PEER_LIMIT} ({host} of its 2 MiB pages in host "
              f"memory) copied to cuda:1 (x.to and copy_) and back: {m['bytes_equal']} of {m['bytes_total']} bytes "
              f"equal, {m['seconds']:.1f} s")
    ok = frac is not None and frac >= 1.0 and bool(host)
    if not host:
        detail += "; the source had no host pages, so this proves nothing about tiered memory"
    return proof("mgpu.peer-copy", frac, detail, ok)


def allreduce(R):
    argv = ["allreduce", "--gib", str(ALLREDUCE_GIB)]
    ref = R.run("allreduce/reference", argv, R.env(False), 150, ranks=2)
    sp = R.run("allreduce/spillover", argv, R.env(True, {"SPILLOVER_VRAM_LIMIT": ALLREDUCE_LIMIT}), 180, ranks=2)
    if ref["status"] != "ok" or sp["status"] != "ok":
        return proof("mgpu.nccl-allreduce", None, why_not(ref, sp), False)
    key = lambda m: (m["checksums"]["sum"], m["checksums"]["sumsq"], m["sample_sha256"])  # noqa: E731
    same = all(key(a) == key(b) for a, b in zip(ref["results"], sp["results"]))
    detail = (f"torchrun 2 ranks, all-reduce of {ALLREDUCE_GIB} GiB float32 per rank; SPILLOVER_VRAM_LIMIT="
              f"{ALLREDUCE_LIMIT}: {sp['results'][0]['seconds']:.2f} s (without spillover "
              f"{ref['results'][0]['seconds']:.2f} s); checksums (integer sums of the result's bits, sha256 of "
              f"three 4 MiB samples) {'equal' if same else 'DIFFER'} on both ranks")
    return proof("mgpu.nccl-allreduce", 1 if same else 0, detail)


def ddp(R):
    argv = ["ddp", "--steps", "5"]
    ref = R.run("ddp/reference", argv, R.env(False), 150, ranks=2)
    if ref["status"] != "ok":
        R.steps["ddp/spillover"] = {"id": "ddp/spillover", "status": "not run", "error": "the reference run failed",
                                    "results": []}
        return proof("mgpu.ddp-bitwise", None, why_not(ref), False)
    peaks = [m["peak_reserved"] for m in ref["results"]]
    limits = [int(DDP_FRACTION * p) for p in peaks]
    lim = ",".join(f"{m['rank']}:{lim}" for m, lim in zip(ref["results"], limits))  # rank r runs on cuda:r
    sp = R.run("ddp/spillover", argv, R.env(True, {"SPILLOVER_VRAM_LIMIT": lim}), 200, ranks=2)
    if sp["status"] != "ok":
        return proof("mgpu.ddp-bitwise", None, why_not(sp), False)
    a = [m["weights_sha256"] for m in ref["results"]]
    b = [m["weights_sha256"] for m in sp["results"]]
    same = a == b and len(set(a)) == 1
    detail = (f"{ref['results'][0]['params'] / 1e9:.2f}B parameters, AdamW, 5 steps, 2 ranks; per-GPU limits "
              f"SPILLOVER_VRAM_LIMIT={lim} (40% of each rank's peak reserved {[p >> 20 for p in peaks]} MiB); "
              f"weights sha256 {'equal' if same else 'DIFFER'} ({a[0][:16]} vs {b[0][:16]}); losses "
              f"{ref['results'][0]['losses']} vs {sp['results'][0]['losses']}; {sp['results'][0]['seconds']:.1f} s vs "
              f"{ref['results'][0]['seconds']:.1f} s")
    return proof("mgpu.ddp-bitwise", 1 if same else 0, detail)


def tp(R):
    lim = f"0:{TP_LIMIT_GIB}G,1:{TP_LIMIT_GIB}G"
    r = R.run("tp/spillover", ["tp", "--layers", "24", "--tokens", "5"], R.env(True, {"SPILLOVER_VRAM_LIMIT": lim}),
              240, ranks=2)
    if r["status"] != "ok":
        return proof("mgpu.tp-decode", None, why_not(r), False)
    ms = r["results"]
    if any(m.get("host_bytes") is None for m in ms):
        return proof("mgpu.tp-decode", None, "the pages of the weights could not be located (no bound)", False)
    bounds = [m["host_bytes"] / m["h2d_bytes_per_s"] + m["vram_bytes"] / m["vram_read_bytes_per_s"] for m in ms]
    bound = max(bounds)
    measured = ms[0]["s_per_token_median"]
    total = sum(m["total_weight_bytes_rank"] for m in ms)
    detail = (f"2-rank tensor-parallel random bf16 decoder ({ms[0]['layers']} layers, hidden {ms[0]['hidden']}, "
              f"{total / 1e9:.1f} GB in all) under SPILLOVER_VRAM_LIMIT={lim}; per rank host bytes read per token "
              f"{[round(m['host_bytes'] / 1e9, 2) for m in ms]} GB at pinned H2D "
              f"{[round(m['h2d_bytes_per_s'] / 1e9, 1) for m in ms]} GB/s, VRAM bytes "
              f"{[round(m['vram_bytes'] / 1e9, 2) for m in ms]} GB at {[round(m['vram_read_bytes_per_s'] / 1e9) for m in ms]}"
              f" GB/s; bound {bound * 1e3:.1f} ms/token, measured (eager, median of {len(ms[0]['s_per_token'])}) "
              f"{measured * 1e3:.1f} ms/token")
    if total <= 2 * TP_LIMIT_GIB * GIB:
        return proof("mgpu.tp-decode", round(bound / measured, 4), detail + "; the model is not larger than both "
                     "limits together", False)
    return proof("mgpu.tp-decode", round(bound / measured, 4), detail)


LEAN = os.path.join(ROOT, "bench/lean/lean_decoder.py")
LEAN_ARGS = ["--layers", "16", "--mode", "eager", "--phases", "decode", "--reps", "5", "--decode-tokens", "8"]


def single_gpu(R):
    """Lean eager decode on one GPU of this machine (the model fits), under this build and under a
    build of the previous commit's native/ (--prev-native, built here), interleaved A/B/A/B: eager
    decode goes through every launch and copy hook, the paths this change touches."""
    prev = R.a.prev_native
    if not prev or not os.path.isfile(os.path.join(prev, "Makefile")):
        return proof("mgpu.single-gpu-unchanged", None, "not measured: no --prev-native source tree of the previous "
                     "commit's native/ was given", False)
    b = subprocess.run(["make", "-s", "-C", prev, "build/libspillover.so"], capture_output=True, text=True, timeout=120)
    prev_lib = os.path.join(prev, "build/libspillover.so")
    if b.returncode != 0 or not os.path.exists(prev_lib):
        return proof("mgpu.single-gpu-unchanged", None, f"the previous build failed: {(b.stderr or b.stdout)[-300:]}",
                     False)
    times = {"prev": [], "new": []}
    for k in range(2):
        for which, lib in (("prev", prev_lib), ("new", R.lib)):
            env = R.env(True, {"CUDA_VISIBLE_DEVICES": "0"})
            env["LD_PRELOAD"] = lib
            r = R.run(f"single-gpu/{which}{k + 1}", LEAN_ARGS, env, 90, script=LEAN)
            dec = (((r.get("results") or [None])[0] or {}).get("metrics") or {}).get("decode") or {}
            if r["status"] != "ok" or not dec.get("ms_per_token"):
                return proof("mgpu.single-gpu-unchanged", None, why_not(r) or "no decode time", False)
            times[which].append(dec["ms_per_token"]["median"])
    new, old = min(times["new"]), min(times["prev"])
    detail = (f"lean decoder, 16 layers (fits in VRAM), eager decode, one GPU: ms/token per run (median of 5 reps "
              f"x 8 tokens each) this build {times['new']}, previous commit's build {times['prev']} "
              f"({R.a.prev_commit or 'commit not given'}); ratio of the best runs")
    return proof("mgpu.single-gpu-unchanged", round(new / old, 4), detail)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lib", default=os.path.join(ROOT, "native/build/libspillover.so"))
    p.add_argument("--budget-s", type=float, default=440.0, help="start nothing after this many seconds from the start")
    p.add_argument("--started-at", type=float, default=None)
    p.add_argument("--log", default=None)
    p.add_argument("--command", default="python3 bench/mgpu/prove.py")
    p.add_argument("--only", default=None, help="run only steps whose id contains one of these (comma list)")
    p.add_argument("--results-dir", default=os.path.join(ROOT, "bench/results/proofs"))
    p.add_argument("--list", action="store_true")
    p.add_argument("--prev-native", default=None, help="a source tree of the previous commit's native/ (for "
                   "mgpu.single-gpu-unchanged)")
    p.add_argument("--prev-commit", default=None)
    a = p.parse_args()
    if a.list:
        for pid, (op, t, unit) in TARGETS.items():
            print(f"{pid:<28} {op} {t}  {unit}")
        return 0
    a.log = a.log or os.path.join(tempfile.gettempdir(), "mgpu-proofs.log")
    R = Runner(a)
    gpu = smi()
    gpus = gpu.get("gpus") or []
    log(f"GPUs: {[g['name'] for g in gpus]}; lib {R.lib} ({'present' if os.path.exists(R.lib) else 'MISSING'})")
    proofs = []
    if len(gpus) < 2:
        why = f"{len(gpus)} GPU(s) visible: these proofs need 2 ({gpu.get('error', '')})"
        proofs = [proof(pid, None, why, False) for pid in TARGETS]
    else:
        R.run("warm-host", ["warm-host", "--gib", "64"], R.env(False), 40)  # the VM grows its RAM on use
        for fn in (peer_copy, allreduce, ddp, tp):
            try:
                proofs.append(fn(R))
            except Exception as e:  # noqa: BLE001  (a bug here must not lose the other proofs)
                pid = {"peer_copy": "mgpu.peer-copy", "allreduce": "mgpu.nccl-allreduce", "ddp": "mgpu.ddp-bitwise",
                       "tp": "mgpu.tp-decode"}[fn.__name__]
                proofs.append(proof(pid, None, f"prove.py could not evaluate it: {type(e).__name__}: {e}", False))
        try:
            proofs.append(single_gpu(R))
        except Exception as e:  # noqa: BLE001
            proofs.append(proof("mgpu.single-gpu-unchanged", None, f"prove.py could not evaluate it: {e}", False))
    date = datetime.date.today().isoformat()
    card = card_slug(gpus[0]["name"] if gpus else None)
    rec = {"card": card, "driver": gpus[0]["driver"] if gpus else None, "commit": git_commit(), "date": date,
           "command": a.command, "proofs": proofs}
    os.makedirs(a.results_dir, exist_ok=True)
    path = os.path.join(a.results_dir, f"mgpu-{card}-{date}.json")
    raw = os.path.join(a.results_dir, f"mgpu-results-{card}-{date}.json")
    with open(path, "w") as f:
        json.dump(rec, f, indent=2)
    with open(raw, "w") as f:
        json.dump({"schema": "spillover-mgpu-results/1", "gpus": gpus, "date": date, "commit": rec["commit"],
                   "steps": R.steps, "seconds": round(time.time() - R.t0, 1)}, f, indent=1)
    if os.environ.get("OUT"):
        os.makedirs(os.environ["OUT"], exist_ok=True)
        for x in (path, raw):
            shutil.copy(x, os.environ["OUT"])
    for pr in proofs:
        log(f"{pr['id']:<28} {'PASS' if pr['pass'] else 'FAIL'}  measured {pr['measured']}  target {pr['target']}")
    log(f"wrote {path} and {raw}; {time.time() - R.t0:.0f} s in all")
    shutil.rmtree(R.stats, ignore_errors=True)
    return 0 if all(pr["pass"] for pr in proofs) else 1


if __name__ == "__main__":
    sys.exit(main())

"""llama.cpp as a real, unmodified client of spillover, in one GPU call of under 9 minutes.

Builds llama.cpp (the release node-llama-cpp bundles, carried in .carry/llama/) for sm_90 with
only llama-bench and llama-simple, writes two random-weight Q8_0 GGUFs while it builds (a dense
Llama-3-8B shape, 8.5 GB, and a Qwen3-30B-A3B-shaped MoE, 32.5 GB), measures the link with
native hwprobe, then runs llama-bench (pp512, tg128, 3 repetitions after its warm-up):

  (d) no spillover, every layer on the GPU (the reference; also gives the VRAM it needs)
  (a) every layer on the GPU under spillover, SPILLOVER_VRAM_LIMIT below the model
  (b) llama.cpp's own -ngl split at the VRAM (a) used (the most layers whose VRAM fits in it)
  (c) MoE only: --n-cpu-moe at the VRAM (a) used (the fewest layers' experts on the CPU)

"Same VRAM" is physical: nvidia-smi's peak during each run (spillover's limit does not count
the CUDA context; nvidia-smi does, for every run alike). Greedy tokens of llama-simple with a
fixed prompt are compared between (a) and (d). If time is left: pp2048 and pp8192 for the
strategies at equal VRAM (the request shapes `plan.picks-winner` compares).

Writes to $OUT (or --out): llamacpp-results.json (every command, its output, timings and
peaks), llamacpp-proofs.json (proof records: bench.llamacpp-runs, -prefill, -decode-bound,
-moe), hw-profile.json (the hardware profile `spillover plan --profile` reads), logs.
Standard library + numpy (the GGUF writer). No network, no Node."""

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "bench", "workloads"))
sys.dont_write_bytecode = True

import common  # noqa: E402  (the interposer's stats record reader)
import gguf_random  # noqa: E402

GIB = 1 << 30
MODELS = {
    # VRAM limits below the model: about 4 GB of the dense model's 8.5 GB and 17 GB of the
    # MoE's 32.5 GB end up in host memory.
    "dense": {"preset": "dense-8b", "limit": 5 * GIB},
    "moe": {"preset": "moe-30b-a3b", "limit": 16 * GIB},
}
PROMPT = "Once upon a time, in a land far away, there lived"
N_TOKENS = 32
REPS = 3


class Run:
    def __init__(self, out, work, deadline_s):
        self.t0 = time.time()
        self.deadline = self.t0 + deadline_s
        self.out = out
        self.work = work
        self.res = {
            "schema": "spillover-llamacpp/1",
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": os.environ.get("GIT_COMMIT") or "unknown",
            "command": os.environ.get("SPILLOVER_COMMAND") or "bash bench/llamacpp/run.sh",
            "card": {}, "llama_cpp": {}, "models": {}, "hw": None, "steps": [], "runs": {},
            "skipped": [],
        }
        self.children = []  # background processes (build, writer) to stop on the way out
        self.prebuilt = None

    def left(self):
        return self.deadline - time.time()

    def log(self, msg):
        line = f"[{time.time() - self.t0:6.1f} s] {msg}"
        print(line, flush=True)
        with open(os.path.join(self.out, "run.log"), "a") as f:
            f.write(line + "\n")

    def save(self):
        self.res["elapsed_s"] = round(time.time() - self.t0, 1)
        with open(os.path.join(self.out, "llamacpp-results.json"), "w") as f:
            json.dump(self.res, f, indent=1)
        with open(os.path.join(self.out, "llamacpp-proofs.json"), "w") as f:
            json.dump(proofs(self.res), f, indent=1)


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def card_info():
    q = "name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max"
    r = sh(["nvidia-smi", f"--query-gpu={q}", "--format=csv,noheader,nounits"])
    f = [x.strip() for x in r.stdout.strip().splitlines()[0].split(",")] if r.returncode == 0 else []
    info = dict(zip(["name", "driver", "memory_total_mib", "pcie_gen", "pcie_width"], f))
    info["slug"] = re.sub(r"[^a-z0-9]+", "-", info.get("name", "gpu").lower().replace("nvidia", "")).strip("-")
    return info


class Smi:
    """Peak physical VRAM in use (nvidia-smi, MiB) and, under spillover, the live stats record
    (pinned bytes of tiered ranges) while one process runs."""

    def __init__(self, pid=None, stats_dir=None):
        self.peak = 0
        self.samples = []
        self.pid = pid
        self.stats_dir = stats_dir
        self.stop = False
        self.proc = subprocess.Popen(
            ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-lms", "250"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()
        self.s = threading.Thread(target=self._stats, daemon=True)
        if pid and stats_dir:
            self.s.start()

    def _read(self):
        for line in self.proc.stdout:
            try:
                self.peak = max(self.peak, int(line.strip().split()[0]))
            except (ValueError, IndexError):
                pass

    def _stats(self):
        os.environ["SPILLOVER_STATS_DIR"] = self.stats_dir
        while not self.stop:
            st = common.read_stats(self.pid)
            if st:
                self.samples.append((round(time.time(), 2), st.get("tier_pinned_bytes", 0),
                                     st.get("tier_vram_bytes", 0), st.get("migrations", 0)))
            time.sleep(0.25)

    def end(self):
        self.stop = True
        time.sleep(0.3)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.peak


def spill_env(limit, stats_dir):
    env = dict(os.environ)
    env.update({"LD_PRELOAD": os.path.join(ROOT, "native", "build", "libspillover.so"),
                "SPILLOVER_VRAM_LIMIT": str(limit), "SPILLOVER_BROKER": "off",
                "SPILLOVER_LOG": "info", "SPILLOVER_KEEP_STATS": "1",
                "SPILLOVER_STATS_DIR": stats_dir})
    return env


def run_cmd(R, key, argv, env=None, timeout=120.0, spill_stats_dir=None):
    """Runs one client process with the VRAM sampler; records everything under runs[key]."""
    timeout = max(5.0, min(timeout, R.left() - 5))
    R.log(f"{key}: {' '.join(argv)}" + (" (spillover)" if spill_stats_dir else ""))
    t = time.time()
    q = sh(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"])
    idle_mib = int(q.stdout.split()[0]) if q.returncode == 0 and q.stdout.strip() else None
    # backslashreplace: greedy output of random weights prints raw byte tokens; kept exact
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         encoding="utf-8", errors="backslashreplace", env=env)
    smi = Smi(p.pid, spill_stats_dir)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        rc = "timeout"
    peak = smi.end()
    rec = {"command": " ".join(argv), "spillover": bool(spill_stats_dir), "rc": rc,
           "seconds": round(time.time() - t, 2), "vram_peak_mib": peak, "vram_idle_mib": idle_mib,
           "stdout": out[-20000:], "stderr_tail": err[-6000:]}
    if spill_stats_dir:
        rec["env"] = {k: env[k] for k in env if k.startswith("SPILLOVER_")}
        os.environ["SPILLOVER_STATS_DIR"] = spill_stats_dir
        rec["spill_stats"] = common.read_stats(p.pid)
        rec["stats_samples"] = smi.samples[-400:]
    R.res["runs"][key] = rec
    R.log(f"{key}: rc {rc} in {rec['seconds']} s, VRAM peak {peak} MiB")
    R.save()
    return rec


def bench_results(rec):
    """llama-bench -o json: one object per test; keep the numbers."""
    try:
        tests = json.loads(rec["stdout"][rec["stdout"].index("["):])
    except (ValueError, KeyError):
        return None
    out = []
    for x in tests:
        ts = x.get("samples_ts") or []
        out.append({"n_prompt": x.get("n_prompt"), "n_gen": x.get("n_gen"),
                    "n_gpu_layers": x.get("n_gpu_layers"), "n_cpu_moe": x.get("n_cpu_moe"),
                    "avg_ts": x.get("avg_ts"), "stddev_ts": x.get("stddev_ts"), "samples_ts": ts,
                    "median_ts": statistics.median(ts) if ts else None,
                    "min_ts": min(ts) if ts else None, "max_ts": max(ts) if ts else None,
                    "build_commit": x.get("build_commit")})
    return out


def source(R):
    """llama.cpp source: the carried tarball (made from the bundle), else git clone of the bundle."""
    carry = os.path.join(ROOT, ".carry", "llama")
    src = os.path.join(R.work, "llama.cpp")
    if os.path.exists(os.path.join(src, "CMakeLists.txt")):
        return src
    tar = os.path.join(carry, "llama.cpp-src.tar.xz")
    if os.path.exists(tar):
        with tarfile.open(tar) as t:
            if hasattr(tarfile, "fully_trusted_filter"):  # our own archive (Python >= 3.12)
                t.extractall(R.work, filter="fully_trusted")
            else:
                t.extractall(R.work)
    elif shutil.which("git") and os.path.exists(os.path.join(carry, "gitRelease.bundle")):
        r = sh(["git", "clone", "-q", os.path.join(carry, "gitRelease.bundle"), src])
        if r.returncode != 0:
            raise RuntimeError(f"git clone of the bundle failed: {r.stderr[-500:]}")
    else:
        raise RuntimeError(".carry/llama/ has neither llama.cpp-src.tar.xz nor gitRelease.bundle "
                           "(with git): see bench/README.md, 'llama.cpp'")
    meta = os.path.join(carry, "SOURCE.json")
    if os.path.exists(meta):
        R.res["llama_cpp"].update(json.load(open(meta)))
    return src


def model_dir(R):
    """/dev/shm when it holds both models (writing there is memory speed), else the work dir."""
    need = 45e9
    try:
        st = os.statvfs("/dev/shm")
        if st.f_bavail * st.f_frsize > need:
            return "/dev/shm/spillover-llamacpp"
    except OSError:
        pass
    return os.path.join(R.work, "models")


def layer_bytes(preset):
    """Per-layer bytes, routed-expert bytes per layer, token embedding, output head (+ norm)."""
    m = gguf_random.MODELS[preset]
    per = [0] * m["layers"]
    exps = [0] * m["layers"]
    emb = out = 0
    for name, dims, t in gguf_random.tensors(m):
        b = gguf_random.nbytes(dims, t)
        mm = re.match(r"blk\.(\d+)\.", name)
        if mm:
            per[int(mm.group(1))] += b
            if "_exps." in name:
                exps[int(mm.group(1))] += b
        elif name.startswith("token_embd"):
            emb += b
        else:
            out += b
    return per, exps, emb, out


def pick_ngl(preset, p_d, p_a):
    """The most layers -ngl can put on the GPU with a VRAM peak at most (a)'s: -ngl N offloads
    the last N blocks, N = layers + 1 also the output head; the embeddings stay on the CPU."""
    per, _, _, out = layer_bytes(preset)
    L = len(per)
    for n in range(L + 1, -1, -1):
        off_cpu = sum(per[: L - min(n, L)]) + (0 if n > L else out)
        if p_d - off_cpu / 2**20 <= p_a:
            return n
    return 0


def pick_ncmoe(preset, p_d, p_a):
    """The fewest layers whose routed experts --n-cpu-moe keeps on the CPU for (a)'s VRAM peak."""
    _, exps, _, _ = layer_bytes(preset)
    for n in range(0, len(exps) + 1):
        if p_d - sum(exps[:n]) / 2**20 <= p_a:
            return n
    return len(exps)


def bench(R, key, bin_dir, model, extra, spill=None, prompts="512", gens="128", reps=REPS,
          timeout=150.0):
    argv = [os.path.join(bin_dir, "llama-bench"), "-m", model, "-p", prompts, "-n", gens,
            "-r", str(reps), "-o", "json"] + extra
    env = None
    stats_dir = None
    if spill is not None:
        stats_dir = os.path.join(R.work, "stats", key.replace("/", "-"))
        os.makedirs(stats_dir, exist_ok=True)
        env = spill_env(spill, stats_dir)
    rec = run_cmd(R, key, argv, env=env, timeout=timeout, spill_stats_dir=stats_dir)
    rec["bench"] = bench_results(rec)
    R.save()
    return rec


def simple(R, key, bin_dir, model, spill=None):
    argv = [os.path.join(bin_dir, "llama-simple"), "-m", model, "-n", str(N_TOKENS), "-ngl", "99",
            PROMPT]
    env = None
    stats_dir = None
    if spill is not None:
        stats_dir = os.path.join(R.work, "stats", key.replace("/", "-"))
        os.makedirs(stats_dir, exist_ok=True)
        env = spill_env(spill, stats_dir)
    rec = run_cmd(R, key, argv, env=env, timeout=90.0, spill_stats_dir=stats_dir)
    text = rec["stdout"]
    gen = text[text.find(PROMPT) + len(PROMPT):] if PROMPT in text else text
    rec["generated_text"] = gen
    rec["token_pieces"] = re.findall(r"\[(\d+)\]", gen)
    R.save()
    return rec


def wait_file(R, path, proc, what):
    while not os.path.exists(path):
        if proc.poll() is not None and not os.path.exists(path):
            raise RuntimeError(f"{what}: the writer exited ({proc.returncode}) without {path}")
        if R.left() < 20:
            raise RuntimeError(f"{what}: not written before the deadline")
        time.sleep(1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or os.path.join(ROOT, "native", "build", "llamacpp-out"))
    ap.add_argument("--work", default="/tmp/spillover-llamacpp")
    ap.add_argument("--deadline-s", type=float, default=525.0,
                    help="stop starting work after this many seconds (the GPU call allows 600)")
    # For checking this script off the GPU machine: small models, an existing (CPU) build.
    ap.add_argument("--presets", default=None, help="e.g. dense=tiny-dense,moe=tiny-moe")
    ap.add_argument("--prebuilt", default=None, help="a llama.cpp build dir with bin/ to use as is")
    a = ap.parse_args()
    for kv in (a.presets or "").split(","):
        if kv:
            k, v = kv.split("=")
            MODELS[k]["preset"] = v
    os.makedirs(a.out, exist_ok=True)
    os.makedirs(a.work, exist_ok=True)
    R = Run(a.out, a.work, a.deadline_s)
    R.prebuilt = a.prebuilt
    R.res["card"] = card_info()
    R.log(f"card {R.res['card']}")
    try:
        go(R)
    except Exception as e:  # recorded: what ran stays in the results
        R.res["error"] = f"{type(e).__name__}: {e}"
        R.log(f"stopped: {R.res['error']}")
    for p in R.children:
        if p.poll() is None:
            p.kill()
    cleanup(R)
    R.save()
    R.log(f"done in {time.time() - R.t0:.0f} s; results in {a.out}")


def go(R):
    build_dir = R.prebuilt or os.path.join(R.work, "build")
    blog = open(os.path.join(R.out, "build.log"), "w")
    if R.prebuilt:
        build = subprocess.Popen(["true"])
    else:
        src = source(R)
        build = subprocess.Popen(["bash", os.path.join(HERE, "build.sh"), src, build_dir],
                                 stdout=blog, stderr=subprocess.STDOUT)
    R.children.append(build)
    R.log("llama.cpp build started")
    mdir = model_dir(R)
    os.makedirs(mdir, exist_ok=True)
    paths = {k: os.path.join(mdir, f"{v['preset']}-q8_0.gguf") for k, v in MODELS.items()}
    wlog = open(os.path.join(R.out, "gguf-writer.log"), "w")
    writer = subprocess.Popen(
        ["bash", "-c", " && ".join(
            f"{sys.executable} {os.path.join(HERE, 'gguf_random.py')} {MODELS[k]['preset']} {paths[k]}"
            for k in ("dense", "moe"))], stdout=wlog, stderr=subprocess.STDOUT)
    R.children.append(writer)
    R.log(f"writing {paths}")
    for k, v in MODELS.items():
        per, exps, emb, out = layer_bytes(v["preset"])
        R.res["models"][k] = {"preset": v["preset"], "path": paths[k], "vram_limit_bytes": v["limit"],
                              "weight_bytes": sum(per) + emb + out, "layer_bytes": per[0],
                              "expert_bytes_per_layer": exps[0], "embedding_bytes": emb,
                              "output_bytes": out}
    mk = sh(["make", "-C", os.path.join(ROOT, "native"), "-j8", "build/libspillover.so"])
    R.res["steps"].append({"step": "make libspillover.so", "rc": mk.returncode,
                           "tail": (mk.stdout + mk.stderr)[-1500:]})
    if mk.returncode != 0:
        raise RuntimeError("make -C native build/libspillover.so failed")
    R.save()

    while build.poll() is None:
        if R.left() < 120:
            build.kill()
            raise RuntimeError("llama.cpp build did not finish in time")
        time.sleep(2)
    R.res["steps"].append({"step": "build llama.cpp", "rc": build.returncode,
                           "seconds": round(time.time() - R.t0, 1)})
    bin_dir = os.path.join(build_dir, "bin")
    if build.returncode != 0 or not os.path.exists(os.path.join(bin_dir, "llama-bench")):
        raise RuntimeError(f"llama.cpp build failed ({build.returncode}): see build.log")
    R.log("llama.cpp built")

    # The link, measured in this run (the decode bound's denominator) and the planner's profile,
    # once the writer no longer competes for memory bandwidth.
    wait_file(R, paths["dense"], writer, "dense model")
    while writer.poll() is None and R.left() > 300:
        time.sleep(1)
    hw = sh(["bash", os.path.join(ROOT, "native", "gpu", "hwprobe.sh")],
            env=dict(os.environ, OUT=os.path.join(R.out, "hw")), timeout=max(10, min(120, R.left() - 200)))
    prof = os.path.join(R.out, "hw", "hw-profile-h100.json")
    if os.path.exists(prof):
        shutil.copy(prof, os.path.join(R.out, "hw-profile.json"))
        R.res["hw"] = json.load(open(os.path.join(R.out, "hw", "hwprobe-h100.json")))
    R.res["steps"].append({"step": "hwprobe", "rc": hw.returncode, "tail": (hw.stdout + hw.stderr)[-800:]})
    R.log(f"hwprobe rc {hw.returncode}: h2d {(R.res['hw'] or {}).get('h2d_gbs')} GB/s")
    R.save()

    d, m = MODELS["dense"], MODELS["moe"]
    dp = paths["dense"]
    # Tokens: (d) and (a) with the same prompt, greedy.
    simple(R, "dense/d/tokens", bin_dir, dp)
    simple(R, "dense/a/tokens", bin_dir, dp, spill=d["limit"])
    # pp512 / tg128
    bench(R, "dense/d", bin_dir, dp, ["-ngl", "99"])
    bench(R, "dense/a", bin_dir, dp, ["-ngl", "99"], spill=d["limit"])
    p_d = R.res["runs"]["dense/d"]["vram_peak_mib"]
    p_a = R.res["runs"]["dense/a"]["vram_peak_mib"]
    ngl = pick_ngl(d["preset"], p_d, p_a)
    R.res["models"]["dense"]["ngl_at_same_vram"] = ngl
    bench(R, "dense/b", bin_dir, dp, ["-ngl", str(ngl)])

    wait_file(R, paths["moe"], writer, "MoE model")
    mp = paths["moe"]
    bench(R, "moe/d", bin_dir, mp, ["-ngl", "99"])
    bench(R, "moe/a", bin_dir, mp, ["-ngl", "99"], spill=m["limit"])
    pm_d = R.res["runs"]["moe/d"]["vram_peak_mib"]
    pm_a = R.res["runs"]["moe/a"]["vram_peak_mib"]
    ncmoe = pick_ncmoe(m["preset"], pm_d, pm_a)
    R.res["models"]["moe"]["ncmoe_at_same_vram"] = ncmoe
    bench(R, "moe/c", bin_dir, mp, ["-ngl", "99", "-ncmoe", str(ncmoe)])

    # Optional, as time allows: the request shapes of plan.picks-winner (prefill at 2048 and 8192
    # tokens; decode is tg128 above), MoE layer split, MoE tokens.
    ngl_m = pick_ngl(m["preset"], pm_d, pm_a)
    R.res["models"]["moe"]["ngl_at_same_vram"] = ngl_m
    optional = [
        ("dense/a/shapes", 30, lambda: bench(R, "dense/a/shapes", bin_dir, dp, ["-ngl", "99"], spill=d["limit"],
                           prompts="2048,8192", gens="0", reps=1)),
        ("dense/b/shapes", 25, lambda: bench(R, "dense/b/shapes", bin_dir, dp, ["-ngl", str(ngl)],
                           prompts="2048,8192", gens="0", reps=1)),
        ("moe/a/shapes", 35, lambda: bench(R, "moe/a/shapes", bin_dir, mp, ["-ngl", "99"], spill=m["limit"],
                           prompts="2048,8192", gens="0", reps=1)),
        ("moe/c/shapes", 30, lambda: bench(R, "moe/c/shapes", bin_dir, mp, ["-ngl", "99", "-ncmoe", str(ncmoe)],
                           prompts="2048,8192", gens="0", reps=1)),
        ("moe/b", 60, lambda: bench(R, "moe/b", bin_dir, mp, ["-ngl", str(ngl_m)], prompts="512,2048,8192")),
        ("moe/d/tokens", 40, lambda: simple(R, "moe/d/tokens", bin_dir, mp)),
        ("moe/a/tokens", 50, lambda: simple(R, "moe/a/tokens", bin_dir, mp, spill=m["limit"])),
    ]
    for name, need, step in optional:
        if R.left() < need:
            R.res["skipped"].append(f"{name}: {R.left():.0f} s left, it needs about {need} s")
            continue
        step()


def cleanup(R):
    """The models live in /dev/shm: give the memory back for whatever runs next on the machine."""
    for k, m in R.res["models"].items():
        for p in (m["path"], m["path"] + ".part"):
            if p.startswith("/dev/shm/") and os.path.exists(p):
                os.remove(p)
                R.log(f"removed {p}")


def proofs(res):
    """The proof records this run can give (plan.picks-winner is added by
    scripts/llamacpp-picks-winner.ts, which needs the planner)."""
    runs = res["runs"]
    card = res.get("card", {})

    def ts(key, p, g):
        for t in (runs.get(key) or {}).get("bench") or []:
            if t["n_prompt"] == p and t["n_gen"] == g:
                return t
        return None

    out = []
    a_tok, d_tok = runs.get("dense/a/tokens"), runs.get("dense/d/tokens")
    if a_tok and d_tok:
        # (a) must really have spilled: the interposer's record shows pinned host pages in use.
        st = a_tok.get("spill_stats") or {}
        spilled = (st.get("tier_pinned_peak") or 0) > 0
        ok = a_tok["rc"] == 0 and d_tok["rc"] == 0 and a_tok["stdout"] == d_tok["stdout"] and \
            len(d_tok.get("token_pieces", [])) > 0 and spilled
        out.append({"id": "bench.llamacpp-runs", "measured": 1 if ok else 0, "target": ">= 1",
                    "unit": "1 = llama.cpp (a) under spillover completed with tokens equal to (d)",
                    "pass": ok,
                    "detail": f"llama-simple, {N_TOKENS} greedy tokens of the dense Q8_0 GGUF, prompt {PROMPT!r}: "
                              f"(a) rc {a_tok['rc']} under SPILLOVER_VRAM_LIMIT={MODELS['dense']['limit']}, "
                              f"(d) rc {d_tok['rc']}; outputs "
                              f"{'identical' if a_tok['stdout'] == d_tok['stdout'] else 'differ'} "
                              f"({len(d_tok.get('token_pieces', []))} token ids printed); pinned host peak "
                              f"under spillover {(st.get('tier_pinned_peak') or 0) / 1e9:.2f} GB"
                              + ("" if spilled else " (nothing spilled: not a test of spillover)")})
    pa, pb = ts("dense/a", 512, 0), ts("dense/b", 512, 0)
    if pa and pb and pa["median_ts"] and pb["median_ts"]:
        v = pa["median_ts"] / pb["median_ts"]
        inside = pa["min_ts"] <= pb["max_ts"] and pb["min_ts"] <= pa["max_ts"]
        out.append({"id": "bench.llamacpp-prefill", "measured": round(v, 3), "target": ">= 5",
                    "unit": "ratio, pp512 tok/s: spillover (a) / llama.cpp -ngl (b), dense, same VRAM",
                    "pass": v >= 5 and not inside,
                    "detail": f"(a) {pa['median_ts']:.1f} tok/s (min {pa['min_ts']:.1f}, max {pa['max_ts']:.1f}, "
                              f"VRAM peak {runs['dense/a']['vram_peak_mib']} MiB) vs (b) -ngl "
                              f"{res['models']['dense'].get('ngl_at_same_vram')} {pb['median_ts']:.1f} tok/s "
                              f"(min {pb['min_ts']:.1f}, max {pb['max_ts']:.1f}, VRAM peak "
                              f"{runs['dense/b']['vram_peak_mib']} MiB)"})
    ta = ts("dense/a", 0, 128)
    hw = res.get("hw") or {}
    rec = runs.get("dense/a") or {}
    host = [s[1] for s in rec.get("stats_samples") or [] if s[1] > 0]
    if ta and ta["median_ts"] and hw.get("h2d_gbs") and host:
        host_bytes = host[-1]  # pinned bytes of tiered ranges at the last sample (during tg128)
        bound_s = host_bytes / (hw["h2d_gbs"] * 1e9)
        meas_s = 1 / ta["median_ts"]
        v = bound_s / meas_s
        out.append({"id": "bench.llamacpp-decode-bound", "measured": round(v, 3), "target": ">= 0.9",
                    "unit": "ratio: link bound (host bytes / pinned H2D) / measured time per token, dense (a)",
                    "pass": v >= 0.9,
                    "detail": f"{host_bytes / 1e9:.2f} GB in pinned host memory (the interposer's stats record, "
                              f"last sample of the run) / {hw['h2d_gbs']} GB/s pinned H2D (hwprobe, this run) = "
                              f"{bound_s * 1e3:.1f} ms; tg128 {ta['median_ts']:.2f} tok/s (min {ta['min_ts']:.2f}, "
                              f"max {ta['max_ts']:.2f}) = {meas_s * 1e3:.1f} ms per token"})
    ma, mc = ts("moe/a", 0, 128), ts("moe/c", 0, 128)
    if ma and mc and ma["median_ts"] and mc["median_ts"]:
        v = ma["median_ts"] / mc["median_ts"]
        inside = ma["min_ts"] <= mc["max_ts"] and mc["min_ts"] <= ma["max_ts"]
        out.append({"id": "bench.llamacpp-moe", "measured": round(v, 3), "target": ">= 1.0",
                    "unit": "ratio, tg128 tok/s: spillover (a) / --n-cpu-moe (c), MoE, same VRAM",
                    "pass": v >= 1.0 and not (inside and v < 1.0),
                    "detail": f"(a) {ma['median_ts']:.2f} tok/s (min {ma['min_ts']:.2f}, max {ma['max_ts']:.2f}, "
                              f"VRAM peak {runs['moe/a']['vram_peak_mib']} MiB) vs (c) --n-cpu-moe "
                              f"{res['models']['moe'].get('ncmoe_at_same_vram')} {mc['median_ts']:.2f} tok/s "
                              f"(min {mc['min_ts']:.2f}, max {mc['max_ts']:.2f}, VRAM peak "
                              f"{runs['moe/c']['vram_peak_mib']} MiB)"
                              + ("; the two ranges overlap: the difference is not a result" if inside else "")})
    return {"card": card.get("slug") or card.get("name"), "driver": card.get("driver"),
            "commit": res.get("git_commit"), "date": (res.get("date") or "")[:10],
            "command": res.get("command"), "proofs": out}


if __name__ == "__main__":
    main()

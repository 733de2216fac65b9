#!/usr/bin/env python3
"""assemble_proofs.py: the last step of prove.sh. Reads $OUT/steps.tsv (name, exit code, seconds,
command per step), the JSON each step produced, and writes $OUT/issue2-proofs.json (schema
"spillover-issue2-proofs/1"): the card, driver, CUDA version, date, git commit, and every command
with its result and a PASS/FAIL/SKIP verdict. Prints one verdict line per step and exits 0 only
if every required proof passed.

  python3 assemble_proofs.py OUT_DIR REPO_ROOT
"""

import datetime
import json
import os
import re
import subprocess
import sys


def last_json(path: str):
    """The last line of a log that parses as a JSON object (the demo prints one)."""
    try:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    return None


def load(path: str):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def tail(path: str, n: int = 5) -> list[str]:
    try:
        with open(path, errors="replace") as f:
            return f.read().splitlines()[-n:]
    except OSError:
        return []


def verdict_8a(r):
    if not r:
        return False, "no JSON result"
    sp = r.get("spillover", {})
    pinned = (sp.get("tier_bytes") or {}).get("pinned", 0)
    limit = r["device"]["vram_limit"]
    ratio = r["allocated_bytes"] / limit if limit else 0
    ok = bool(r.get("ok")) and sp.get("loaded") and pinned > 0 and ratio >= 2.9
    return ok, (
        f"allocated {r['allocated_bytes'] / 2**30:.2f} GiB = {ratio:.2f}x the {limit / 2**30:.2f} GiB limit, "
        f"mismatches {r['mismatches_pass1']}+{r['mismatches_pass2']}, "
        f"pinned host {pinned / 2**30:.2f} GiB, spillover loaded {sp.get('loaded')}"
    )


def verdict_baseline(r):
    if not r:
        return False, "no JSON result"
    ok = r.get("alloc_error") == "CUDA_ERROR_OUT_OF_MEMORY" and r.get("mismatches_pass1") == 0
    return ok, (
        f"without spillover: {r.get('alloc_error')} after {r['allocated_bytes'] / 2**30:.2f} GiB of "
        f"{r['requested_bytes'] / 2**30:.2f} GiB requested"
    )


def verdict_8c(r):
    if not r:
        return False, "no JSON result"
    ok = bool(r.get("measured")) and r.get("ratio_tiered_over_copy", 0) >= 0.90
    return ok, (
        f"pinned copy {r['h2d_pinned_copy_gbps']:.1f} GB/s, tiered host read {r['tiered_host_read_gbps']:.1f} GB/s, "
        f"VRAM read {r['vram_read_gbps']:.1f} GB/s, ratio {r['ratio_tiered_over_copy']:.3f} (>= 0.90), "
        f"placement: {r.get('placement')}"
    )


def verdict_llama_ref(r):
    if not r:
        return False, "no result file"
    return True, f"decode {r['decode_ms']:.0f} ms for 64 tokens, checksum {r['checksum']['sum_f64']:.6e}"


def verdict_llama(r):
    if not r:
        return False, "no result file"
    c = r.get("compare", {})
    st = r.get("spillover_stats") or {}
    peak = (st.get("tier_peak") or {}).get("pinned", 0)
    return bool(r.get("ok")), (
        f"same tokens {c.get('same_tokens')} (first diff {c.get('first_differing_token')}), "
        f"same weights {c.get('same_weights_checksum')}, spilled {c.get('spilled_to_host')} "
        f"(peak pinned {peak / 2**30:.2f} GiB, program VMM host {st.get('program_vmm_host_bytes', 0) / 2**30:.2f} GiB), "
        f"decode {r['decode_ms']:.0f} ms = {c.get('decode_slowdown_vs_ref') or 0:.2f}x the reference"
    )


# name -> (required, where the result is, verdict function)
CHECKS = {
    "build": (True, None, None),
    "ptx-compiles": (False, None, None),
    "8a-demo": (True, "log", verdict_8a),
    "8a-baseline-no-spillover": (False, "log", verdict_baseline),
    "8c-bandwidth": (True, "log", verdict_8c),
    "8b-llama-reference": (True, "json", verdict_llama_ref),
    "8b-llama-default": (True, "json", verdict_llama),
    "8b-llama-expandable": (True, "json", verdict_llama),
    "8b-llama-cudamallocasync": (True, "json", verdict_llama),
}


def main() -> int:
    out, root = sys.argv[1], sys.argv[2]
    steps = {}
    try:
        with open(os.path.join(out, "steps.tsv")) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t", 3)
                if len(parts) == 4:
                    steps[parts[0]] = {"exit": parts[1], "seconds": int(parts[2]), "command": parts[3]}
    except OSError:
        pass

    gpu = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    smi = run(["nvidia-smi"])
    m = re.search(r"CUDA Version: ([0-9.]+)", smi)
    nvcc = re.search(r"release ([0-9.]+)", run(["nvcc", "--version"]))
    # GIT_COMMIT first: the GPU machine gets a copy of the tree whose .git may not resolve HEAD.
    commit = os.environ.get("GIT_COMMIT") or run(["git", "-C", root, "rev-parse", "--verify", "-q", "HEAD"]) or "unknown"
    card = [x.strip() for x in gpu.splitlines()[0].split(",")] if gpu else []

    results = []
    all_ok = True
    for name, (required, kind, fn) in CHECKS.items():
        s = steps.get(name)
        entry = {"name": name, "required": required}
        if s is None or s["exit"] == "skipped":
            entry.update({"status": "SKIP", "detail": "not run" if s is None else "skipped: the time budget was spent"})
            if s:
                entry["command"] = s["command"]
            all_ok = all_ok and not required
            results.append(entry)
            print(f"SKIP {name}: {entry['detail']}")
            continue
        entry.update({"command": s["command"], "exit_code": int(s["exit"]), "seconds": s["seconds"]})
        log = os.path.join(out, f"{name}.log")
        if kind == "log":
            res = last_json(log)
        elif kind == "json":
            res = load(os.path.join(out, f"{name}.json"))
        else:
            res = None
        if fn is None:
            ok, detail = entry["exit_code"] == 0, f"exit {entry['exit_code']}"
        else:
            try:
                ok, detail = fn(res)
            except (KeyError, TypeError, ZeroDivisionError) as e:
                ok, detail = False, f"unreadable result ({e!r})"
        if entry["exit_code"] == 124:
            detail = f"timed out; {detail}"
        entry.update({"status": "PASS" if ok else "FAIL", "detail": detail, "result": res})
        if not ok:
            entry["log_tail"] = tail(log)
        all_ok = all_ok and (ok or not required)
        results.append(entry)
        print(f"{'PASS' if ok else 'FAIL'} {name}{'' if required else ' (informational)'}: {detail}")

    doc = {
        "schema": "spillover-issue2-proofs/1",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit,
        "card": {
            "name": card[0] if card else None,
            "driver_version": card[1] if len(card) > 1 else None,
            "memory_total": card[2] if len(card) > 2 else None,
        },
        "cuda_driver_version": m.group(1) if m else None,
        "nvcc_version": nvcc.group(1) if nvcc else None,
        "steps": results,
        "ok": all_ok,
    }
    with open(os.path.join(out, "issue2-proofs.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(f"{'PASS' if all_ok else 'FAIL'} issue2 proofs (card {doc['card']['name']}, commit {commit[:12]})")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())

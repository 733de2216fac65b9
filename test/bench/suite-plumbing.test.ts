// Runs the real suite orchestrator (bench/suite.py) on this GPU-less machine with stub torch, jax
// and cupy modules that fail on import: every workload process fails, and the results file must
// still be complete, record each failure with its error tail, and validate against the schema
// the report reads. Checks the contract between the Python suite and the TypeScript report, the
// split into parts (one GPU call may last 10 minutes) and the merge of parts.

import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseBenchResults } from "../../src/bench/schema.js";

const root = join(import.meta.dirname, "..", "..");

function havePython(): boolean {
  try {
    execFileSync("python3", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

function stubModules(): string {
  const dir = mkdtempSync(join(tmpdir(), "spill-stubs-"));
  for (const m of ["torch", "jax", "cupy", "transformers", "accelerate"]) {
    mkdirSync(join(dir, m));
    writeFileSync(
      join(dir, m, "__init__.py"),
      `raise ImportError("stub ${m}: no GPU in unit tests")\n`,
    );
  }
  return dir;
}

function runSuite(args: string[], out = mkdtempSync(join(tmpdir(), "spill-suite-"))) {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    PYTHONPATH: stubModules(),
    GIT_COMMIT: "abc123",
  };
  delete env.OUT;
  const stdout = execFileSync(
    "python3",
    [join(root, "bench/suite.py"), "--results-dir", out, "--lib", join(out, "missing.so"), ...args],
    { env, encoding: "utf8" },
  );
  const file = stdout.match(/^results: (.*\.json)$/m)?.[1];
  if (!file) throw new Error(`suite printed no results path:\n${stdout}`);
  return { results: parseBenchResults(JSON.parse(readFileSync(file, "utf8")), file), stdout, file };
}

function py(code: string): string {
  const prelude = `import sys, json; sys.path.insert(0, ${JSON.stringify(join(root, "bench"))}); import suite`;
  return execFileSync("python3", ["-c", `${prelude}\n${code}`], {
    encoding: "utf8",
    env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
  });
}

describe.skipIf(!havePython())("bench/suite.py orchestration without a GPU", () => {
  it("records every failed workload with its error and writes a results file the report accepts", () => {
    const { results, stdout } = runSuite(["--smoke"]);
    expect(results.smoke).toBe(true);
    expect(results.fixture).toBe(false);
    expect(results.git_commit).toBe("abc123");
    expect(results.bandwidth).toBeNull();
    expect(results.interposer.present).toBe(false);
    expect(results.reserve_bytes).toBe(256 * 2 ** 20);
    expect(results.workloads.map((w) => w.id)).toContain("dense-smoke/reference-repeat");
    expect(results.workloads.length).toBeGreaterThanOrEqual(8);
    for (const w of results.workloads) {
      expect(w.status).toBe("failed");
      if (w.spillover) {
        expect(w.error).toMatch(/interposer not built/);
      } else {
        expect(w.exit_code).toBe(1);
        expect(w.error).toMatch(/stub (torch|jax|cupy): no GPU in unit tests/);
      }
    }
    expect(stdout).toMatch(/results: .*-smoke\.json/);
  });

  it("skips what the time budget no longer allows, and says so", () => {
    const { results } = runSuite(["--smoke", "--budget-s", "0"]);
    expect(results.workloads.every((w) => w.status === "skipped")).toBe(true);
    expect(results.workloads[0]?.error).toMatch(/time budget spent/);
  });

  it("splits the full suite into parts that cover every workload once, each with its own probe", () => {
    for (const n of [2, 3]) {
      const parts = JSON.parse(
        py(
          "w, _, _ = suite.plan(False)\n" +
            `print(json.dumps({"all": [x["id"] for x in w], "parts": [[x["id"] for x in suite.select_part(w, k, ${n})] for k in range(1, ${n} + 1)]}))`,
        ),
      ) as { all: string[]; parts: string[][] };
      for (const p of parts.parts) expect(p[0]).toBe("probe");
      const rest = parts.parts.flatMap((p) => p.slice(1)).sort();
      expect(rest).toEqual(parts.all.filter((id) => id !== "probe").sort());
    }
  });

  it("repeats each model's no-spillover reference once, in its own process and in the same part", () => {
    const plan = JSON.parse(
      py(
        "w, _, _ = suite.plan(False)\n" +
          'parts = {x["id"]: k for k in (1, 2, 3) for x in suite.select_part(w, k, 3) if x["id"] != "probe"}\n' +
          'print(json.dumps([{"id": x["id"], "group": x["group"], "mode": x["mode"], "spill": x["spill"], "env": x["env"], "spec": x["spec"], "part": parts[x["id"]]} for x in w if x["group"].startswith("llm")]))',
      ),
    ) as {
      id: string;
      group: string;
      mode: string;
      spill: boolean;
      env: Record<string, string>;
      spec: Record<string, unknown>;
      part: number;
    }[];
    for (const model of ["dense-8g", "dense-20g", "moe-11g"]) {
      const reps = plan.filter((x) => x.id === `${model}/reference-repeat`);
      expect(reps).toHaveLength(1);
      const rep = reps[0];
      const base = plan.find((x) => x.id === `${model}/baseline`);
      expect(rep?.group).toBe("llm-repeat");
      expect(rep?.spill).toBe(false);
      expect(rep?.env).toEqual({});
      expect(rep?.spec.mode).toBe("reference-repeat");
      expect(rep?.spec.seed).toBe(base?.spec.seed);
      expect(rep?.spec.ttft_prompt).toBe(base?.spec.ttft_prompt);
      expect(rep?.part).toBe(base?.part);
    }
  });

  it("says in the log whether the reference repeat gave the baseline's tokens", () => {
    const out = py(
      "def e(i, g, mode, toks, same=True):\n" +
        '    return {"id": i, "group": g, "model": "m", "mode": mode, "status": "ok", "duration_s": 1.0, "spillover": False, "error": None, "spill_stats": None,\n' +
        '            "metrics": {"tokens": toks, "decode": {"runs": [{"same_tokens_as_first": True}, {"same_tokens_as_first": same}]}, "prefill": {}}}\n' +
        'print(suite.summarize([e("m/baseline", "llm", "baseline", [1, 2, 3]), e("m/reference-repeat", "llm-repeat", "reference-repeat", [1, 2, 4], False)]))',
    );
    expect(out).toMatch(
      /m\/reference-repeat .*tokens vs baseline DIFFERENT: the program varies on its own \(3\) {2}in-process repeats DIFFERENT/,
    );
  });

  it("merges part files into one results file the report accepts", () => {
    const dir = mkdtempSync(join(tmpdir(), "spill-parts-"));
    const a = runSuite(["--smoke", "--part", "1/2"], dir);
    const b = runSuite(["--smoke", "--part", "2/2"], dir);
    expect(a.results.part).toBe("1/2");
    expect(a.file).toMatch(/-smoke-part1of2\.json$/);
    const merged = mkdtempSync(join(tmpdir(), "spill-merged-"));
    const msg = execFileSync(
      "python3",
      [join(root, "bench/suite.py"), "--merge", a.file, b.file, "--results-dir", merged],
      { encoding: "utf8", env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } },
    );
    const path = msg.match(/into (.*\.json)$/m)?.[1] as string;
    const r = parseBenchResults(JSON.parse(readFileSync(path, "utf8")), path);
    expect(r.parts).toHaveLength(2);
    expect(r.part).toBeNull();
    const ids = r.workloads.map((w) => w.id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.filter((id) => id.startsWith("probe"))).toEqual(["probe", "probe (part 2/2)"]);
    expect(r.workloads.length).toBe(a.results.workloads.length + b.results.workloads.length);
  });

  it("refuses to merge files that are not results, with one line", () => {
    const dir = mkdtempSync(join(tmpdir(), "spill-badmerge-"));
    writeFileSync(join(dir, "x.json"), JSON.stringify({ schema: "nope" }));
    let err = "";
    try {
      execFileSync("python3", [join(root, "bench/suite.py"), "--merge", join(dir, "x.json")], {
        encoding: "utf8",
        stdio: "pipe",
        env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
      });
    } catch (e) {
      err = String((e as { stderr: string }).stderr);
    }
    expect(err.trim()).toMatch(/^suite\.py --merge: not a spillover-bench\/1 results file/);
    expect(err.trim().split("\n")).toHaveLength(1);
  });

  it("plans VRAM limits as fraction x weight bytes + the allowance, with a reserve that leaves the weights' share inside limit - reserve", () => {
    const lines = execFileSync("python3", [join(root, "bench/suite.py"), "--list"], {
      encoding: "utf8",
    })
      .trim()
      .split("\n")
      .map(
        (l) =>
          JSON.parse(l) as {
            id: string;
            fraction: number | null;
            vram_limit_bytes: number | null;
            env: Record<string, string>;
          },
      );
    const weights = JSON.parse(
      py(
        "print(json.dumps({k: suite.predicted_weight_bytes(m) for k, m in suite.MODELS_FULL.items()}))",
      ),
    ) as Record<string, number>;
    const spill = lines.filter((l) => l.id.includes("/spillover-") && l.fraction !== null);
    expect(spill.map((l) => l.id)).toContain("dense-20g/spillover-25");
    for (const l of spill) {
      const model = l.id.split("/")[0] as string;
      const expected =
        Math.floor((l.fraction as number) * (weights[model] as number)) + 2 * 2 ** 30;
      expect(l.vram_limit_bytes).toBe(expected);
      expect(l.env.SPILLOVER_VRAM_LIMIT).toBe(String(expected));
      // the reserve serves only requests up to SPILLOVER_THRESHOLD: the weights' share plus 1 GiB
      // of headroom for the other large allocations must fit limit - reserve
      expect(l.env.SPILLOVER_VRAM_RESERVE).toBe(String(2 ** 30));
      expect(expected - Number(l.env.SPILLOVER_VRAM_RESERVE)).toBeGreaterThanOrEqual(
        Math.floor((l.fraction as number) * (weights[model] as number)) + 2 ** 30,
      );
    }
    // about 8 GB, about 20 GB and a 10-16 GB MoE, as the suite promises
    expect(weights["dense-8g"]).toBeGreaterThan(7e9);
    expect(weights["dense-8g"]).toBeLessThan(9e9);
    expect(weights["dense-20g"]).toBeGreaterThan(19e9);
    expect(weights["dense-20g"]).toBeLessThan(22e9);
    expect(weights["moe-11g"]).toBeGreaterThan(10e9);
    expect(weights["moe-11g"]).toBeLessThan(16e9);
  });
});

// `npm run bench:report`: file selection, fixture guard, output files, one-line errors.
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { newestResults, runBenchReport } from "../../bench/report/report-cli.js";
import { FIXTURE_PATH, rawFixture } from "./fixture.js";

const sandboxes: string[] = [];
afterAll(() => {
  for (const d of sandboxes) rmSync(d, { recursive: true, force: true });
});

function sandbox() {
  const cwd = mkdtempSync(join(tmpdir(), "bench-report-"));
  sandboxes.push(cwd);
  const out: string[] = [];
  const err: string[] = [];
  const io = { cwd, stdout: (l: string) => out.push(l), stderr: (l: string) => err.push(l) };
  return { cwd, out, err, io };
}

describe("bench:report", () => {
  it("picks the newest whole-suite run: not smoke runs, unmerged parts or other files", () => {
    const { cwd } = sandbox();
    const dir = join(cwd, "bench/results");
    mkdirSync(dir, { recursive: true });
    for (const n of [
      "2026-11-20-h100.json",
      "2026-11-27-h100.json",
      "2026-11-28-h100-smoke.json",
      "2026-11-28-h100-part1of3.json",
      "interposer-gpu-run2.json",
      "notes.txt",
    ]) {
      writeFileSync(join(dir, n), "{}");
    }
    expect(newestResults(dir)).toBe(join(dir, "2026-11-27-h100.json"));
    expect(newestResults(join(cwd, "nope"))).toBeNull();
  });

  it("of one day's runs picks the last by name, compared without .json (…-migrate after …)", () => {
    const { cwd } = sandbox();
    const dir = join(cwd, "bench/results");
    mkdirSync(dir, { recursive: true });
    for (const n of [
      "2026-11-26-h100-zz.json",
      "2026-11-27-h100.json",
      "2026-11-27-h100-migrate.json",
    ])
      writeFileSync(join(dir, n), "{}");
    expect(newestResults(dir)).toBe(join(dir, "2026-11-27-h100-migrate.json"));
  });

  it("writes the markdown and every chart it references", () => {
    const { cwd, out, err, io } = sandbox();
    const code = runBenchReport(["--results", FIXTURE_PATH, "--out", "docs/benchmarks.md"], io);
    expect(err).toEqual([]);
    expect(code).toBe(0);
    const md = readFileSync(join(cwd, "docs/benchmarks.md"), "utf8");
    for (const m of md.matchAll(/!\[[^\]]*\]\((img\/[^)]+)\)/g)) {
      expect(existsSync(join(cwd, "docs", m[1] as string))).toBe(true);
    }
    expect(out[0]).toMatch(/wrote docs\/benchmarks\.md and 6 charts in docs\/img/);
  });

  it("refuses to render the fixture into the default docs path", () => {
    const { cwd, err, io } = sandbox();
    mkdirSync(join(cwd, "bench/results"), { recursive: true });
    copyFileSync(FIXTURE_PATH, join(cwd, "bench/results/2026-11-27-h100.json"));
    expect(runBenchReport([], io)).toBe(1);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(/is a test fixture, not a measurement; pass --out/);
    expect(existsSync(join(cwd, "docs/benchmarks.md"))).toBe(false);
  });

  it("renders a real results file found in bench/results by default", () => {
    const { cwd, io } = sandbox();
    mkdirSync(join(cwd, "bench/results"), { recursive: true });
    const raw = rawFixture();
    raw.fixture = false;
    writeFileSync(join(cwd, "bench/results/2026-11-27-h100.json"), JSON.stringify(raw));
    expect(runBenchReport([], io)).toBe(0);
    expect(readFileSync(join(cwd, "docs/benchmarks.md"), "utf8")).toContain(
      "from bench/results/2026-11-27-h100.json",
    );
  });

  it("cites the records in bench/results/runs/ next to the results, and names a record that is not JSON", () => {
    const { cwd, err, io } = sandbox();
    const runs = join(cwd, "bench/results/runs");
    mkdirSync(runs, { recursive: true });
    const records = join(import.meta.dirname, "..", "fixtures", "bench", "records");
    for (const n of readdirSync(records)) copyFileSync(join(records, n), join(runs, n));
    writeFileSync(join(runs, "2026-11-27-notes.json"), "{not json");
    const raw = rawFixture();
    raw.fixture = false;
    const base = (
      raw.workloads.find((w) => w.id === "dense-20g/baseline") as {
        metrics: { tokens: number[] };
      }
    ).metrics.tokens;
    const det = JSON.parse(
      readFileSync(join(records, "2026-11-27-h100-determinism-sample.json"), "utf8"),
    ) as { runs: { label: string; tokens: number[] }[] };
    const alt = det.runs.find((r) => r.label === "baseline")?.tokens as number[];
    expect(alt.slice(0, 15)).toEqual(base.slice(0, 15));
    (
      raw.workloads.find((w) => w.id === "dense-20g/spillover-75") as {
        metrics: { tokens: number[] };
      }
    ).metrics.tokens = alt;
    writeFileSync(join(cwd, "bench/results/2026-11-27-h100.json"), JSON.stringify(raw));
    expect(runBenchReport([], io)).toBe(0);
    expect(err).toHaveLength(1);
    expect(err[0]).toMatch(
      /^bench:report: skipping bench\/results\/runs\/2026-11-27-notes\.json: /,
    );
    const md = readFileSync(join(cwd, "docs/benchmarks.md"), "utf8");
    expect(md).toContain("runs/2026-11-27-h100-determinism-sample.json");
    expect(md).toContain("(see runs/2026-11-27-h100-threshold-sample.json)");
    expect(md).toContain("differ (the program differs between its own runs too)");
  });

  it("fails with one line for no results, bad JSON, an invalid file and an unknown flag", () => {
    const a = sandbox();
    expect(runBenchReport([], a.io)).toBe(1);
    expect(a.err[0]).toMatch(/no results in bench\/results; run bash bench\/run_suite\.sh/);

    const b = sandbox();
    writeFileSync(join(b.cwd, "bad.json"), "{not json");
    expect(runBenchReport(["--results", "bad.json"], b.io)).toBe(1);
    expect(b.err[0]).toMatch(/cannot read .*bad\.json/);

    const c = sandbox();
    writeFileSync(join(c.cwd, "old.json"), JSON.stringify({ schema: "spillover-bench/0" }));
    expect(runBenchReport(["--results", "old.json"], c.io)).toBe(1);
    expect(c.err[0]).toMatch(/old\.json: not a valid spillover-bench\/1 results file: schema/);

    const d = sandbox();
    expect(runBenchReport(["--bogus"], d.io)).toBe(2);
    expect(d.err[0]).toMatch(/Unknown option '--bogus'.*usage: npm run bench:report/);
    for (const s of [a, b, c, d]) expect(s.err).toHaveLength(1);
  });
});

// `npm run bench:report`: reads a results file from bench/results/ (the newest full run unless
// --results names one), validates it and writes docs/benchmarks.md plus docs/img/bench-*.svg.
// The I/O edge of the report; rendering itself is pure (report.ts).

import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { parseArgs } from "node:util";
import { parseBenchResults } from "../../src/bench/schema.js";
import { parseRecords, type RawRecord } from "./records.js";
import { renderReport } from "./report.js";

export interface ReportCliIO {
  readonly cwd: string;
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
}

const USAGE =
  "usage: npm run bench:report -- [--results bench/results/<file>.json] [--out docs/benchmarks.md] [--img-dir docs/img]";

/** The newest whole-suite results file in dir: the latest date in the name (<date>-<card>...json),
 * then the last name of that day, compared without ".json" (so "...-hbm3-migrate" comes after
 * "...-hbm3", as it was written after it); null when there is none. */
export function newestResults(dir: string): string | null {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return null;
  }
  // only the suite's own files (<date>-<card>.json); smoke runs and unmerged parts
  // (…-part1of3.json) are not what the report is about, and other tools' notes may sit beside them
  const full = names
    .map((n) => /^(\d{4}-\d{2}-\d{2})-(.+)\.json$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .filter((m) => !/-(smoke|part\d+of\d+)$/.test(m[2] as string))
    .sort((a, b) => {
      const [da, sa] = [a[1] as string, a[2] as string];
      const [db, sb] = [b[1] as string, b[2] as string];
      return da !== db ? (da < db ? -1 : 1) : sa < sb ? -1 : sa > sb ? 1 : 0;
    });
  const last = full[full.length - 1];
  return last ? join(dir, last[0]) : null;
}

/** The JSON records in <results dir>/runs/ (determinism diagnoses, follow-up runs) the report may
 * cite; files that are not JSON are named on stderr and skipped. */
export function readRecords(dir: string, cwd: string, warn: (line: string) => void): RawRecord[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".json"));
  } catch {
    return [];
  }
  const out: RawRecord[] = [];
  for (const n of names.sort()) {
    const path = join(dir, n);
    try {
      out.push({ file: relative(cwd, path) || path, data: JSON.parse(readFileSync(path, "utf8")) });
    } catch (e) {
      warn(`bench:report: skipping ${relative(cwd, path)}: ${(e as Error).message}`);
    }
  }
  return out;
}

export function runBenchReport(argv: readonly string[], io: ReportCliIO): number {
  let values: {
    results?: string | undefined;
    out?: string | undefined;
    "img-dir"?: string | undefined;
  };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        results: { type: "string" },
        out: { type: "string" },
        "img-dir": { type: "string" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    io.stderr(`bench:report: ${(e as Error).message}; ${USAGE}`);
    return 2;
  }
  const resultsDir = resolve(io.cwd, "bench/results");
  const resultsPath = values.results ? resolve(io.cwd, values.results) : newestResults(resultsDir);
  if (!resultsPath) {
    io.stderr(
      `bench:report: no results in ${relative(io.cwd, resultsDir) || "."}; run bash bench/run_suite.sh on a GPU, or pass --results <file>`,
    );
    return 1;
  }
  const outPath = resolve(io.cwd, values.out ?? "docs/benchmarks.md");
  const imgDir = resolve(io.cwd, values["img-dir"] ?? join(dirname(outPath), "img"));
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(resultsPath, "utf8"));
  } catch (e) {
    io.stderr(`bench:report: cannot read ${resultsPath}: ${(e as Error).message}`);
    return 1;
  }
  const source = relative(io.cwd, resultsPath) || resultsPath;
  let results: ReturnType<typeof parseBenchResults>;
  try {
    results = parseBenchResults(data, source);
  } catch (e) {
    io.stderr(`bench:report: ${(e as Error).message}`);
    return 1;
  }
  if (results.fixture && values.out === undefined) {
    io.stderr(
      `bench:report: ${source} is a test fixture, not a measurement; pass --out <elsewhere> to render it anyway`,
    );
    return 1;
  }
  const records = parseRecords(readRecords(join(dirname(resultsPath), "runs"), io.cwd, io.stderr));
  const rendered = renderReport(results, {
    source,
    imgDir: relative(dirname(outPath), imgDir) || ".",
    records,
  });
  mkdirSync(dirname(outPath), { recursive: true });
  mkdirSync(imgDir, { recursive: true });
  writeFileSync(outPath, rendered.markdown);
  for (const [name, svg] of rendered.images) writeFileSync(join(imgDir, name), svg);
  io.stdout(
    `wrote ${relative(io.cwd, outPath)} and ${rendered.images.size} charts in ${relative(io.cwd, imgDir)} from ${source}`,
  );
  return 0;
}

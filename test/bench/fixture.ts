// Loads the hand-written results fixture (test/fixtures/bench/sample-results.json: plausible H100
// numbers, marked fixture: true, NOT a measurement) as a fresh, mutable copy per test.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { type BenchResults, parseBenchResults } from "../../src/bench/schema.js";

export const FIXTURE_PATH = join(
  import.meta.dirname,
  "..",
  "fixtures",
  "bench",
  "sample-results.json",
);

export function rawFixture(): Record<string, unknown> & { workloads: Record<string, unknown>[] } {
  return JSON.parse(readFileSync(FIXTURE_PATH, "utf8"));
}

export function fixture(mutate?: (raw: ReturnType<typeof rawFixture>) => void): BenchResults {
  const raw = rawFixture();
  mutate?.(raw);
  return parseBenchResults(raw, "fixture");
}

// biome-ignore lint/suspicious/noExplicitAny: tests reach deep into the fixture's JSON to break one field
export function entry(raw: ReturnType<typeof rawFixture>, id: string): Record<string, any> {
  const e = raw.workloads.find((w) => w.id === id);
  if (!e) throw new Error(`fixture has no workload ${id}`);
  // biome-ignore lint/suspicious/noExplicitAny: as above
  return e as Record<string, any>;
}

// The results schema: the fixture validates; broken files fail with the offending field named.
import { describe, expect, it } from "vitest";
import { parseBenchResults } from "../../src/bench/schema.js";
import { entry, fixture, rawFixture } from "./fixture.js";

describe("parseBenchResults", () => {
  it("accepts the fixture, including failed and timed-out workloads", () => {
    const r = fixture();
    expect(r.fixture).toBe(true);
    expect(r.workloads.filter((w) => w.status !== "ok").map((w) => w.id)).toEqual([
      "jax/spillover-prealloc-default",
      "dense-20g/accelerate-25",
    ]);
  });

  it("names the field that is wrong", () => {
    const raw = rawFixture();
    entry(raw, "dense-8g/spillover-50").status = "crashed";
    expect(() => parseBenchResults(raw, "x.json")).toThrow(/^x\.json: .*workloads\.\d+\.status/);
  });

  it("rejects a chain checksum written as a JSON number (JS would round values above 2^53)", () => {
    const raw = rawFixture();
    entry(raw, "cupy/reference").metrics.checksums.chain_sum = 3141592653;
    expect(() => parseBenchResults(raw, "x.json")).toThrow(/chain_sum/);
  });

  it("rejects another schema version and says how to regenerate", () => {
    const raw = rawFixture();
    raw.schema = "spillover-bench/0";
    expect(() => parseBenchResults(raw, "old.json")).toThrow(/schema.*bash bench\/run_suite\.sh/);
  });

  it("accepts a run whose bandwidth probe failed", () => {
    const r = fixture((raw) => {
      raw.bandwidth = null;
    });
    expect(r.bandwidth).toBeNull();
  });
});

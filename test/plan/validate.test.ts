// `spillover plan --validate` against the real H100 suite results (bench/results/): placement from
// the interposer's stats record, the program's overhead from its no-spillover run, the
// --expert-reads program property, the verdicts and the reasons computed from the data.

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { type LlmEntry, parseBenchResults } from "../../src/bench/schema.js";
import { parseProfile } from "../../src/hw/profile.js";
import { analyzeModel } from "../../src/models/analyze.js";
import {
  archFromHfConfig,
  hfConfigSchema,
  tensorsFromHfConfig,
} from "../../src/models/hf-config.js";
import type { ModelDescription } from "../../src/models/types.js";
import {
  hostRead,
  measuredPlacement,
  type Validation,
  type ValidationRow,
  validateResults,
} from "../../src/plan/validate.js";
import { formatValidation } from "../../src/plan/validate-format.js";
import { zeroCopyGemmFactor, zeroCopyGemmFactorForShape } from "../../src/plan/zero-copy.js";
import { ROOT, runCli } from "../helpers/cli.js";

const RESULTS_PATH = "bench/results/2026-11-27-h100-80gb-hbm3.json";
const PROFILE_PATH = "bench/results/runs/2026-11-27-h100-hw-profile.json";
const RESULTS = readFileSync(join(ROOT, RESULTS_PATH), "utf8");
const PROFILE = parseProfile(PROFILE_PATH, readFileSync(join(ROOT, PROFILE_PATH), "utf8"));
const parsed = parseBenchResults(JSON.parse(RESULTS), RESULTS_PATH);

const validate = (expertReads: "routed" | "all", text = RESULTS): Validation =>
  validateResults(RESULTS_PATH, text, PROFILE, {}, { expertReads });

const row = (v: Validation, run: string, metric: string): ValidationRow => {
  const r = v.rows.find((x) => x.run === run && x.metric === metric);
  if (!r) throw new Error(`no row ${run} ${metric}`);
  return r;
};

const entry = (id: string): LlmEntry => {
  const w = parsed.workloads.find((x) => x.id === id);
  if (w?.group !== "llm") throw new Error(`no llm run ${id}`);
  return w;
};

function suiteModel(name: string): ModelDescription {
  const spec = parsed.models[name];
  if (!spec) throw new Error(name);
  const cfg = hfConfigSchema.parse({ ...spec.config, model_type: spec.arch });
  return {
    name,
    path: name,
    format: "described",
    arch: archFromHfConfig(cfg),
    tensors: tensorsFromHfConfig(cfg, "bf16", 2),
  };
}

describe("measured placement", () => {
  it("splits the pinned bytes into weights beyond the device tier and later allocations", () => {
    const w = entry("dense-20g/spillover-50");
    const s = w.spill_stats;
    if (!s || s.passthrough_bytes === undefined || s.tier_pinned_bytes === undefined)
      throw new Error("record lacks tiers");
    const W = analyzeModel(suiteModel("dense-20g")).totalBytes;
    expect(W).toBe(20474193920); // the suite's own weight_bytes for this model
    const p = measuredPlacement(w, W, "prefill");
    const device = s.passthrough_bytes + (s.tier_vram_bytes ?? 0);
    expect(p).toEqual({
      source: "measured",
      hostWeightBytes: W - device,
      hostOtherBytes: s.tier_pinned_bytes - (W - device),
    });
    // At a 100% limit every weight fits: all pinned bytes are later allocations.
    const full = measuredPlacement(entry("dense-8g/spillover-100"), 8376328192, "prefill");
    expect(full?.hostWeightBytes).toBe(0);
    expect(full?.hostOtherBytes).toBe(648019968);
  });

  it("never puts more weights in host than were pinned, and needs the per-tier fields", () => {
    const w = entry("dense-20g/spillover-25");
    const p = measuredPlacement(w, 1e12, "prefill");
    expect(p?.hostWeightBytes).toBe(w.spill_stats?.tier_pinned_bytes);
    expect(p?.hostOtherBytes).toBe(0);
    const old = { ...w, spill_stats: w.spill_stats && { ...w.spill_stats } };
    if (old.spill_stats) delete old.spill_stats.passthrough_bytes;
    expect(measuredPlacement(old, 1e12, "prefill")).toBeNull();
    expect(measuredPlacement({ ...w, spill_stats: null }, 1e12, "prefill")).toBeNull();
  });
});

describe("expert reads", () => {
  it("reads every expert's bytes once per token when the program reads all of them", () => {
    const m = suiteModel("moe-11g");
    const a = analyzeModel(m);
    const host = 5e9;
    const routed = hostRead(a, m, host, 1, { expertReads: "routed" });
    const all = hostRead(a, m, host, 1, { expertReads: "all" });
    // Whole model: 2 of 8 experts vs all 8 (+ everything that is not an expert, + one embedding row).
    const embRow = a.embeddingBytes / a.arch.vocab;
    const rest = a.totalBytes - a.byRole.experts - a.embeddingBytes + embRow;
    expect(all.all).toBeCloseTo(rest + a.byRole.experts, -3);
    expect(routed.all).toBeCloseTo(rest + a.byRole.experts * (2 / 8), -3);
    // The tail in host RAM is mostly experts, so reading all of them reads most of the host bytes.
    expect(all.host).toBeGreaterThan(0.9 * host);
    expect(routed.host).toBeLessThan(0.5 * host);
  });
});

describe("validation on the H100 results", () => {
  const v = validate("all");

  it("takes the program's overhead from the no-spillover run and counts those rows as its source", () => {
    for (const model of ["dense-8g", "dense-20g", "moe-11g"]) {
      const base = row(v, `${model}/baseline`, "decode");
      expect(base.calibratedVerdict).toBe("calibration");
      expect(base.verdict).toBe("baseline");
      expect(base.calibrated).toBeCloseTo(base.measured, 6);
      const spill = v.rows.filter((r) => r.model === model && r.mode === "spillover");
      expect(spill.length).toBeGreaterThan(0);
      for (const r of spill.filter((x) => x.metric === "decode")) {
        expect(r.overheadS).toBe(base.overheadS);
        expect(r.overheadSource).toBe(`no-spillover run ${model}/baseline`);
      }
    }
    // dense-8g without spillover: 71.5 ms per token, almost all of it the program's own.
    expect(row(v, "dense-8g/baseline", "decode").overheadS).toBeGreaterThan(0.06);
    expect(v.validated).toBe(v.rows.filter((r) => r.mode !== "baseline").length);
  });

  it("predicts dense decode within 25% with the measured placement, and says where it came from", () => {
    const dense = v.rows.filter((r) => !r.moe && r.mode === "spillover" && r.metric === "decode");
    expect(dense).toHaveLength(8);
    for (const r of dense) {
      expect(r.placement.source).toBe("measured");
      expect(Math.abs(r.calibratedErrorPct), r.run).toBeLessThanOrEqual(25);
      expect(r.calibratedVerdict).toBe("within");
      // The prediction (1 ms overhead, no knowledge of the program) misses: HF generate's own
      // tens of ms per token dominate, and the reconstruction is no prediction.
      expect(r.verdict).toBe("miss");
      expect(r.predictedPlacement.source).toBe("planner");
    }
    expect(row(v, "dense-8g/spillover-75", "decode").errorPct).toBeGreaterThan(100);
    expect(v.calibratedByMetric["decode dense"]).toEqual({ within: 8, total: 8 });
    expect(v.byMetric["decode dense"]).toEqual({ within: 0, total: 8 });
  });

  it("explains every miss from the data", () => {
    const misses = v.rows.filter((r) => r.calibratedVerdict === "miss");
    expect(misses.length).toBe(v.validated - v.calibratedWithin25);
    for (const r of misses) expect(r.reason, `${r.run} ${r.metric}`).toBeTruthy();
    // Prefill at a 100% limit: no weights in host, the pinned bytes are later allocations.
    expect(row(v, "dense-8g/spillover-100", "prefill 2048").reason).toMatch(
      /no weights in host: 0\.65 GB of non-weight allocations .* 44\.8x slower than without spillover/,
    );
    expect(row(v, "dense-20g/spillover-50", "prefill 2048").reason).toMatch(
      /the dense-20g\/spillover-100 run \(no weights in host, 0\.69 GB other\) lost 4\.04 s/,
    );
    expect(v.calibratedByMetric["prefill dense"]?.within).toBe(0);
  });

  it("shows what the MoE measurement implies about expert reads", () => {
    const moe = row(v, "moe-11g/spillover-50", "decode");
    const routed = row(validate("routed"), "moe-11g/spillover-50", "decode");
    // Reading all experts is slower than reading the routed ones, and nearer the measurement.
    expect(moe.calibrated).toBeLessThan(routed.calibrated);
    expect(Math.abs(moe.calibratedErrorPct)).toBeLessThan(Math.abs(routed.calibratedErrorPct));
    expect(routed.calibratedErrorPct).toBeGreaterThan(100);
    // The reason gives the implied host bytes and both alternatives.
    expect(moe.reason).toMatch(/implies \d+\.\d\d GB read from host per token/);
    expect(moe.reason).toMatch(/with all experts read .* with routed experts/);
    // The baseline's two runs disagree: the implied bytes are given as a range too.
    expect(moe.reason).toMatch(
      /GB to \d+\.\d\d GB with the overhead of the baseline's slowest and fastest run/,
    );
    expect(routed.reason).toMatch(/with routed experts read .* with all experts/);
    // Dense rows do not depend on the property.
    expect(row(validate("routed"), "dense-8g/spillover-50", "decode").calibrated).toBe(
      row(v, "dense-8g/spillover-50", "decode").calibrated,
    );
    expect(v.program).toEqual({ expertReads: "all" });
  });

  it("tallies by metric and model family", () => {
    const sum = Object.values(v.byMetric).reduce((s, t) => s + t.total, 0);
    expect(sum).toBe(v.validated);
    const within = Object.values(v.byMetric).reduce((s, t) => s + t.within, 0);
    expect(within).toBe(v.within25);
    expect(v.rows.filter((r) => r.verdict === "within")).toHaveLength(v.within25);
    const cal = Object.values(v.calibratedByMetric).reduce((s, t) => s + t.within, 0);
    expect(cal).toBe(v.calibratedWithin25);
    expect(v.rows.filter((r) => r.calibratedVerdict === "within")).toHaveLength(cal);
  });

  it("falls back to the limit and the planner's overhead without a stats record or a baseline", () => {
    const j = JSON.parse(RESULTS);
    j.workloads = j.workloads.filter((w: { id: string }) => w.id !== "dense-8g/baseline");
    for (const w of j.workloads) if (w.id === "dense-8g/spillover-50") w.spill_stats = null;
    const x = validate("routed", JSON.stringify(j));
    const r = row(x, "dense-8g/spillover-50", "decode");
    expect(r.placement.source).toBe("limit");
    expect(r.placement.hostOtherBytes).toBe(0);
    expect(r.overheadSource).toBe("planner constant (no baseline run)");
    // The prediction does not depend on what the run recorded.
    expect(r.predicted).toBe(row(v, "dense-8g/spillover-50", "decode").predicted);
  });

  it("prints the table, the reasons and the tallies", () => {
    const text = formatValidation(v);
    expect(text).toMatch(
      /^dense-8g\/spillover-50 +decode +7\.08 +18\.65 +\+163% +planner: 2\.82 GB w +miss +\| measured: 4\.15 GB w \+ 0\.69 other +67\.9 ms \(baseline\) +6\.63 +-6% +within$/m,
    );
    expect(text).toContain("calibrated reconstruction, why (computed from the results):");
    expect(text).toMatch(/^prediction: 0 of 27 spillover points within 25% \(decode dense 0\/8,/m);
    expect(text).toMatch(
      /^calibrated reconstruction \(uses the measured placement and overhead\): 8 of 27 \(decode dense 8\/8, decode moe \d\/1, prefill dense 0\/16, prefill moe 0\/2\)/m,
    );
  });
});

describe("spillover plan --validate (CLI)", () => {
  it("takes --expert-reads and refuses it without --validate or with a bad value", async () => {
    const ok = await runCli([
      "plan",
      "--validate",
      RESULTS_PATH,
      "--profile",
      PROFILE_PATH,
      "--expert-reads",
      "all",
      "--json",
    ]);
    expect(ok.err).toBe("");
    expect(JSON.parse(ok.out).program).toEqual({ expertReads: "all" });
    const bad = await runCli(["plan", "--validate", RESULTS_PATH, "--expert-reads", "some"]);
    expect(bad.code).toBe(2);
    expect(bad.err.trim()).toBe('spillover: --expert-reads "some": expected routed or all');
    const alone = await runCli([
      "plan",
      "test/fixtures/models/mixtral-config",
      "--expert-reads",
      "all",
    ]);
    expect(alone.code).toBe(2);
    expect(alone.err.trim()).toBe(
      "spillover: --expert-reads describes the benchmarked program: use it with --validate results.json",
    );
  });
});

// The suite run with placement that follows use (migration), whose LLM runs sample where the
// weights are after prefill and after decode.
const MIGRATE_PATH = "bench/results/2026-11-27-h100-80gb-hbm3-migrate.json";
const MIGRATE = readFileSync(join(ROOT, MIGRATE_PATH), "utf8");
const migrated = parseBenchResults(JSON.parse(MIGRATE), MIGRATE_PATH);

describe("sampled placement (results with metrics.placement)", () => {
  it("takes the weights in host from the samples, per phase, and the rest of the pinned bytes as other", () => {
    const w = migrated.workloads.find((x) => x.id === "dense-8g/spillover-50") as LlmEntry;
    const sampled = w.metrics?.placement;
    if (!sampled?.after_prefill || !sampled.after_decode) throw new Error("no samples");
    const p = measuredPlacement(w, 1e12, "prefill");
    expect(p?.source).toBe("sampled");
    expect(p?.hostWeightBytes).toBe(sampled.after_prefill.weights_host_bytes);
    expect(measuredPlacement(w, 1e12, "decode")?.hostWeightBytes).toBe(
      sampled.after_decode.weights_host_bytes,
    );
    expect(p?.hostOtherBytes).toBe(
      (w.spill_stats?.tier_pinned_bytes ?? 0) - sampled.after_prefill.weights_host_bytes,
    );
  });

  it("validates the migrated suite run: the recorded tally, and every miss is a run without host weights or one overhead-bound prefill", () => {
    const v = validateResults(MIGRATE_PATH, MIGRATE, PROFILE, {}, { expertReads: "routed" });
    expect(v.calibratedWithin25).toBe(23);
    expect(v.validated).toBe(27);
    const misses = v.rows
      .filter((r) => r.calibratedVerdict === "miss")
      .map((r) => `${r.run} ${r.metric}`);
    expect(misses.sort()).toEqual([
      "dense-20g/spillover-100 decode",
      "dense-8g/spillover-100 decode",
      "dense-8g/spillover-100 prefill 512",
      "dense-8g/spillover-75 prefill 512",
    ]);
  });
});

describe("the honest prediction (nothing from the run)", () => {
  it("places the bytes from the VRAM limit by the interposer's rules and ignores what the run measured", () => {
    const v = validateResults(MIGRATE_PATH, MIGRATE, PROFILE, {}, { expertReads: "routed" });
    // The recorded honest figure on the migrated H100 run.
    expect(v.within25).toBe(6);
    const r = row(v, "dense-8g/spillover-50", "decode");
    const a = analyzeModel(suiteModel("dense-8g"));
    // Host weights = weights - (limit - KV - activations - 512 MiB of context and workspace).
    const limit = entry("dense-8g/spillover-50").vram_limit_bytes ?? 0;
    expect(r.predictedPlacement.hostWeightBytes).toBeGreaterThan(a.totalBytes - limit);
    expect(r.predictedPlacement.hostWeightBytes).toBeLessThan(a.totalBytes - limit + 2 ** 30);
    // Change everything the run measured about itself: the prediction stays, the reconstruction moves.
    const j = JSON.parse(MIGRATE);
    for (const w of j.workloads) {
      if (w.id !== "dense-8g/spillover-50") continue;
      delete w.metrics.placement;
      w.spill_stats.tier_pinned_bytes = 0;
      w.metrics.decode.tokens_per_s *= 2;
    }
    j.bandwidth = {
      h2d_pinned_gbps: 5,
      d2h_pinned_gbps: 5,
      vram_read_gbps: 100,
      vram_copy_gbps: 100,
    };
    const x = validateResults(
      MIGRATE_PATH,
      JSON.stringify(j),
      PROFILE,
      {},
      { expertReads: "routed" },
    );
    const y = row(x, "dense-8g/spillover-50", "decode");
    expect(y.predicted).toBe(r.predicted);
    expect(y.predictedPlacement).toEqual(r.predictedPlacement);
    expect(y.calibrated).not.toBe(r.calibrated);
  });
});

describe("zero-copy GEMM factor by shape", () => {
  it("reproduces the measured points of a shape, interpolates between them, and falls back for unknown shapes", () => {
    expect(zeroCopyGemmFactorForShape(512, 14336, 4096)).toBeCloseTo(1.991, 6);
    expect(zeroCopyGemmFactorForShape(2048, 4096, 14336)).toBeCloseTo(7.723, 6);
    expect(zeroCopyGemmFactorForShape(768, 4096, 14336)).toBeCloseTo((3.853 + 3.862) / 2, 6);
    expect(zeroCopyGemmFactorForShape(8192, 4096, 14336)).toBeCloseTo(15.431 * 2, 6);
    expect(zeroCopyGemmFactorForShape(512, 1234, 5678)).toBe(zeroCopyGemmFactor(512));
  });
});

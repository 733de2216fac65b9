// plan.honest-prediction with the H200 llama.cpp run's recorded llama-bench medians and hardware
// profile: one point per spillover test, the planner's own prediction beside the measurement, and
// the proof entry; and the prefill re-read model for llama.cpp's quantized weights it rests on.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { buildMachine, type Machine } from "../../src/hw/machine.js";
import { parseProfile } from "../../src/hw/profile.js";
import { analyzeModel } from "../../src/models/analyze.js";
import { describeModel } from "../../src/models/described.js";
import {
  type HonestPoint,
  honestPoints,
  honestPredictionProof,
} from "../../src/plan/honest-prediction.js";
import { type BenchRuns, MEASURED } from "../../src/plan/picks-winner.js";
import { makePlan } from "../../src/plan/plan.js";
import { mmqZeroCopyFactor } from "../../src/plan/zero-copy.js";
import { ROOT } from "../helpers/cli.js";

const RUN = "bench/results/runs/2026-11-29-h200-llamacpp";
const results = JSON.parse(readFileSync(join(ROOT, RUN, "llamacpp-results.json"), "utf8"));
const runs = results.runs as BenchRuns;
const profilePath = join(RUN, "hw-profile.json");
const profile = parseProfile(profilePath, readFileSync(join(ROOT, profilePath), "utf8"));
const at = (limit: number): Machine => ({ ...buildMachine(profile, {}), vramBytes: limit });

// The run's GGUFs (bench/llamacpp/gguf_random.py presets) described at Q8_0's 8.5 bits per weight.
const llama = {
  model_type: "llama",
  hidden_size: 4096,
  num_hidden_layers: 32,
  num_attention_heads: 32,
  num_key_value_heads: 8,
  intermediate_size: 14336,
  vocab_size: 128256,
};
const dense = analyzeModel(describeModel("dense-8b", llama, 8.5));
const moe = analyzeModel(
  describeModel(
    "moe-30b-a3b",
    {
      model_type: "qwen3_moe",
      hidden_size: 2048,
      num_hidden_layers: 48,
      num_attention_heads: 32,
      num_key_value_heads: 4,
      head_dim: 128,
      intermediate_size: 6144,
      moe_intermediate_size: 768,
      num_experts: 128,
      num_experts_per_tok: 8,
      vocab_size: 151936,
    },
    8.5,
  ),
);
const denseLimit = results.models.dense.vram_limit_bytes as number;
const moeLimit = results.models.moe.vram_limit_bytes as number;
const spillKeys = (model: string) => MEASURED[model]?.spillover ?? [];

describe("plan.honest-prediction", () => {
  it("makes one point per llama-bench test run under spillover, with the recorded median", () => {
    const pts = honestPoints("dense", dense, at(denseLimit), "d.gguf", runs, spillKeys("dense"));
    expect(pts.map((p) => `${p.run} ${p.test}`)).toEqual([
      "dense/a pp512",
      "dense/a tg128",
      "dense/a/shapes pp2048",
      "dense/a/shapes pp8192",
    ]);
    expect(pts.map((p) => p.measuredTokS)).toEqual([1136.71, 14.2335, 1074.55, 640.79]);
    for (const p of pts) {
      expect(p.ratio).toBeCloseTo(p.predictedTokS / p.measuredTokS, 9);
      expect(p.within).toBe(Math.abs(p.ratio - 1) <= 0.25);
    }
    // The prediction is the planner's spillover strategy for that test's own workload.
    const pp8192 = makePlan(
      dense,
      at(denseLimit),
      { prompt: 8192, gen: 0, batch: 1, ctx: 8192, kvType: "f16", ubatch: 512 },
      "d.gguf",
    ).strategies.find((s) => s.id === "spillover");
    expect(pts[3]?.predictedTokS).toBeCloseTo(pp8192?.prefillTokS ?? 0, 6);
    const tg = makePlan(
      dense,
      at(denseLimit),
      { prompt: 0, gen: 128, batch: 1, ctx: 128, kvType: "f16", ubatch: 512 },
      "d.gguf",
    ).strategies.find((s) => s.id === "spillover");
    expect(pts[1]?.predictedTokS).toBeCloseTo(tg?.decodeTokS ?? 0, 6);
  });

  it("takes nothing from the measurement: other medians change the ratios, not the predictions", () => {
    const doubled: BenchRuns = Object.fromEntries(
      Object.entries(runs).map(([k, r]) => [
        k,
        { bench: (r.bench ?? []).map((t) => ({ ...t, median_ts: (t.median_ts ?? 0) * 2 })) },
      ]),
    );
    const a = honestPoints("moe", moe, at(moeLimit), "m.gguf", runs, spillKeys("moe"));
    const b = honestPoints("moe", moe, at(moeLimit), "m.gguf", doubled, spillKeys("moe"));
    expect(a).toHaveLength(4);
    expect(b.map((p) => p.predictedTokS)).toEqual(a.map((p) => p.predictedTokS));
    b.forEach((p, i) => {
      expect(p.ratio).toBeCloseTo((a[i]?.ratio ?? 0) / 2, 9);
    });
  });

  it("on the recorded run: decode within 25%, MoE prefill too slow, dense long prompt too fast", () => {
    const pts = [
      ...honestPoints("dense", dense, at(denseLimit), "d.gguf", runs, spillKeys("dense")),
      ...honestPoints("moe", moe, at(moeLimit), "m.gguf", runs, spillKeys("moe")),
    ];
    const by = (model: string, test: string) =>
      pts.find((p) => p.model === model && p.test === test);
    expect(by("dense", "tg128")?.within).toBe(true);
    expect(by("moe", "tg128")?.within).toBe(true);
    // Random-weight routing reads fewer experts than uniform routing would (docs/plan.md).
    for (const t of ["pp512", "pp2048", "pp8192"]) expect(by("moe", t)?.ratio).toBeLessThan(0.75);
    expect(by("dense", "pp8192")?.ratio).toBeGreaterThan(1.25);
  });

  it("scores the fraction within 25%, passes at 0.75, and lists every point", () => {
    const p = (test: string, ratio: number): HonestPoint => ({
      model: "dense",
      run: "dense/a",
      test,
      predictedTokS: 100 * ratio,
      measuredTokS: 100,
      ratio,
      within: Math.abs(ratio - 1) <= 0.25,
    });
    const three = honestPredictionProof(
      [p("pp512", 1.2), p("tg128", 0.8), p("pp2048", 1), p("pp8192", 2)],
      "note X",
    );
    expect(three.id).toBe("plan.honest-prediction");
    expect(three.measured).toBe(0.75);
    expect(three.pass).toBe(true);
    expect(three.detail).toMatch(/^3 of 4 within 25%/);
    expect(three.detail).toMatch(
      /dense pp8192 \(dense\/a\): predicted 200 tok\/s, measured 100, ratio 2\.00, miss/,
    );
    expect(three.detail).toMatch(/\. note X$/);
    const two = honestPredictionProof([
      p("pp512", 1.3),
      p("tg128", 0.8),
      p("pp2048", 1),
      p("pp8192", 2),
    ]);
    expect(two.measured).toBe(0.5);
    expect(two.pass).toBe(false);
    expect(honestPredictionProof([]).pass).toBe(false);
  });
});

describe("llama.cpp's quantized prefill re-reads host weights per MMQ token tile", () => {
  it("is one pass per 128 tokens, at least one", () => {
    expect([1, 32, 128, 129, 512, 2048].map(mmqZeroCopyFactor)).toEqual([1, 1, 1, 2, 4, 16]);
  });

  it("charges quantized weights 4x at 512 tokens, routed experts by their share, bf16 the cuBLAS curve", () => {
    const w = { prompt: 512, gen: 0, batch: 1, ctx: 512, kvType: "f16" as const, ubatch: 512 };
    const note = (a: typeof dense, limit: number) =>
      makePlan(a, at(limit), w, "x.gguf").strategies.find((s) => s.id === "spillover")?.notes[0];
    expect(note(dense, denseLimit)).toMatch(/re-read them 4\.0x$/);
    // 512 x 8 / 128 = 32 tokens per expert: one tile.
    expect(note(moe, moeLimit)).toMatch(/re-read them 4\.0x \(routed experts 1\.0x\)$/);
    const bf16 = analyzeModel(describeModel("dense-bf16", llama, 16));
    expect(note(bf16, 10 * 2 ** 30)).toMatch(/re-read them 1\.3x$/);
  });
});

// Bounds, claims and their computed explanations, on the fixture and on hand-computed cases.
import { describe, expect, it } from "vitest";
import {
  analyse,
  compareTokens,
  decodeBoundSeconds,
  idealPlacement,
  pickReference,
  prefillCopyBoundSeconds,
} from "../../bench/report/analysis.js";
import type { LlmEntry, ModelFacts } from "../../src/bench/schema.js";
import { entry, fixture } from "./fixture.js";

const GB = 1e9;
const dense: ModelFacts = {
  arch: "llama",
  hidden: 4096,
  layers: 18,
  intermediate: 14336,
  heads: 32,
  kv_heads: 8,
  head_dim: 128,
  vocab: 32000,
  experts: 0,
  experts_per_token: 0,
  tied_embeddings: false,
  dtype: "bfloat16",
  params: 5e9,
  weight_bytes: 10 * GB,
  embed_bytes: 1 * GB,
  expert_bytes: 0,
  lm_head_bytes: 1 * GB,
  dense_bytes: 9 * GB,
};
const moe: ModelFacts = {
  ...dense,
  arch: "mixtral",
  experts: 8,
  experts_per_token: 2,
  weight_bytes: 12 * GB,
  embed_bytes: 1 * GB,
  expert_bytes: 8 * GB,
  dense_bytes: 3 * GB,
};
const bw = { link: 50 * GB, vram: 2000 * GB };

describe("idealPlacement and the bounds", () => {
  it("a model that fits sends nothing across the link", () => {
    expect(idealPlacement(dense, 1)).toEqual({
      linkBytesPerToken: 0,
      vramBytesPerToken: 9 * GB,
      linkBytesPerPass: 0,
    });
    expect(decodeBoundSeconds(dense, 1, bw)).toBeCloseTo(9 / 2000, 9);
  });

  it("dense at 50%: the embedding goes to host first, the rest of what does not fit crosses per token", () => {
    // VRAM for weights 5 GB; every token reads 9 GB; 4 GB must cross
    const p = idealPlacement(dense, 0.5);
    expect(p.linkBytesPerToken).toBeCloseTo(4 * GB, 0);
    expect(p.vramBytesPerToken).toBeCloseTo(5 * GB, 0);
    expect(decodeBoundSeconds(dense, 0.5, bw)).toBeCloseTo(4 / 50 + 5 / 2000, 9);
  });

  it("MoE at 50%: dense bytes resident, experts share the rest, only the routed quarter is read", () => {
    // VRAM 6 GB: 3 GB dense, 3 of 8 GB of experts resident (37.5%); 2 GB of experts active per token
    const p = idealPlacement(moe, 0.5);
    expect(p.linkBytesPerToken).toBeCloseTo(2 * GB * 0.625, 0);
    expect(p.vramBytesPerToken).toBeCloseTo(3 * GB + 2 * GB * 0.375, 0);
    // a long prefill touches every expert: all host-resident expert bytes cross once
    expect(p.linkBytesPerPass).toBeCloseTo(5 * GB, 0);
  });

  it("MoE with too little VRAM for the dense bytes streams part of them too", () => {
    const p = idealPlacement(moe, 0.2); // 2.4 GB of VRAM < 3 GB dense
    expect(p.linkBytesPerToken).toBeCloseTo(0.6 * GB + 2 * GB, 0);
    expect(p.vramBytesPerToken).toBeCloseTo(2.4 * GB, 0);
  });

  it("copy bound for prefill = one copy of the host bytes + the in-VRAM compute time", () => {
    expect(prefillCopyBoundSeconds(dense, 0.5, bw, 0.05)).toBeCloseTo(4 / 50 + 0.05, 9);
  });
});

describe("token comparison and the reference run", () => {
  it("compares the common prefix and reports the first difference", () => {
    expect(compareTokens([1, 2, 3, 4], [1, 2, 3])).toEqual({ compared: 3, equal: true });
    expect(compareTokens([1, 2, 3], [1, 9, 3])).toEqual({ compared: 3, equal: false });
    expect(compareTokens([], [1])).toEqual({ compared: 0, equal: false });
  });

  it("falls back from no spillover to spillover at 100% to accelerate's largest limit", () => {
    const r = fixture();
    const all = r.workloads.filter(
      (w): w is LlmEntry => w.group === "llm" && w.model === "dense-8g",
    );
    expect(pickReference(all)?.kind).toBe("no spillover");
    const noBase = all.filter((e) => e.mode !== "baseline");
    expect(pickReference(noBase)?.kind).toBe("spillover at 100%");
    const onlyAccel = all.filter((e) => e.mode === "accelerate");
    expect(pickReference(onlyAccel)?.kind).toBe("accelerate at 75%");
    expect(pickReference([])).toBeNull();
  });
});

describe("analyse(fixture)", () => {
  it("computes fraction of bound per run from the bandwidths measured in the run", () => {
    const a = analyse(fixture());
    const m = a.models.find((x) => x.id === "dense-20g");
    const row = m?.rows.find((x) => x.label === "spillover 50%");
    expect(row?.boundTps).toBeGreaterThan(5.3);
    expect(row?.boundTps).toBeLessThan(5.45);
    expect(row?.fractionOfBound).toBeCloseTo((row?.decodeTps ?? 0) / (row?.boundTps ?? 1), 9);
    expect(row?.tokensEqual).toBe(true);
    expect(row?.weightsIdentical).toBe(true);
  });

  it("states each claim with a verdict and explains every miss from the data", () => {
    const a = analyse(fixture());
    const [decode, speedup, overhead, prefill] = a.claims;
    expect(decode?.verdict).toBe("missed");
    expect(decode?.headline).toMatch(/worst 0\.53 \(moe-11g, spillover 50%\)/);
    const moePoint = decode?.points.find((p) => p.model === "moe-11g");
    expect(moePoint?.why.join(" ")).toMatch(/no-spillover run itself needs 26\.0 ms per token/);
    const d8 = decode?.points.find((p) => p.model === "dense-8g" && p.label === "spillover 75%");
    expect(d8?.met).toBe(false);
    expect(d8?.why.join(" ")).toMatch(/per-token overhead the program has without spillover/);
    expect(speedup?.verdict).toBe("met");
    expect(speedup?.points).toHaveLength(6); // the timed-out accelerate run has no pair
    expect(overhead?.verdict).toBe("met");
    expect(prefill?.verdict).toBe("missed");
    expect(
      prefill?.points.every((p) => p.why.some((w) => /streaming .* not implemented yet/.test(w))),
    ).toBe(true);
  });

  it("does not claim streaming is missing when the interposer did migrate pages", () => {
    const a = analyse(
      fixture((raw) => {
        entry(raw, "dense-8g/spillover-50").spill_stats.migrations = 1200;
      }),
    );
    const p = a.claims[3]?.points.find(
      (x) => x.model === "dense-8g" && x.label === "spillover 50%",
    );
    expect(p?.why.join(" ")).not.toMatch(/not implemented/);
  });

  it("explains a missed prefill point with the streaming engine's counters when the record has them", () => {
    const a = analyse(
      fixture((raw) => {
        Object.assign(entry(raw, "dense-8g/spillover-50").spill_stats, {
          stream_staged_bytes: 6e9,
          stream_staged_ranges: 224,
          stream_stage_hits: 4000,
          stream_late_stages: 31,
          stream_writeback_pages: 0,
          stream_inplace_launches: 12,
          stream_copy_busy_ns: 1.25e9,
          stream_budget_bytes: 2e9,
          stream_fallbacks: 3,
        });
        Object.assign(entry(raw, "dense-8g/spillover-75").spill_stats, {
          stream_staged_bytes: 0,
          stream_late_stages: 0,
        });
        entry(raw, "dense-8g/spillover-75").env.SPILLOVER_STREAM = "0";
      }),
    );
    const why = (label: string) =>
      a.claims[3]?.points.find((x) => x.model === "dense-8g" && x.label === label)?.why.join(" ");
    expect(why("spillover 50%")).toMatch(
      /the streaming engine staged 6\.00 GB in 224 ranges, copy engine busy 1\.25 s; 31 stagings late, 12 launches read host pages in place, 3 fallbacks/,
    );
    expect(why("spillover 50%")).not.toMatch(/not implemented/);
    expect(why("spillover 75%")).toMatch(
      /staged nothing \(SPILLOVER_STREAM=0\): the GEMMs read host weights in place/,
    );
  });

  it("compares no speed-up where accelerate offloaded nothing (every weight stayed in VRAM)", () => {
    const a = analyse(
      fixture((raw) => {
        const off = entry(raw, "dense-8g/accelerate-75").metrics.offload;
        off.offloaded_bytes = 0;
      }),
    );
    const points = a.claims[1]?.points ?? [];
    expect(points).toHaveLength(5);
    expect(points.some((p) => p.model === "dense-8g" && p.label === "75%")).toBe(false);
  });

  it("explains a missed speed-up with what accelerate moved per token", () => {
    const a = analyse(
      fixture((raw) => {
        entry(raw, "dense-8g/spillover-25").metrics.decode.tokens_per_s = 2.0;
      }),
    );
    const s = a.claims[1];
    expect(s?.verdict).toBe("missed");
    expect(s?.headline).toMatch(/worst 2\.3x \(dense-8g, 25%\)/);
    const p = s?.points.find((x) => x.label === "25%" && x.model === "dense-8g");
    expect(p?.why.join(" ")).toMatch(/accelerate moved 4\.58 GB per token at 3\.9 GB\/s effective/);
    expect(p?.why.join(" ")).toMatch(/spillover ran at 2\.00 tok\/s \(0\.22 of its bound\)/);
  });

  it("reports overhead beyond noise when the 100% run is slower", () => {
    const a = analyse(
      fixture((raw) => {
        const d = entry(raw, "dense-8g/spillover-100").metrics.decode;
        d.tokens_per_s = 48.0;
        d.runs[0].tokens_per_s = 47.9;
        d.runs[1].tokens_per_s = 48.1;
      }),
    );
    const o = a.claims[2];
    expect(o?.verdict).toBe("missed");
    expect(o?.headline).toMatch(/8\.4% \(dense-8g\)/);
    expect(o?.points[0]?.why.join(" ")).toMatch(/larger than run-to-run noise \(1\.1%/);
  });

  it("never calls a difference inside the repetitions' spread a result", () => {
    const a = analyse(
      fixture((raw) => {
        const base = entry(raw, "dense-8g/baseline").metrics.decode;
        base.runs[0].tokens_per_s = 44.0;
        base.runs[1].tokens_per_s = 53.0;
        const full = entry(raw, "dense-8g/spillover-100").metrics.decode;
        full.tokens_per_s = 46.0;
        full.runs[0].tokens_per_s = 45.0;
        full.runs[1].tokens_per_s = 47.0;
      }),
    );
    const o = a.claims[2];
    const p = o?.points.find((x) => x.model === "dense-8g");
    expect(p?.value).toBeGreaterThan(0.1);
    expect(p?.met).toBe(true);
    expect(p?.why.join(" ")).toMatch(
      /inside the spread, not a result: the repetitions at a 100% limit ran at 45\.0-47\.0 tok\/s, without spillover 44\.0-53\.0/,
    );
    const row = a.models
      .find((m) => m.id === "dense-8g")
      ?.rows.find((r) => r.label === "spillover 100%");
    expect(row?.decodeRange).toEqual([45, 47]);
  });

  it("flags different tokens, different weights and an inactive interposer", () => {
    const a = analyse(
      fixture((raw) => {
        const e = entry(raw, "dense-8g/spillover-25");
        e.metrics.tokens[3] += 1;
        e.metrics.weights_checksum = "ffffffffffffffff";
        e.spill_stats = null;
      }),
    );
    const row = a.models
      .find((m) => m.id === "dense-8g")
      ?.rows.find((r) => r.label === "spillover 25%");
    expect(row?.tokensEqual).toBe(false);
    expect(row?.weightsIdentical).toBe(false);
    expect(row?.spillActive).toBe(false);
  });

  it("has no bound and no decode claim when the probe failed", () => {
    const a = analyse(
      fixture((raw) => {
        raw.bandwidth = null;
      }),
    );
    expect(a.bandwidths).toBeNull();
    expect(a.claims[0]?.verdict).toBe("no data");
    expect(a.models[0]?.rows[0]?.boundTps).toBeNull();
  });

  it("compares JAX and CuPy results with their reference runs", () => {
    const a = analyse(
      fixture((raw) => {
        entry(raw, "cupy/spillover-pool").metrics.checksums.float_chain_sha = "0000000000000000";
      }),
    );
    expect(a.arrays.jax.map((x) => x.equal)).toEqual([null, true, null]);
    expect(a.arrays.jax[1]?.oversubscription).toBeCloseTo(2.5, 5);
    expect(a.arrays.cupy.map((x) => x.equal)).toEqual([null, false]);
  });
});

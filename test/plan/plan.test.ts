// The planner: model analysis (bytes by role, active bytes, KV), the zero-copy prefill fit, each
// strategy's arithmetic on hand-checkable cases, the winner and its reason, and the plan command's
// table, JSON and errors.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Machine } from "../../src/hw/machine.js";
import { analyzeModel, kvBytesPerToken } from "../../src/models/analyze.js";
import { describeModel } from "../../src/models/described.js";
import { loadModel } from "../../src/models/load.js";
import * as E from "../../src/plan/efficiency.js";
import { makePlan } from "../../src/plan/plan.js";
import {
  allVram,
  layerSplit,
  makeEnv,
  moeCpu,
  spilloverZeroCopy,
  type Workload,
} from "../../src/plan/strategies.js";
import { zeroCopyGemmFactor } from "../../src/plan/zero-copy.js";
import { runCli } from "../helpers/cli.js";

const FIX = join(import.meta.dirname, "../fixtures/models");
const GiB = 2 ** 30;
const W: Workload = { prompt: 512, gen: 128, batch: 1, ctx: 640, kvType: "f16", ubatch: 512 };

/** A dense 7B-like model, bf16, 32 layers: simple numbers to check by hand. */
const dense = analyzeModel(
  describeModel(
    "dense",
    {
      model_type: "llama",
      hidden_size: 4096,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      intermediate_size: 11008,
      vocab_size: 32000,
    },
    16,
  ),
);

function machine(over: Partial<Machine> = {}): Machine {
  return {
    gpuName: "test",
    vramBytes: 8 * GiB,
    vramGBs: 1000,
    vramSource: "measured",
    fp16Tflops: 100,
    pcieGen: 4,
    h2dGBs: 25,
    zeroCopyGBs: 25,
    linkSource: "measured",
    ramGBs: 80,
    ramSource: "measured",
    cpuThreads: 16,
    hostRamBytes: null,
    ...over,
  };
}

describe("model analysis", () => {
  it("sums bytes by role per layer and counts one embedding row per token", async () => {
    const a = analyzeModel(await loadModel(join(FIX, "tiny-llama.gguf")));
    expect(a.layers).toHaveLength(2);
    expect(a.layers[0]?.bytes.attention).toBe(((2 * 32 * 32 + 2 * 32 * 16) * 34) / 32);
    expect(a.layers[0]?.bytes.ffn).toBe(2 * 32 * 64 * 2 + (64 * 32 * 34) / 32);
    expect(a.embeddingBytes).toBe((32 * 64 * 34) / 32);
    expect(a.outputBytes).toBe(32 * 64 * 2);
    expect(a.tiedOutput).toBe(false);
    const blocks = a.layers.reduce((s, l) => s + l.total, 0);
    expect(a.activeBytesPerToken).toBe(blocks + a.outputBytes + a.embeddingBytes / 64 + 32 * 4);
    expect(a.totalBytes).toBe(blocks + a.embeddingBytes + a.outputBytes + 32 * 4);
  });

  it("counts routed experts at experts-used / experts, shared experts in full", async () => {
    const a = analyzeModel(await loadModel(join(FIX, "tiny-moe-00001-of-00002.gguf")));
    expect(a.isMoe).toBe(true);
    const l = a.layers[0];
    expect(l?.expertBytes).toBe((3 * 32 * 32 * 4 * 34) / 32);
    expect(l?.activeExpertBytes).toBe((l?.expertBytes ?? 0) / 2);
    expect(l?.bytes.shared_experts).toBe((3 * 32 * 32 * 34) / 32);
    expect(l?.activeBytes).toBe((l?.total ?? 0) - (l?.expertBytes ?? 0) / 2);
  });

  it("computes KV bytes per token for each KV type", () => {
    // Llama-style: 2 (K,V) x 32 layers x 8 KV heads x 128 dims.
    expect(kvBytesPerToken(dense.arch, "f16")).toBe(2 * 32 * 8 * 128 * 2);
    expect(kvBytesPerToken(dense.arch, "q8_0")).toBe((2 * 32 * 8 * 128 * 34) / 32);
    expect(kvBytesPerToken(dense.arch, "q4_0")).toBe((2 * 32 * 8 * 128 * 18) / 32);
  });

  it("reads a tied head as the embedding matrix", () => {
    const tied = analyzeModel(
      describeModel(
        "t",
        {
          model_type: "llama",
          hidden_size: 64,
          num_hidden_layers: 1,
          num_attention_heads: 4,
          intermediate_size: 128,
          vocab_size: 1000,
          tie_word_embeddings: true,
        },
        16,
      ),
    );
    expect(tied.tiedOutput).toBe(true);
    expect(tied.outputBytes).toBe(1000 * 64 * 2);
  });
});

describe("zero-copy prefill fit", () => {
  it("passes through the measured H100 points and keeps growing", () => {
    expect(zeroCopyGemmFactor(1)).toBeCloseTo(9.31 / 8.7, 6);
    expect(zeroCopyGemmFactor(512)).toBeCloseTo(10.97 / 8.7, 6);
    expect(zeroCopyGemmFactor(2048)).toBeCloseTo(88.1 / 8.7, 6);
    expect(zeroCopyGemmFactor(8192)).toBeCloseTo(470.9 / 8.7, 6);
    expect(zeroCopyGemmFactor(16384)).toBeGreaterThan(zeroCopyGemmFactor(8192) * 1.9);
    for (let m = 1; m < 20000; m = Math.ceil(m * 1.3))
      expect(zeroCopyGemmFactor(m + 1)).toBeGreaterThanOrEqual(zeroCopyGemmFactor(m) - 1e-9);
  });
});

describe("strategies", () => {
  it("spillover decode = resident bytes at VRAM speed + host bytes at zero-copy speed", () => {
    const e = makeEnv(dense, machine(), W, "m.gguf");
    const s = spilloverZeroCopy(e);
    expect(s.feasible).toBe(true);
    const resident = e.usable - e.kvTotal;
    expect(s.memory.weightsVramBytes).toBeCloseTo(resident, 0);
    const host = dense.totalBytes - resident;
    // The head of the allocation order is in host RAM: the embeddings (a token reads one row of
    // them), then the first blocks (a dense token reads them whole).
    const emb = dense.tiedOutput ? 0 : Math.min(host, dense.embeddingBytes);
    const hostRead = emb * Math.min(1, W.batch / dense.arch.vocab) + (host - emb);
    expect(s.decodeStep?.hostS).toBeCloseTo(hostRead / 25e9, 6);
    const gpuBytes = dense.activeBytesPerToken - hostRead + e.kvReadPerStep;
    expect(s.decodeStep?.gpuS).toBeCloseTo(gpuBytes / (1000e9 * E.GPU_DECODE_EFF), 6);
    expect(s.decodeTokS).toBeCloseTo(
      1 / ((s.decodeStep?.gpuS ?? 0) + (s.decodeStep?.hostS ?? 0) + E.STEP_OVERHEAD_S),
      6,
    );
  });

  it("layer split puts the most blocks that fit on the GPU, or the ones asked for", () => {
    const e = makeEnv(dense, machine(), W, "m.gguf");
    const s = layerSplit(e);
    const perLayer = (dense.layers[0]?.total ?? 0) + (e.kvLayer[0] ?? 0);
    const n = Math.floor(e.usable / perLayer);
    expect(s.name).toBe(`llama.cpp layer split (-ngl ${n})`);
    expect(s.command).toContain(`-ngl ${n} -c 640 -fa on`);
    const forced = layerSplit(makeEnv(dense, machine(), { ...W, ngl: 10 }, "m.gguf"));
    expect(forced.name).toContain("-ngl 10");
    expect(forced.decodeTokS ?? 0).toBeLessThan(s.decodeTokS ?? 0);
  });

  it("MoE offload moves the fewest layers' experts that make the rest fit", async () => {
    const mx = analyzeModel(await loadModel(join(FIX, "mixtral-config")));
    const e = makeEnv(mx, machine({ vramBytes: 24 * GiB }), W, "mx.gguf");
    const s = moeCpu(e);
    expect(s.feasible).toBe(true);
    const n = Number(/--n-cpu-moe (\d+)/.exec(s.name)?.[1]);
    expect(s.memory.vramBytes).toBeLessThanOrEqual(24 * GiB);
    // One layer fewer would not fit.
    const tighter = moeCpu(
      makeEnv(mx, machine({ vramBytes: 24 * GiB }), { ...W, nCpuMoe: n - 1 }, "mx.gguf"),
    );
    expect(tighter.memory.vramBytes).toBeGreaterThan(24 * GiB - E.VRAM_OVERHEAD_BYTES - 1);
    expect(moeCpu(makeEnv(dense, machine(), W, "d")).whyNot).toBe("not a mixture-of-experts model");
    expect(moeCpu(makeEnv(mx, machine({ vramBytes: 200 * GiB }), W, "d")).whyNot).toContain(
      "everything fits",
    );
  });

  it("all-in-VRAM is infeasible past VRAM and batch decoding raises aggregate tokens/s", () => {
    expect(allVram(makeEnv(dense, machine(), W, "m")).whyNot).toMatch(
      /^needs [\d.]+ GiB of VRAM, the GPU has 8\.0 GiB$/,
    );
    const big = machine({ vramBytes: 80 * GiB });
    const one = allVram(makeEnv(dense, big, W, "m")).decodeTokS ?? 0;
    const eight = allVram(makeEnv(dense, big, { ...W, batch: 8 }, "m")).decodeTokS ?? 0;
    expect(eight).toBeGreaterThan(one * 4);
  });

  it("zero-copy prefill collapses at long micro-batches; streaming does not", () => {
    const long = { ...W, prompt: 8192, ubatch: 8192, ctx: 8192 + 128 };
    const p = makePlan(dense, machine({ vramBytes: 12 * GiB, fp16Tflops: 1000 }), long, "m");
    const zc = p.strategies.find((s) => s.id === "spillover")?.prefillTokS ?? 0;
    const st = p.strategies.find((s) => s.id === "spillover-streaming")?.prefillTokS ?? 0;
    expect(st / zc).toBeGreaterThan(10);
  });
});

describe("winner and why", () => {
  it("names CPU offload when RAM outruns the link at batch 1", () => {
    const p = makePlan(
      dense,
      machine({ ramGBs: 90, h2dGBs: 25, zeroCopyGBs: 23 }),
      { ...W, prompt: 16, gen: 512, ctx: 528 },
      "m.gguf",
    );
    expect(p.winner?.id).toBe("layer-split");
    expect(p.winner?.why).toMatch(
      /^CPU offload wins \([\d.]+ s vs [\d.]+ s for spillover tiered \(zero-copy\)\): your RAM \(90 GB\/s\) is faster than your PCIe link \(23 GB\/s zero-copy\) for batch-1 decode/,
    );
  });

  it("names tiering when the link outruns RAM", () => {
    const p = makePlan(
      dense,
      machine({ ramGBs: 20, h2dGBs: 54.5, zeroCopyGBs: 50.8 }),
      W,
      "m.gguf",
    );
    expect(p.winner?.id).toBe("spillover");
    expect(p.winner?.why).toMatch(/^Tiering wins/);
    expect(p.winner?.command).toMatch(
      /^SPILLOVER_VRAM_RESERVE=\d+G spillover run -- llama-server -m m\.gguf -ngl 999 -c 640 -fa on$/,
    );
  });

  it("never names a strategy that is not shipped", () => {
    for (const ram of [5, 20, 80, 300]) {
      const p = makePlan(dense, machine({ ramGBs: ram }), W, "m");
      expect(p.winner?.id).not.toBe("spillover-streaming");
    }
  });
});

describe("spillover plan (CLI)", () => {
  const hw = [
    "--gpu",
    "rtx3060",
    "--link",
    "gen4",
    "--ram-bw",
    "ddr5-6000x2",
    "--cpu-threads",
    "8",
  ];

  it("prints fixed columns, the winner, why and the command", async () => {
    const r = await runCli([
      "plan",
      "test/fixtures/models/mixtral-config",
      ...hw,
      "--prompt",
      "256",
      "--gen",
      "64",
    ]);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const lines = r.out.split("\n");
    const header = lines.find((l) => l.startsWith("strategy"));
    expect(header).toMatch(
      /^strategy\s+prefill tok\/s {2}decode tok\/s {2}VRAM GiB {2}RAM GiB {2}total {2}notes$/,
    );
    const col = header?.indexOf("decode tok/s") ?? -1;
    for (const name of [
      "all in VRAM",
      "spillover tiered (zero-copy)",
      "spillover tiered + streaming",
      "llama.cpp layer split",
      "MoE experts on CPU",
    ]) {
      const row = lines.find((l) => l.startsWith(name));
      expect(row, name).toBeDefined();
      expect(row?.[col - 1]).toBe(" ");
    }
    expect(r.out).toMatch(/\nwinner {3}MoE experts on CPU \(--n-cpu-moe \d+\)\n/);
    expect(r.out).toMatch(/\nwhy {6}CPU offload wins/);
    expect(r.out).toMatch(
      /\ncommand {2}python3 convert_hf_to_gguf\.py test\/fixtures\/models\/mixtral-config --outfile MODEL\.gguf && llama-server -m MODEL\.gguf -ngl 999 --n-cpu-moe \d+ -c 320 -fa on/,
    );
  });

  it("prints a stable JSON schema", async () => {
    const r = await runCli([
      "plan",
      "test/fixtures/models/tiny-llama.gguf",
      ...hw,
      "--json",
      "--kv-type",
      "q8_0",
      "--batch",
      "2",
    ]);
    expect(r.code).toBe(0);
    const p = JSON.parse(r.out);
    expect(Object.keys(p)).toEqual([
      "schema",
      "model",
      "derived",
      "machine",
      "workload",
      "efficiency",
      "strategies",
      "winner",
    ]);
    expect(p.schema).toBe("spillover-plan/1");
    expect(p.workload).toEqual({
      prompt: 512,
      gen: 128,
      batch: 2,
      ctx: 640,
      kvType: "q8_0",
      ubatch: 512,
    });
    expect(p.strategies.map((s: { id: string }) => s.id)).toEqual([
      "all-vram",
      "spillover",
      "spillover-streaming",
      "layer-split",
      "moe-cpu",
    ]);
    for (const s of p.strategies) {
      expect(Object.keys(s).sort()).toEqual([
        "available",
        "command",
        "decodeStep",
        "decodeTokS",
        "feasible",
        "id",
        "memory",
        "name",
        "notes",
        "prefillTokS",
        "totalSeconds",
        "whyNot",
      ]);
    }
    // KV: 2 (K,V) x 2 layers x 2 KV heads x 8 dims at q8_0 (34 bytes per 32), for 640 tokens x 2 sequences.
    expect(p.derived.kvBytes).toBe(((2 * 2 * 2 * 8 * 34) / 32) * 640 * 2);
    expect(p.derived.microBatch).toBe(512);
    expect(p.model.perLayer).toHaveLength(2);
    expect(p.model.perLayer[0].bytes.attention).toBe(((2 * 32 * 32 + 2 * 32 * 16) * 34) / 32);
    expect(p.winner.id).toBe("all-vram");
    expect(p.winner.command).toContain("-np 2");
    expect(p.winner.command).toContain("-ctk q8_0 -ctv q8_0");
  });

  it("refuses bad input in one line", async () => {
    const cases: [string[], RegExp][] = [
      [
        ["plan", "test/fixtures/models/tiny-llama.gguf", ...hw, "--ctx", "100"],
        /^spillover: --ctx 100 is smaller than --prompt \+ --gen \(640\)/,
      ],
      [
        ["plan", "test/fixtures/models/tiny-llama.gguf", ...hw, "--kv-type", "q3"],
        /--kv-type "q3": expected one of f32, f16/,
      ],
      [
        ["plan", "test/fixtures/models/tiny-llama.gguf", "--profile", "/nonexistent/p.json"],
        /^spillover: --profile \/nonexistent\/p\.json: no such file; make one with `spillover bench hw --profile/,
      ],
      [
        ["plan", "test/fixtures/models/nope.gguf", ...hw],
        /^spillover: \/.*nope\.gguf: no such file or directory$/,
      ],
      [["plan", ...hw], /^spillover: plan needs a model/],
      [
        ["plan", "--validate", "/nonexistent/r.json"],
        /^spillover: --validate \/nonexistent\/r\.json: cannot read \(ENOENT\)$/,
      ],
    ];
    for (const [argv, re] of cases) {
      const r = await runCli(argv);
      expect(r.code, argv.join(" ")).not.toBe(0);
      expect(r.err.trim().split("\n"), argv.join(" ")).toHaveLength(1);
      expect(r.err.trim(), argv.join(" ")).toMatch(re);
    }
  });

  it("names a corrupt model file and its problem", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spill-plan-"));
    writeFileSync(
      join(dir, "bad.gguf"),
      Buffer.concat([
        Buffer.from("GGUF\x03\x00\x00\x00"),
        Buffer.alloc(16, 0xff),
        Buffer.from("garbage"),
      ]),
    );
    const r = await runCli(["plan", join(dir, "bad.gguf"), ...hw]);
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/^spillover: \/.*bad\.gguf: (truncated|corrupt)/);
  });

  it("validates against a bench results file", async () => {
    const r = await runCli([
      "plan",
      "--validate",
      "test/fixtures/bench/sample-results.json",
      "--profile",
      "/nonexistent/p.json",
      "--json",
    ]);
    expect(r.err).toBe("");
    const v = JSON.parse(r.out);
    expect(v.schema).toBe("spillover-plan-validation/3");
    const row = v.rows.find(
      (x: { run: string; metric: string }) =>
        x.run === "dense-20g/spillover-50" && x.metric === "decode",
    );
    expect(row.measured).toBe(5.02);
    expect(row.predicted).toBeGreaterThan(0);
    expect(row.errorPct).toBeCloseTo(((row.predicted - 5.02) / 5.02) * 100, 6);
    expect(v.skipped.some((s: string) => s.startsWith("dense-20g/accelerate-25: timeout"))).toBe(
      true,
    );
    const bad = await runCli(["plan", "--validate", "package.json"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toMatch(
      /^spillover: .*package\.json: not a valid spillover-bench\/1 results file/,
    );
  });
});

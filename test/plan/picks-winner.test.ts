// plan.picks-winner's comparison: measured time per request shape from llama-bench medians, the
// measured winner, the planner's winner at the same VRAM, and the proof entry.
import { describe, expect, it } from "vitest";
import type { Machine } from "../../src/hw/machine.js";
import { analyzeModel } from "../../src/models/analyze.js";
import { describeModel } from "../../src/models/described.js";
import {
  type BenchRuns,
  measuredSeconds,
  picksWinnerProof,
  SHAPES,
  winnerPoint,
} from "../../src/plan/picks-winner.js";
import { makePlan } from "../../src/plan/plan.js";

const GiB = 2 ** 30;
const dense = analyzeModel(
  describeModel(
    "dense",
    {
      model_type: "llama",
      hidden_size: 4096,
      num_hidden_layers: 32,
      num_attention_heads: 32,
      num_key_value_heads: 8,
      intermediate_size: 14336,
      vocab_size: 128256,
    },
    8.5,
  ),
);
const machine: Machine = {
  gpuName: "test",
  vramBytes: 5 * GiB,
  vramGBs: 4000,
  vramSource: "measured",
  fp16Tflops: 800,
  pcieGen: 5,
  h2dGBs: 55,
  zeroCopyGBs: 51,
  linkSource: "measured",
  ramGBs: 90,
  ramSource: "measured",
  cpuThreads: 16,
  hostRamBytes: 128 * GiB,
};

const t = (n_prompt: number, n_gen: number, median_ts: number) => ({ n_prompt, n_gen, median_ts });

function runs(spillPp: number, splitPp: number, spillTg: number, splitTg: number): BenchRuns {
  return {
    "dense/a": { bench: [t(512, 0, spillPp), t(0, 128, spillTg)] },
    "dense/a/shapes": { bench: [t(2048, 0, spillPp), t(8192, 0, spillPp / 2)] },
    "dense/b": { bench: [t(512, 0, splitPp), t(0, 128, splitTg)] },
    "dense/b/shapes": { bench: [t(2048, 0, splitPp), t(8192, 0, splitPp / 2)] },
  };
}

describe("plan.picks-winner", () => {
  it("times a request from the measured prefill at its length and tg128", () => {
    const r = runs(4000, 1000, 10, 20);
    const chat = SHAPES[0];
    if (!chat) throw new Error("no shape");
    expect(measuredSeconds(r, ["dense/a", "dense/a/shapes"], chat)).toBeCloseTo(
      2048 / 4000 + 256 / 10,
      9,
    );
    // A strategy without a measurement at that prompt length has no time.
    expect(measuredSeconds({ "dense/a": r["dense/a"] ?? {} }, ["dense/a"], chat)).toBeNull();
  });

  it("names the measured winner, compares it with the planner's, and scores the proof", () => {
    const chat = SHAPES[0];
    const long = SHAPES[1];
    if (!chat || !long) throw new Error("no shape");
    const planned = makePlan(
      dense,
      machine,
      { prompt: 2048, gen: 256, batch: 1, ctx: 2304, kvType: "f16", ubatch: 512 },
      "m.gguf",
    ).winner?.id;
    // Decode dominates the chat shape: the faster tg128 wins it.
    const splitWins = winnerPoint(
      "dense",
      dense,
      machine,
      "m.gguf",
      runs(4000, 1000, 10, 20),
      chat,
    );
    expect(splitWins.measured).toBe("layer-split");
    expect(splitWins.planned).toBe(planned);
    expect(splitWins.match).toBe(planned === "layer-split");
    expect(Object.keys(splitWins.plannedSeconds).sort()).toEqual(["layer-split", "spillover"]);
    const spillWins = winnerPoint(
      "dense",
      dense,
      machine,
      "m.gguf",
      runs(4000, 1000, 30, 20),
      chat,
    );
    expect(spillWins.measured).toBe("spillover");
    // One strategy measured: nothing to compare.
    const lone = winnerPoint(
      "dense",
      dense,
      machine,
      "m.gguf",
      { "dense/a": runs(1, 1, 1, 1)["dense/a"] ?? {} },
      long,
    );
    expect(lone.evaluable).toBe(false);
    const proof = picksWinnerProof([splitWins, spillWins, lone]);
    const hits = [splitWins, spillWins].filter((p) => p.match).length;
    expect(proof.measured).toBeCloseTo(hits / 2, 3);
    expect(proof.pass).toBe(false); // a point was not evaluable
    expect(proof.detail).toMatch(/dense long prompt: not evaluable/);
  });
});

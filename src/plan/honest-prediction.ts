// plan.honest-prediction: how close is what `spillover plan` says by itself to what spillover
// measured? Every llama-bench test of the spillover runs of bench/llamacpp/run.py (pp512, tg128 and
// the pp2048/pp8192 shape runs) is a point: the planner's spillover strategy, for that test's own
// workload (its prompt or generated tokens, ctx = prompt + generated, llama-bench's 512-token
// micro-batch, f16 KV) on the run's hardware profile with the run's SPILLOVER_VRAM_LIMIT as the
// card's VRAM, against the test's median tok/s. Nothing else of the run enters the prediction: not
// its placement, not its timings. Pure: the caller reads the files.

import type { Machine } from "../hw/machine.js";
import type { ModelAnalysis } from "../models/analyze.js";
import type { BenchRuns, Proof } from "./picks-winner.js";
import { makePlan } from "./plan.js";
import { TOLERANCE_PCT } from "./validate.js";

export interface HonestPoint {
  readonly model: string;
  /** The run.py key of the recorded run, e.g. "dense/a/shapes". */
  readonly run: string;
  /** llama-bench's name of the test: pp512, tg128, pp8192. */
  readonly test: string;
  readonly predictedTokS: number;
  readonly measuredTokS: number;
  /** predicted / measured tok/s (above 1: the planner is too optimistic). */
  readonly ratio: number;
  readonly within: boolean;
}

/** The points of one model's spillover runs (`keys`), predicted at `machine` (VRAM = the run's limit). */
export function honestPoints(
  model: string,
  a: ModelAnalysis,
  machine: Machine,
  path: string,
  runs: BenchRuns,
  keys: readonly string[],
): HonestPoint[] {
  const out: HonestPoint[] = [];
  for (const key of keys) {
    for (const t of runs[key]?.bench ?? []) {
      if (!t.median_ts || t.n_prompt > 0 === t.n_gen > 0) continue;
      const plan = makePlan(
        a,
        machine,
        {
          prompt: t.n_prompt,
          gen: t.n_gen,
          batch: 1,
          ctx: t.n_prompt + t.n_gen,
          kvType: "f16",
          ubatch: 512,
        },
        path,
      );
      const s = plan.strategies.find((x) => x.id === "spillover");
      const predicted = t.n_prompt > 0 ? s?.prefillTokS : s?.decodeTokS;
      if (!s?.feasible || !predicted) continue;
      const ratio = predicted / t.median_ts;
      out.push({
        model,
        run: key,
        test: t.n_prompt > 0 ? `pp${t.n_prompt}` : `tg${t.n_gen}`,
        predictedTokS: predicted,
        measuredTokS: t.median_ts,
        ratio,
        within: Math.abs(ratio - 1) * 100 <= TOLERANCE_PCT,
      });
    }
  }
  return out;
}

const tokS = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));

/** The proof entry; `note` (optional) is appended to the detail, e.g. the fraction before a model change. */
export function honestPredictionProof(points: readonly HonestPoint[], note = ""): Proof {
  const hits = points.filter((p) => p.within).length;
  const value = points.length > 0 ? hits / points.length : 0;
  const rows = points
    .map(
      (p) =>
        `${p.model} ${p.test} (${p.run}): predicted ${tokS(p.predictedTokS)} tok/s, measured ${tokS(p.measuredTokS)}, ratio ${p.ratio.toFixed(2)}, ${p.within ? "within" : "miss"}`,
    )
    .join("; ");
  return {
    id: "plan.honest-prediction",
    measured: Number(value.toFixed(3)),
    target: ">= 0.75",
    unit: `fraction of spillover points (llama-bench tests under spillover) whose prediction by spillover plan alone is within ${TOLERANCE_PCT}% of the measured median tok/s`,
    pass: points.length > 0 && value >= 0.75,
    detail: `${hits} of ${points.length} within ${TOLERANCE_PCT}%; ${rows}. Prediction: spillover plan's spillover (zero-copy) strategy for each test's own workload (prompt or generated tokens, ctx = their sum, micro-batch 512, f16 KV), the run's hardware profile, VRAM = the run's SPILLOVER_VRAM_LIMIT; no measured input from the run${note ? `. ${note}` : ""}`,
  };
}

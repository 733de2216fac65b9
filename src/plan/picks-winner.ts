// plan.picks-winner: does `spillover plan` name the strategy that measured fastest? Over the
// llama.cpp benchmark's GGUFs (bench/llamacpp/run.py) and two request shapes, the planner's winner
// at the VRAM the strategies were measured at, against the measured winner: the least time for the
// request, prompt / measured prefill speed at that prompt length + generated tokens / measured
// tg128 speed (medians). Pure: the caller reads the files.

import type { Machine } from "../hw/machine.js";
import type { ModelAnalysis } from "../models/analyze.js";
import { makePlan } from "./plan.js";
import type { StrategyId, Workload } from "./strategies.js";

export interface RequestShape {
  readonly name: string;
  readonly prompt: number;
  readonly gen: number;
}

export const SHAPES: readonly RequestShape[] = [
  { name: "chat", prompt: 2048, gen: 256 },
  { name: "long prompt", prompt: 8192, gen: 64 },
];

/** One llama-bench test as run.py records it. */
export interface BenchTest {
  readonly n_prompt: number;
  readonly n_gen: number;
  readonly median_ts: number | null;
}

/** The runs of llamacpp-results.json that matter here: key -> its llama-bench tests. */
export type BenchRuns = Readonly<Record<string, { readonly bench?: readonly BenchTest[] | null }>>;

/** Which recorded runs measure each strategy of a model at the same VRAM (run.py's keys). */
export const MEASURED: Readonly<Record<string, Partial<Record<StrategyId, readonly string[]>>>> = {
  dense: { spillover: ["dense/a", "dense/a/shapes"], "layer-split": ["dense/b", "dense/b/shapes"] },
  moe: {
    spillover: ["moe/a", "moe/a/shapes"],
    "moe-cpu": ["moe/c", "moe/c/shapes"],
    "layer-split": ["moe/b"],
  },
};

function speed(runs: BenchRuns, keys: readonly string[], p: number, g: number): number | null {
  for (const k of keys) {
    for (const t of runs[k]?.bench ?? []) {
      if (t.n_prompt === p && t.n_gen === g && t.median_ts) return t.median_ts;
    }
  }
  return null;
}

/** Seconds for the request from a strategy's measured speeds, null when one is missing. */
export function measuredSeconds(
  runs: BenchRuns,
  keys: readonly string[],
  s: RequestShape,
): number | null {
  const pp = speed(runs, keys, s.prompt, 0);
  const tg = speed(runs, keys, 0, 128);
  return pp && tg ? s.prompt / pp + s.gen / tg : null;
}

export interface WinnerPoint {
  readonly model: string;
  readonly shape: string;
  readonly planned: string | null;
  readonly measured: string | null;
  readonly measuredSeconds: Readonly<Record<string, number>>;
  readonly plannedSeconds: Readonly<Record<string, number>>;
  /** False when fewer than two strategies were measured for this point. */
  readonly evaluable: boolean;
  readonly match: boolean;
}

export function winnerPoint(
  model: string,
  a: ModelAnalysis,
  machine: Machine,
  path: string,
  runs: BenchRuns,
  s: RequestShape,
): WinnerPoint {
  const w: Workload = {
    prompt: s.prompt,
    gen: s.gen,
    batch: 1,
    ctx: s.prompt + s.gen,
    kvType: "f16",
    ubatch: 512,
  };
  const plan = makePlan(a, machine, w, path);
  const times: Record<string, number> = {};
  for (const [id, keys] of Object.entries(MEASURED[model] ?? {})) {
    const t = keys ? measuredSeconds(runs, keys, s) : null;
    if (t !== null) times[id] = t;
  }
  const plannedSeconds: Record<string, number> = {};
  for (const st of plan.strategies) {
    if (st.feasible && st.available && st.totalSeconds !== null && st.id in times)
      plannedSeconds[st.id] = st.totalSeconds;
  }
  const measured = Object.entries(times).sort((x, y) => x[1] - y[1])[0]?.[0] ?? null;
  const planned = plan.winner?.id ?? null;
  const evaluable = Object.keys(times).length >= 2;
  return {
    model,
    shape: s.name,
    planned,
    measured,
    measuredSeconds: times,
    plannedSeconds,
    evaluable,
    match: evaluable && planned === measured,
  };
}

export interface Proof {
  readonly id: string;
  readonly measured: number;
  readonly target: string;
  readonly unit: string;
  readonly pass: boolean;
  readonly detail: string;
}

export function picksWinnerProof(points: readonly WinnerPoint[]): Proof {
  const ev = points.filter((p) => p.evaluable);
  const hits = ev.filter((p) => p.match).length;
  const value = ev.length > 0 ? hits / ev.length : 0;
  const secs = (r: Readonly<Record<string, number>>) =>
    Object.entries(r)
      .map(([k, v]) => `${k} ${v.toFixed(2)} s`)
      .join(", ");
  const detail = points
    .map((p) =>
      p.evaluable
        ? `${p.model} ${p.shape}: planner names ${p.planned}, measured winner ${p.measured} (measured ${secs(p.measuredSeconds)}; planned ${secs(p.plannedSeconds)})`
        : `${p.model} ${p.shape}: not evaluable (measured: ${secs(p.measuredSeconds) || "nothing"})`,
    )
    .join("; ");
  return {
    id: "plan.picks-winner",
    measured: Number(value.toFixed(3)),
    target: ">= 1.0",
    unit: "fraction of (GGUF, request shape) points where spillover plan's winner is the measured winner",
    pass: ev.length === points.length && value >= 1,
    detail: `${hits} of ${ev.length} evaluable points (of ${points.length}); ${detail}. Measured time = prompt / measured pp at that length + tokens / measured tg128 (medians, same VRAM)`,
  };
}

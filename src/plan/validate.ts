// Predicted vs measured for a bench suite results file (schema spillover-bench/1, bench/suite.py):
// for every LLM run that finished, what `spillover plan` predicts for the same model (built from the
// suite's config.json, bf16) next to what the run measured.
//
// Two figures per row, from the one efficiency model (src/plan/efficiency.ts), never mixed up:
// - the prediction: `spillover plan`'s own strategy (src/plan/strategies.ts) on the machine of the
//   hardware profile with the run's VRAM limit as the card's VRAM (all in VRAM for a no-spillover
//   run). The planner places the bytes itself by the interposer's limit and placement rules and
//   takes nothing from the run: not its placement, not its timings, not its bandwidth probe (that
//   is used only when there is no profile). This is the figure validated.
// - the calibrated reconstruction: the same model fed what was measured about this very run, each
//   input named in the row: the placement the interposer's stats record or the driver reports, and
//   the program's own fixed time per step (per forward, for prefill) taken from the same model's
//   no-spillover run. It explains a measurement after the fact; it predicts nothing.
// Program properties the planner cannot see (whether the program's MoE kernels read every expert)
// come from the caller (--expert-reads) and enter the reconstruction only.
//
// No-spillover runs are shown with their all-in-VRAM prediction but not counted: the tally is over
// spillover runs. They are the reconstruction's calibration source.

import { type BenchResults, type LlmEntry, parseBenchResults } from "../bench/schema.js";
import { buildMachine, type Machine, type MachineFlags } from "../hw/machine.js";
import type { HwProfile } from "../hw/profile.js";
import { findGpu } from "../hw/table.js";
import { analyzeModel, type ModelAnalysis } from "../models/analyze.js";
import { archFromHfConfig, hfConfigSchema, tensorsFromHfConfig } from "../models/hf-config.js";
import type { ModelDescription, TensorEntry } from "../models/types.js";
import { SpilloverError } from "../util/errors.js";
import * as E from "./efficiency.js";
import {
  allVram,
  type Env,
  makeEnv,
  type StrategyResult,
  spilloverZeroCopy,
  touched,
  type Workload,
} from "./strategies.js";
import { zeroCopyGemmFactor, zeroCopyGemmFactorForShape } from "./zero-copy.js";

/** What the program does that its model file does not say. */
export interface ProgramProps {
  /** "routed": a token reads only its experts-used experts; "all": every expert of a layer is read per forward. */
  readonly expertReads: "routed" | "all";
}

export const DEFAULT_PROGRAM: ProgramProps = { expertReads: "routed" };

export interface Placement {
  /**
   * "vram": no-spillover run; "planner": placed by `spillover plan` from the VRAM limit (the
   * prediction's); "limit": the limit alone, the reconstruction's fallback; "sampled": the weights'
   * placement asked of the driver during the run; "measured": inferred from the stats record.
   */
  readonly source: "vram" | "planner" | "limit" | "sampled" | "measured";
  readonly hostWeightBytes: number;
  /** Pinned bytes that are not weights (activations, workspaces, caches): measured only. */
  readonly hostOtherBytes: number;
}

/** Of the prediction: no-spillover runs ("baseline") are shown, not counted. */
export type Verdict = "baseline" | "within" | "miss";
/** Of the calibrated reconstruction: no-spillover runs are its calibration source. */
export type CalibratedVerdict = "calibration" | "within" | "miss";

export interface ValidationRow {
  readonly run: string;
  readonly model: string;
  readonly moe: boolean;
  readonly mode: string;
  readonly fraction: number | null;
  readonly metric: string;
  readonly measured: number;
  /** `spillover plan`'s prediction (nothing from the run), its error and where it placed the weights. */
  readonly predicted: number;
  readonly errorPct: number;
  readonly predictedPlacement: Placement;
  readonly verdict: Verdict;
  /** The calibrated reconstruction's placement (measured in the run). */
  readonly placement: Placement;
  /** Fixed time per step (decode) or per forward (prefill) added to the GPU time, and where it comes from. */
  readonly overheadS: number;
  readonly overheadSource: string;
  readonly calibrated: number;
  readonly calibratedErrorPct: number;
  readonly calibratedVerdict: CalibratedVerdict;
  /** Why the reconstruction misses (or what a calibration row measured), computed from the data; null when within. */
  readonly reason: string | null;
}

export interface Tally {
  readonly within: number;
  readonly total: number;
}

export interface Validation {
  readonly schema: "spillover-plan-validation/3";
  readonly source: string;
  /** The machine the prediction assumes (the profile's), and the one the reconstruction uses. */
  readonly machine: Machine;
  readonly calibratedMachine: Machine;
  readonly program: ProgramProps;
  readonly tolerancePct: number;
  readonly rows: readonly ValidationRow[];
  readonly skipped: readonly string[];
  /** Spillover rows whose prediction is within tolerance, of `validated`. */
  readonly within25: number;
  readonly validated: number;
  /** The same, for the calibrated reconstruction (not a prediction). */
  readonly calibratedWithin25: number;
  /** Keyed "decode dense", "decode moe", "prefill dense", "prefill moe": the prediction's, the reconstruction's. */
  readonly byMetric: Readonly<Record<string, Tally>>;
  readonly calibratedByMetric: Readonly<Record<string, Tally>>;
}

export const TOLERANCE_PCT = 25;
const GB = 1e9;

function describeSuiteModel(
  name: string,
  arch: string,
  config: Record<string, unknown>,
): ModelDescription {
  const parsed = hfConfigSchema.safeParse({ ...config, model_type: arch });
  if (!parsed.success)
    throw new SpilloverError(
      "ERR_CONFIG",
      `model ${name}: config does not parse: ${parsed.error.issues[0]?.message ?? ""}`,
    );
  return {
    name,
    path: name,
    format: "described",
    arch: archFromHfConfig(parsed.data),
    tensors: tensorsFromHfConfig(parsed.data, "bf16", 2),
  };
}

function machineFrom(r: BenchResults, profile: HwProfile | undefined, f: MachineFlags): Machine {
  const bw = r.bandwidth;
  const h2d = f.link?.copyGBs ?? bw?.h2d_pinned_gbps ?? profile?.gpu.h2dGBs;
  const vram = f.vramBw ?? bw?.vram_read_gbps ?? profile?.gpu.vramReadGBs;
  if (h2d === undefined || vram === undefined) {
    throw new SpilloverError(
      "ERR_PROFILE",
      "the results file has no bandwidth section and there is no hardware profile: run `spillover bench hw` or pass --link and --vram-bw",
    );
  }
  const name = r.host.gpu_name ?? profile?.gpu.name ?? "GPU";
  const spec = findGpu(f.gpu ?? name);
  return {
    gpuName: name,
    vramBytes: r.host.vram_total_bytes ?? profile?.gpu.vramBytes ?? spec?.vramBytes ?? 0,
    vramGBs: vram,
    vramSource: "measured",
    fp16Tflops: spec?.fp16Tflops ?? 100,
    pcieGen: profile?.gpu.pcieGen ?? spec?.pcieGen ?? null,
    h2dGBs: h2d,
    zeroCopyGBs: profile?.gpu.vmmHostReadGBs ?? profile?.gpu.zeroCopyReadGBs ?? h2d * (50.8 / 54.5),
    linkSource: "measured",
    ramGBs: profile?.cpu.ramReadGBs ?? f.ramBw?.gbs ?? 1,
    ramSource: profile ? "measured" : "flag",
    cpuThreads: r.host.cpu_count ?? profile?.cpu.threads ?? 1,
    hostRamBytes: r.host.mem_total_bytes ?? null,
  };
}

/** The machine `spillover plan` would assume: the hardware profile's, or, with no profile, the
 * run's own bandwidth probe (the one input from the run then, said in the output). */
function plannerMachine(r: BenchResults, profile: HwProfile | undefined, f: MachineFlags): Machine {
  return profile ? buildMachine(profile, f) : machineFrom(r, undefined, f);
}

/** `spillover plan`'s strategy for a run: all in VRAM without spillover, else spillover tiered on
 * a card whose VRAM is the run's limit. The program runs a whole prompt in one forward (ubatch =
 * prompt); the KV cache is bf16. */
export function predictRun(
  a: ModelAnalysis,
  m: Machine,
  limitBytes: number | null,
  prompt: number,
  gen: number,
  name: string,
): StrategyResult {
  const w: Workload = {
    prompt: Math.max(1, prompt),
    gen,
    batch: 1,
    ctx: Math.max(1, prompt) + gen,
    kvType: "bf16",
    ubatch: Math.max(1, prompt),
  };
  if (limitBytes === null) return allVram(makeEnv(a, m, w, name));
  return spilloverZeroCopy(makeEnv(a, { ...m, vramBytes: limitBytes }, w, name));
}

function predictedPlacement(s: StrategyResult, isBase: boolean): Placement {
  return {
    source: isBase ? "vram" : "planner",
    hostWeightBytes: s.memory.weightsHostBytes,
    hostOtherBytes: 0,
  };
}

/**
 * Where a spillover run's bytes were during `phase`. Newer results sample the weights' placement
 * from the driver after prefill and after decode (the interposer migrates pages by use, so it
 * changes during a run); pinned bytes beyond those weights (the stats record's, at exit) are the
 * non-weight allocations. Older results only have the stats record: the suite builds the weights
 * before anything else and placement was first come, first served, so the device tier held the
 * head of the weights and the weights beyond it were in pinned memory. Null when neither exists.
 */
export function measuredPlacement(
  w: LlmEntry,
  weightBytes: number,
  phase: "prefill" | "decode",
): Placement | null {
  const s = w.spill_stats;
  const pinned = s?.tier_pinned_bytes;
  const sampled = w.metrics?.placement?.[phase === "prefill" ? "after_prefill" : "after_decode"];
  if (sampled) {
    const host = sampled.weights_host_bytes;
    return {
      source: "sampled",
      hostWeightBytes: host,
      hostOtherBytes: Math.max(0, (pinned ?? host) - host),
    };
  }
  if (!s || pinned === undefined || s.passthrough_bytes === undefined) return null;
  const device = s.passthrough_bytes + (s.tier_vram_bytes ?? 0);
  const hostWeightBytes = Math.min(pinned, Math.max(0, weightBytes - device));
  return { source: "measured", hostWeightBytes, hostOtherBytes: pinned - hostWeightBytes };
}

/**
 * How many passes over a host-resident tensor a forward of `tokens` tokens makes (the zero-copy
 * GEMM re-read factor of its shape, zero-copy.ts). The suite's program keeps only the last
 * position's logits (the head runs at M = 1); each routed expert sees tokens x used / experts rows;
 * an embedding is a gather of rows (counted by hostRead), read once.
 */
function passes(a: ModelAnalysis, t: TensorEntry, tokens: number): number {
  const {
    hidden: h,
    heads,
    headDim,
    kvHeads,
    vocab,
    experts,
    expertsUsed,
    expertFfnHidden,
    ffnHidden,
  } = a.arch;
  const zc = zeroCopyGemmFactorForShape;
  switch (t.role) {
    case "embedding":
      return 1;
    case "output":
      return zc(1, vocab, h);
    case "experts": {
      const m = Math.max(1, Math.round((tokens * expertsUsed) / Math.max(1, experts)));
      return (2 / 3) * zc(m, 2 * expertFfnHidden, h) + (1 / 3) * zc(m, h, expertFfnHidden);
    }
    case "ffn":
      return (2 / 3) * zc(tokens, ffnHidden, h) + (1 / 3) * zc(tokens, h, ffnHidden);
    case "attention": {
      const kv = (kvHeads[t.layer ?? 0] ?? heads) * headDim;
      if (/[kv]_proj/.test(t.name)) return zc(tokens, kv, h);
      return /o_proj/.test(t.name)
        ? zc(tokens, h, heads * headDim)
        : zc(tokens, heads * headDim, h);
    }
    default:
      return zeroCopyGemmFactor(tokens);
  }
}

/**
 * Host-resident and total weight bytes a forward of `tokens` tokens reads, first-come placement
 * (the tail of the allocation order is in host memory), and the host bytes times their passes.
 */
export function hostRead(
  a: ModelAnalysis,
  m: ModelDescription,
  hostBytes: number,
  tokens: number,
  program: ProgramProps,
): { host: number; all: number; hostPassBytes: number } {
  let left = hostBytes;
  let host = 0;
  let all = 0;
  let hostPassBytes = 0;
  const frac = program.expertReads === "all" ? 1 : touched(a, tokens);
  for (let i = m.tensors.length - 1; i >= 0; i--) {
    const t = m.tensors[i];
    if (!t) continue;
    const read =
      t.role === "experts"
        ? t.bytes * frac
        : t.role === "embedding"
          ? (t.bytes / Math.max(1, a.arch.vocab)) * Math.min(tokens, a.arch.vocab)
          : t.bytes;
    all += read;
    if (left > 0) {
      const share = Math.min(1, left / t.bytes);
      host += read * share;
      hostPassBytes += read * share * passes(a, t, tokens);
      left -= t.bytes;
    }
  }
  return { host, all, hostPassBytes };
}

/** GPU-side seconds (no program overhead) for one decode step and one prefill forward per prompt length. */
interface GpuTimes {
  readonly decodeS: number;
  readonly decodeHostBytes: number;
  readonly decodeResidentS: number;
  readonly prefillS: Map<number, number>;
  /** Passes over the host weights per prefill forward (their shapes' zero-copy GEMM factors). */
  readonly prefillPasses: Map<number, number>;
}

function gpuTimes(
  e: Env,
  m: ModelDescription,
  hostWeightBytes: number,
  prompts: readonly number[],
  program: ProgramProps,
): GpuTimes {
  const a = e.a;
  const prefillS = new Map<number, number>();
  const prefillPasses = new Map<number, number>();
  for (const T of prompts) {
    const r = hostRead(a, m, hostWeightBytes, T, program);
    prefillPasses.set(T, r.host > 0 ? r.hostPassBytes / r.host : 1);
    const flops =
      T * (a.flopsPerToken + 4 * a.arch.layers * a.arch.heads * a.arch.headDim * (T / 2));
    const resTime = Math.max((r.all - r.host) / e.gpuReadBw, flops / e.gpuFlops);
    prefillS.set(T, resTime + r.hostPassBytes / e.zc);
  }
  const d = hostRead(a, m, hostWeightBytes, 1, program);
  const decodeResidentS = (d.all - d.host + e.kvReadPerStep) / e.gpuBw;
  return {
    decodeS: decodeResidentS + d.host / e.zc,
    decodeHostBytes: d.host,
    decodeResidentS,
    prefillS,
    prefillPasses,
  };
}

const err = (p: number, m: number) => ((p - m) / m) * 100;
const gb = (b: number) => `${(b / GB).toFixed(2)} GB`;
const ms = (s: number) => `${(s * 1e3).toFixed(1)} ms`;
const sec = (s: number) => (s >= 1 ? `${s.toFixed(2)} s` : ms(s));
const signed = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(0)}%`;

/** What the no-spillover run of a model measured, for calibrating the others. */
interface Baseline {
  readonly id: string;
  readonly prepared: Prepared;
  readonly decodeStepS: number;
  readonly decodeOverheadS: number;
  /** The overhead implied by the fastest and the slowest of its decode runs. */
  readonly decodeOverheadRangeS: readonly [number, number];
  readonly prefillOverheadS: Map<number, number>;
  readonly prefillS: Map<number, number>;
}

/** The run of a model with (almost) no weights in host memory: what non-weight host bytes alone cost. */
interface NoWeightRun {
  readonly id: string;
  readonly hostOtherBytes: number;
  readonly prefillS: Map<number, number>;
}

interface Prepared {
  readonly w: LlmEntry;
  readonly model: ModelDescription;
  readonly e: Env;
  readonly prompts: readonly number[];
}

export function validateResults(
  source: string,
  text: string,
  profile: HwProfile | undefined,
  f: MachineFlags,
  program: ProgramProps = DEFAULT_PROGRAM,
): Validation {
  let results: BenchResults;
  try {
    results = parseBenchResults(JSON.parse(text), source);
  } catch (e) {
    throw new SpilloverError(
      "ERR_CONFIG",
      e instanceof SyntaxError ? `${source}: not valid JSON` : (e as Error).message,
    );
  }
  const machine = machineFrom(results, profile, f);
  const pm = plannerMachine(results, profile, f);
  const skipped: string[] = [];
  const prepared: Prepared[] = [];
  for (const w of results.workloads) {
    if (w.group !== "llm") continue;
    const spec = results.models[w.model];
    if (w.status !== "ok" || !w.metrics || !spec) {
      skipped.push(`${w.id}: ${w.status}${w.error ? ` (${w.error.split("\n")[0]})` : ""}`);
      continue;
    }
    if (w.mode === "accelerate") {
      skipped.push(`${w.id}: accelerate offload is not a strategy the planner models`);
      continue;
    }
    const model = describeSuiteModel(w.model, spec.arch, spec.config);
    const a = analyzeModel(model);
    const decodeTokens = w.metrics.decode.new_tokens;
    const e = makeEnv(
      a,
      machine,
      {
        prompt: Math.max(1, w.metrics.ttft_prompt),
        gen: decodeTokens,
        batch: 1,
        ctx: w.metrics.ttft_prompt + decodeTokens,
        kvType: "bf16",
        ubatch: 1 << 30,
      },
      w.model,
    );
    const prompts = Object.values(w.metrics.prefill).map((p) => p.tokens);
    prepared.push({ w, model, e, prompts });
  }
  // Baselines first: they calibrate the spillover runs of their model.
  const baselines = new Map<string, Baseline>();
  for (const p of prepared) {
    if (p.w.mode !== "baseline" || !p.w.metrics) continue;
    const g = gpuTimes(p.e, p.model, 0, p.prompts, program);
    const prefillOverheadS = new Map<number, number>();
    const prefillS = new Map<number, number>();
    for (const pf of Object.values(p.w.metrics.prefill)) {
      prefillS.set(pf.tokens, pf.tokens / pf.tokens_per_s);
      prefillOverheadS.set(
        pf.tokens,
        Math.max(0, pf.tokens / pf.tokens_per_s - (g.prefillS.get(pf.tokens) ?? 0)),
      );
    }
    const steps = p.w.metrics.decode.runs.map(
      (r) => r.seconds / Math.max(1, (p.w.metrics?.decode.new_tokens ?? 2) - 1),
    );
    const over = (s: number) => Math.max(0, s - g.decodeS);
    const decodeOverheadS = over(1 / p.w.metrics.decode.tokens_per_s);
    baselines.set(p.w.model, {
      id: p.w.id,
      prepared: p,
      decodeStepS: 1 / p.w.metrics.decode.tokens_per_s,
      decodeOverheadS,
      decodeOverheadRangeS:
        steps.length > 0
          ? [over(Math.min(...steps)), over(Math.max(...steps))]
          : [decodeOverheadS, decodeOverheadS],
      prefillOverheadS,
      prefillS,
    });
  }
  const noWeight = new Map<string, NoWeightRun>();
  for (const p of prepared) {
    if (p.w.mode === "baseline" || !p.w.metrics) continue;
    const pl = measuredPlacement(p.w, p.e.a.totalBytes, "prefill");
    if (!pl || pl.hostWeightBytes > 0.01 * p.e.a.totalBytes) continue;
    const prev = noWeight.get(p.w.model);
    if (prev && prev.hostOtherBytes <= pl.hostOtherBytes) continue;
    noWeight.set(p.w.model, {
      id: p.w.id,
      hostOtherBytes: pl.hostOtherBytes,
      prefillS: new Map(
        Object.values(p.w.metrics.prefill).map((x) => [x.tokens, x.tokens / x.tokens_per_s]),
      ),
    });
  }
  const ordered = [...prepared].sort(
    (x, y) => (x.w.mode === "baseline" ? 0 : 1) - (y.w.mode === "baseline" ? 0 : 1),
  );
  const rows: ValidationRow[] = [];
  for (const p of ordered) rows.push(...rowsFor(p, results, pm, program, baselines, noWeight));
  return summarize(source, pm, machine, program, rows, skipped);
}

function rowsFor(
  p: Prepared,
  results: BenchResults,
  pm: Machine,
  program: ProgramProps,
  baselines: ReadonlyMap<string, Baseline>,
  noWeight: ReadonlyMap<string, NoWeightRun>,
): ValidationRow[] {
  const { w, e, model } = p;
  const metrics = w.metrics;
  if (!metrics) return [];
  const a = e.a;
  const W = a.totalBytes;
  const isBase = w.mode === "baseline";
  const limitHost = isBase
    ? 0
    : Math.max(0, W - Math.max(0, (w.vram_limit_bytes ?? 0) - results.allowance_bytes));
  const limitPlacement: Placement = {
    source: isBase ? "vram" : "limit",
    hostWeightBytes: Math.min(W, limitHost),
    hostOtherBytes: 0,
  };
  const placed = (phase: "prefill" | "decode") =>
    isBase ? limitPlacement : (measuredPlacement(w, W, phase) ?? limitPlacement);
  const prefillPlacement = placed("prefill");
  const placement = placed("decode");
  // The prediction knows nothing of the run: `spillover plan` on the profile's machine.
  const limit = isBase ? null : (w.vram_limit_bytes ?? pm.vramBytes);
  const predict = (prompt: number) =>
    predictRun(a, pm, limit, prompt, metrics.decode.new_tokens, w.model);
  const honestVerdict = (errPct: number): Verdict =>
    isBase ? "baseline" : Math.abs(errPct) <= TOLERANCE_PCT ? "within" : "miss";
  const calPrefill = gpuTimes(e, model, prefillPlacement.hostWeightBytes, p.prompts, program);
  const cal = gpuTimes(e, model, placement.hostWeightBytes, p.prompts, program);
  const base = baselines.get(w.model);
  const overheadSource = base
    ? `no-spillover run ${base.id}`
    : "planner constant (no baseline run)";
  const common = {
    run: w.id,
    model: w.model,
    moe: a.isMoe,
    mode: w.mode,
    fraction: w.fraction,
  };
  const rows: ValidationRow[] = [];
  for (const pf of Object.values(metrics.prefill)) {
    const T = pf.tokens;
    const measuredS = T / pf.tokens_per_s;
    const plan = predict(T);
    const predicted = plan.prefillTokS ?? 0;
    const overheadS = base?.prefillOverheadS.get(T) ?? 0;
    const calS = (calPrefill.prefillS.get(T) ?? 0) + overheadS;
    const calibrated = T / calS;
    const calErr = err(calibrated, pf.tokens_per_s);
    const verdict = verdictOf(isBase, calErr);
    const errorPct = err(predicted, pf.tokens_per_s);
    let reason: string | null = null;
    if (verdict === "calibration") {
      const gpuS = calPrefill.prefillS.get(T) ?? 0;
      const times = Object.values(metrics.prefill)
        .map((x) => `${x.tokens} tokens ${ms(x.tokens / x.tokens_per_s)}`)
        .join(", ");
      reason =
        overheadS > gpuS
          ? `calibration source: overhead-bound, ${ms(measuredS)} measured against ${ms(gpuS)} of predicted GPU work (${times})`
          : overheadS > 0
            ? `calibration source: ${ms(overheadS)} of program time beyond ${ms(gpuS)} of predicted GPU work`
            : `calibration source: faster than the model's GPU estimate (${ms(measuredS)} vs ${ms(gpuS)}): no overhead to add; the prefill GEMM efficiency (${E.GPU_PREFILL_EFF} of tensor peak) is conservative here`;
    } else if (verdict === "miss") {
      reason = prefillMissReason(
        w.id,
        T,
        measuredS,
        calS,
        prefillPlacement,
        base,
        noWeight.get(w.model),
        e.zc,
        calPrefill.prefillPasses.get(T) ?? 1,
      );
    }
    rows.push({
      ...common,
      placement: prefillPlacement,
      metric: `prefill ${T}`,
      measured: pf.tokens_per_s,
      predicted,
      errorPct,
      predictedPlacement: predictedPlacement(plan, isBase),
      verdict: honestVerdict(errorPct),
      overheadS,
      overheadSource,
      calibrated,
      calibratedErrorPct: calErr,
      calibratedVerdict: verdict,
      reason,
    });
  }
  const measured = metrics.decode.tokens_per_s;
  const plan = predict(metrics.ttft_prompt);
  const predicted = plan.decodeTokS ?? 0;
  const overheadS = base ? base.decodeOverheadS : E.STEP_OVERHEAD_S;
  const calibrated = 1 / (cal.decodeS + overheadS);
  const calErr = err(calibrated, measured);
  const verdict = verdictOf(isBase, calErr);
  let reason: string | null = null;
  if (verdict === "calibration") {
    reason = `calibration source: ${ms(1 / measured)} per token measured, ${ms(cal.decodeS)} of it predicted for reading weights and KV: the program's own overhead is ${ms(overheadS)} per step (the planner assumes ${ms(E.STEP_OVERHEAD_S)})`;
    const spread = metrics.decode.runs.map(
      (r) => r.seconds / Math.max(1, metrics.decode.new_tokens - 1),
    );
    if (spread.length > 1) {
      const lo = Math.min(...spread);
      const hi = Math.max(...spread);
      if (hi > 1.5 * lo)
        reason += `; its ${spread.length} runs differ (${ms(lo)} to ${ms(hi)} per token), so this overhead is uncertain`;
    }
  } else {
    const impliedBy = (o: number) => Math.max(0, (1 / measured - o - cal.decodeResidentS) * e.zc);
    const implied = impliedBy(overheadS);
    const parts: string[] = [];
    const range = base?.decodeOverheadRangeS;
    const spread =
      range && range[1] > 1.5 * range[0]
        ? ` (${gb(impliedBy(range[1]))} to ${gb(impliedBy(range[0]))} with the overhead of the baseline's slowest and fastest run, ${ms(range[1])} and ${ms(range[0])})`
        : "";
    if (verdict === "miss" && placement.hostWeightBytes <= 0 && base) {
      parts.push(
        `no weights in host: the prediction is the no-spillover run's ${ms(base.decodeStepS)} per token; this process took ${ms(1 / measured)}: the program's own variation between processes, not the link`,
      );
    } else if (verdict === "miss" || a.isMoe) {
      parts.push(
        `measured ${ms(1 / measured)} per token less the ${ms(overheadS)} overhead and ${ms(cal.decodeResidentS)} of VRAM reads implies ${gb(implied)} read from host per token at ${(e.zc / GB).toFixed(1)} GB/s${spread}; the model reads ${gb(cal.decodeHostBytes)} of the ${gb(placement.hostWeightBytes)} of weights in host`,
      );
    }
    if (a.isMoe) {
      const other: ProgramProps = {
        expertReads: program.expertReads === "all" ? "routed" : "all",
      };
      const alt = gpuTimes(e, model, placement.hostWeightBytes, p.prompts, other);
      // The other program property also changes what the baseline's overhead is taken to be.
      const bp = base?.prepared;
      const altOverheadS =
        base && bp
          ? Math.max(0, base.decodeStepS - gpuTimes(bp.e, bp.model, 0, bp.prompts, other).decodeS)
          : overheadS;
      const altTokS = 1 / (alt.decodeS + altOverheadS);
      parts.push(
        `MoE: with ${program.expertReads} experts read ${gb(cal.decodeHostBytes)} from host (${calibrated.toFixed(2)} tok/s, ${signed(calErr)}), with ${other.expertReads} experts ${gb(alt.decodeHostBytes)} (${altTokS.toFixed(2)} tok/s, ${signed(err(altTokS, measured))})`,
      );
    }
    reason = parts.length > 0 ? parts.join("; ") : null;
  }
  rows.push({
    ...common,
    placement,
    metric: "decode",
    measured,
    predicted,
    errorPct: err(predicted, measured),
    predictedPlacement: predictedPlacement(plan, isBase),
    verdict: honestVerdict(err(predicted, measured)),
    overheadS,
    overheadSource,
    calibrated,
    calibratedErrorPct: calErr,
    calibratedVerdict: verdict,
    reason,
  });
  return rows;
}

function verdictOf(isBase: boolean, calErr: number): CalibratedVerdict {
  if (isBase) return "calibration";
  return Math.abs(calErr) <= TOLERANCE_PCT ? "within" : "miss";
}

function prefillMissReason(
  id: string,
  T: number,
  measuredS: number,
  predictedS: number,
  placement: Placement,
  base: Baseline | undefined,
  ref: NoWeightRun | undefined,
  zc: number,
  passes: number,
): string {
  const gap = measuredS - predictedS;
  const head = `measured ${sec(measuredS)} per forward against ${sec(predictedS)} predicted (${gap >= 0 ? "+" : ""}${sec(gap)})`;
  if (
    placement.source !== "vram" &&
    placement.source !== "limit" &&
    placement.hostWeightBytes <= 0 &&
    placement.hostOtherBytes <= 0
  ) {
    return `${head}; nothing in host memory: the prediction is the no-spillover run's own time, so the difference is the program's variation between processes`;
  }
  if (
    placement.source === "vram" ||
    placement.source === "limit" ||
    placement.hostOtherBytes <= 0
  ) {
    return `${head}; the model re-reads the host weights ${passes.toFixed(1)}x at ${T} tokens (the zero-copy GEMM factors of their shapes), the measurement differs by ${(measuredS / predictedS).toFixed(1)}x`;
  }
  const other = `${gb(placement.hostOtherBytes)} of non-weight allocations (activations, workspaces) were in pinned memory, which the model does not charge`;
  const baseS = base?.prefillS.get(T);
  const refS = ref?.prefillS.get(T);
  if (ref && ref.id === id && baseS !== undefined) {
    return `${head}; no weights in host: ${other}, and they alone made this forward ${(measuredS / baseS).toFixed(1)}x slower than without spillover`;
  }
  if (ref && baseS !== undefined && refS !== undefined) {
    const loss = refS - baseS;
    const linkS = placement.hostWeightBytes / zc;
    const rest = gap - loss;
    const factor =
      linkS > 0 && rest > 0
        ? `; the rest (${sec(rest)}) would mean the ${T}-token GEMMs re-read the ${gb(placement.hostWeightBytes)} of host weights ${((linkS * passes + rest) / linkS).toFixed(1)}x, not the ${passes.toFixed(1)}x measured for GEMMs of their shapes`
        : "";
    return `${head}; ${other}: the ${ref.id} run (no weights in host, ${gb(ref.hostOtherBytes)} other) lost ${sec(loss)} against no spillover at ${T} tokens, ${((loss / Math.max(gap, 1e-9)) * 100).toFixed(0)}% of this gap${factor}`;
  }
  return `${head}; ${other} (no run of this model without weights in host to size their cost)`;
}

function summarize(
  source: string,
  machine: Machine,
  calibratedMachine: Machine,
  program: ProgramProps,
  rows: ValidationRow[],
  skipped: string[],
): Validation {
  const validated = rows.filter((r) => r.verdict !== "baseline");
  const tally = (ok: (r: ValidationRow) => boolean) => {
    const out: Record<string, Tally> = {};
    for (const kind of ["decode", "prefill"]) {
      for (const fam of ["dense", "moe"]) {
        const sel = validated.filter((r) => r.metric.startsWith(kind) && (fam === "moe") === r.moe);
        out[`${kind} ${fam}`] = { within: sel.filter(ok).length, total: sel.length };
      }
    }
    return out;
  };
  return {
    schema: "spillover-plan-validation/3",
    source,
    machine,
    calibratedMachine,
    program,
    tolerancePct: TOLERANCE_PCT,
    rows,
    skipped,
    within25: validated.filter((r) => r.verdict === "within").length,
    validated: validated.length,
    calibratedWithin25: validated.filter((r) => r.calibratedVerdict === "within").length,
    byMetric: tally((r) => r.verdict === "within"),
    calibratedByMetric: tally((r) => r.calibratedVerdict === "within"),
  };
}

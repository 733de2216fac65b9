// Predicted vs measured for a bench suite results file (schema spillover-bench/1, bench/suite.py):
// for every LLM run that finished, the planner's prediction for the same model (built from the
// suite's config.json, bf16), the same VRAM limit and this machine's measured bandwidths, next to
// what the run measured. Placement follows what the interposer does today: first come, first
// served, so the tail of the allocation order (last layers, lm_head) lives in host RAM.
//
// Transformers in eager mode spends a fixed CPU-side time per decode step (Python dispatch and
// ~40 kernel launches per layer) that no bandwidth model predicts; the "calibrated" column takes
// that constant from the same model's all-in-VRAM baseline run and applies it to the spillover
// runs, so what is being validated is the tiering model, not the framework overhead.

import { type BenchResults, type LlmEntry, parseBenchResults } from "../bench/schema.js";
import type { Machine, MachineFlags } from "../hw/machine.js";
import type { HwProfile } from "../hw/profile.js";
import { findGpu } from "../hw/table.js";
import { analyzeModel, type ModelAnalysis } from "../models/analyze.js";
import { archFromHfConfig, hfConfigSchema, tensorsFromHfConfig } from "../models/hf-config.js";
import type { ModelDescription } from "../models/types.js";
import { SpilloverError } from "../util/errors.js";
import * as E from "./efficiency.js";
import { type Env, makeEnv, touched } from "./strategies.js";
import { zeroCopyGemmFactor } from "./zero-copy.js";

export interface ValidationRow {
  readonly run: string;
  readonly model: string;
  readonly mode: string;
  readonly fraction: number | null;
  readonly metric: string;
  readonly measured: number;
  readonly predicted: number;
  readonly errorPct: number;
  readonly calibrated: number | null;
  readonly calibratedErrorPct: number | null;
}

export interface Validation {
  readonly schema: "spillover-plan-validation/1";
  readonly source: string;
  readonly machine: Machine;
  readonly rows: readonly ValidationRow[];
  readonly skipped: readonly string[];
  /** Rows (calibrated where available) within 25% of measured. */
  readonly within25: number;
}

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

/** Host-resident weight bytes a forward of `tokens` tokens reads, first-come placement. */
function hostRead(
  a: ModelAnalysis,
  m: ModelDescription,
  hostBytes: number,
  tokens: number,
): { host: number; all: number } {
  let left = hostBytes;
  let host = 0;
  let all = 0;
  const frac = touched(a, tokens);
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
      left -= t.bytes;
    }
  }
  return { host, all };
}

interface Predicted {
  readonly prefill: Map<number, number>;
  readonly stepNoOverhead: number;
}

function predict(
  e: Env,
  m: ModelDescription,
  resident: number,
  prompts: readonly number[],
): Predicted {
  const a = e.a;
  const host = Math.max(0, a.totalBytes - resident);
  const prefill = new Map<number, number>();
  for (const T of prompts) {
    const r = hostRead(a, m, host, T);
    const flops =
      T * (a.flopsPerToken + 4 * a.arch.layers * a.arch.heads * a.arch.headDim * (T / 2));
    const resTime = Math.max((r.all - r.host) / e.gpuReadBw, flops / e.gpuFlops);
    prefill.set(T, T / (resTime + (r.host / e.zc) * zeroCopyGemmFactor(T)));
  }
  const d = hostRead(a, m, host, 1);
  const stepNoOverhead = (d.all - d.host + e.kvReadPerStep) / e.gpuBw + d.host / e.zc;
  return { prefill, stepNoOverhead };
}

const err = (p: number, m: number) => ((p - m) / m) * 100;

export function validateResults(
  source: string,
  text: string,
  profile: HwProfile | undefined,
  f: MachineFlags,
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
  const rows: ValidationRow[] = [];
  const skipped: string[] = [];
  const llm = results.workloads.filter((w): w is LlmEntry => w.group === "llm");
  const overheadByModel = new Map<string, number>();
  const ordered = [...llm].sort(
    (x, y) => (x.mode === "baseline" ? 0 : 1) - (y.mode === "baseline" ? 0 : 1),
  );
  for (const w of ordered) {
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
    const prompts = Object.values(w.metrics.prefill).map((p) => p.tokens);
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
    const resident =
      w.mode === "baseline"
        ? a.totalBytes
        : Math.max(0, (w.vram_limit_bytes ?? 0) - results.allowance_bytes);
    const p = predict(e, model, Math.min(resident, a.totalBytes), prompts);
    const measuredStep = 1 / w.metrics.decode.tokens_per_s;
    if (w.mode === "baseline")
      overheadByModel.set(w.model, Math.max(0, measuredStep - p.stepNoOverhead));
    const cal = overheadByModel.get(w.model);
    for (const pf of Object.values(w.metrics.prefill)) {
      const pred = p.prefill.get(pf.tokens) ?? 0;
      rows.push({
        run: w.id,
        model: w.model,
        mode: w.mode,
        fraction: w.fraction,
        metric: `prefill ${pf.tokens}`,
        measured: pf.tokens_per_s,
        predicted: pred,
        errorPct: err(pred, pf.tokens_per_s),
        calibrated: null,
        calibratedErrorPct: null,
      });
    }
    const pred = 1 / (p.stepNoOverhead + E.STEP_OVERHEAD_S);
    const calPred = cal !== undefined ? 1 / (p.stepNoOverhead + cal) : null;
    rows.push({
      run: w.id,
      model: w.model,
      mode: w.mode,
      fraction: w.fraction,
      metric: "decode",
      measured: w.metrics.decode.tokens_per_s,
      predicted: pred,
      errorPct: err(pred, w.metrics.decode.tokens_per_s),
      calibrated: calPred,
      calibratedErrorPct: calPred === null ? null : err(calPred, w.metrics.decode.tokens_per_s),
    });
  }
  const within25 = rows.filter((r) => Math.abs(r.calibratedErrorPct ?? r.errorPct) <= 25).length;
  return { schema: "spillover-plan-validation/1", source, machine, rows, skipped, within25 };
}

export function formatValidation(v: Validation): string {
  const head = ["run", "metric", "measured tok/s", "predicted", "error", "calibrated", "error"];
  const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
  const pct = (x: number | null) => (x === null ? "-" : `${x >= 0 ? "+" : ""}${x.toFixed(0)}%`);
  const cells = v.rows.map((r) => [
    r.run,
    r.metric,
    fmt(r.measured),
    fmt(r.predicted),
    pct(r.errorPct),
    r.calibrated === null ? "-" : fmt(r.calibrated),
    pct(r.calibratedErrorPct),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: readonly string[]) =>
    c
      .map((x, i) => x.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const out = [
    `predictions vs ${v.source} on ${v.machine.gpuName} (VRAM ${v.machine.vramGBs.toFixed(0)} GB/s, link ${v.machine.h2dGBs.toFixed(1)} GB/s copy, ${v.machine.zeroCopyGBs.toFixed(1)} GB/s zero-copy)`,
    "",
    line(head),
    ...cells.map(line),
    "",
    `${v.within25} of ${v.rows.length} within 25% (calibrated decode where a baseline run exists)`,
  ];
  for (const s of v.skipped) out.push(`skipped  ${s}`);
  return out.join("\n");
}

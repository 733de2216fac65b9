// A plan: every strategy's prediction for one model on one machine and workload, the winner, and
// one or two sentences on why. The JSON form (PlanJson) is a stable, versioned schema.

import type { Machine } from "../hw/machine.js";
import { kvBytesPerToken, type ModelAnalysis } from "../models/analyze.js";
import * as E from "./efficiency.js";
import {
  allStrategies,
  type Env,
  fmtGiB,
  makeEnv,
  type StrategyResult,
  type Workload,
} from "./strategies.js";

export interface PlanJson {
  readonly schema: "spillover-plan/1";
  readonly model: {
    readonly name: string;
    readonly path: string;
    readonly architecture: string;
    readonly layers: number;
    readonly params: number;
    readonly weightBytes: number;
    readonly activeBytesPerToken: number;
    readonly experts: number;
    readonly expertsUsed: number;
    readonly kvBytesPerToken: number;
    readonly bytesByRole: Readonly<Record<string, number>>;
    /** Bytes by role of each transformer block, and what one decode token reads from it. */
    readonly perLayer: readonly {
      readonly layer: number;
      readonly bytes: Readonly<Record<string, number>>;
      readonly activeBytes: number;
    }[];
  };
  /** Workload-dependent memory: the KV cache for ctx x batch, the activation estimate for one micro-batch. */
  readonly derived: {
    readonly kvBytes: number;
    readonly activationBytes: number;
    readonly microBatch: number;
    readonly usableVramBytes: number;
  };
  readonly machine: Machine;
  readonly workload: Workload;
  readonly efficiency: Readonly<Record<string, number>>;
  readonly strategies: readonly StrategyResult[];
  readonly winner: {
    readonly id: string;
    readonly name: string;
    readonly command: string;
    readonly why: string;
  } | null;
}

export function makePlan(a: ModelAnalysis, m: Machine, w: Workload, modelPath: string): PlanJson {
  const e = makeEnv(a, m, w, modelPath);
  const strategies = allStrategies(e);
  const ranked = strategies
    .filter((s) => s.feasible && s.available && s.totalSeconds !== null)
    .sort((x, y) => (x.totalSeconds ?? 0) - (y.totalSeconds ?? 0));
  const best = ranked[0];
  return {
    schema: "spillover-plan/1",
    model: {
      name: a.name,
      path: modelPath,
      architecture: a.arch.architecture,
      layers: a.arch.layers,
      params: a.params,
      weightBytes: a.totalBytes,
      activeBytesPerToken: a.activeBytesPerToken,
      experts: a.arch.experts,
      expertsUsed: a.arch.expertsUsed,
      kvBytesPerToken: kvBytesPerToken(a.arch, w.kvType),
      bytesByRole: { ...a.byRole },
      perLayer: a.layers.map((l) => ({
        layer: l.layer,
        bytes: { ...l.bytes },
        activeBytes: l.activeBytes,
      })),
    },
    derived: {
      kvBytes: e.kvTotal,
      activationBytes: e.act,
      microBatch: e.micro,
      usableVramBytes: e.usable,
    },
    machine: m,
    workload: w,
    efficiency: {
      vramAchievableOfSpec: E.VRAM_ACHIEVABLE_OF_SPEC,
      gpuDecode: E.GPU_DECODE_EFF,
      ramAchievableOfTheoretical: E.RAM_ACHIEVABLE_OF_THEORETICAL,
      cpuDecode: E.CPU_DECODE_EFF,
      gpuPrefill: E.GPU_PREFILL_EFF,
      splitSyncSeconds: E.SPLIT_SYNC_S,
      stepOverheadSeconds: E.STEP_OVERHEAD_S,
    },
    strategies,
    winner: best
      ? {
          id: best.id,
          name: best.name,
          command: best.command,
          why: explain(e, best, rival(best, ranked)),
        }
      : null,
  };
}

const TIERED = new Set(["spillover", "spillover-streaming"]);
const CPU_SIDE = new Set(["layer-split", "moe-cpu"]);

/** The best strategy of the other family (CPU offload vs tiering), else the runner-up. */
function rival(
  best: StrategyResult,
  ranked: readonly StrategyResult[],
): StrategyResult | undefined {
  const other = TIERED.has(best.id) ? CPU_SIDE : CPU_SIDE.has(best.id) ? TIERED : undefined;
  return (other && ranked.find((s) => other.has(s.id))) ?? ranked.find((s) => s !== best);
}

const gbs = (bytesPerS: number) => `${(bytesPerS / 1e9).toFixed(0)} GB/s`;
const secs = (s: number | null) =>
  s === null ? "-" : s >= 100 ? `${s.toFixed(0)} s` : `${s.toFixed(1)} s`;

function explain(e: Env, best: StrategyResult, next: StrategyResult | undefined): string {
  const w = e.w;
  const ramRaw = e.cpuBw / E.CPU_DECODE_EFF;
  if (best.id === "all-vram") {
    return `Everything fits in VRAM (${fmtGiB(best.memory.vramBytes)} of ${fmtGiB(e.m.vramBytes)}): nothing needs to leave the GPU.`;
  }
  const vs = next
    ? ` (${secs(best.totalSeconds)} vs ${secs(next.totalSeconds)} for ${next.name})`
    : "";
  const cpuSide = CPU_SIDE.has(best.id);
  const tieredNext = next !== undefined && TIERED.has(next.id);
  if (cpuSide && (tieredNext || !next)) {
    if (ramRaw > e.zc) {
      return `CPU offload wins${vs}: your RAM (${gbs(ramRaw)}) is faster than your PCIe link (${gbs(e.zc)} zero-copy) for batch-${w.batch} decode, so computing offloaded weights where they live beats moving them.`;
    }
    return `CPU offload wins${vs}: per decode step the CPU reads ${fmtGiB(best.decodeStep ? best.decodeStep.hostS * e.cpuBw : 0)} from RAM, less time than tiering needs to pull its host-resident bytes over the ${gbs(e.zc)} link.`;
  }
  if (best.id === "spillover" || best.id === "spillover-streaming") {
    const bp = best.prefillTokS ?? 0;
    const np = next?.prefillTokS ?? 0;
    const bd = best.decodeTokS ?? 0;
    const nd = next?.decodeTokS ?? 0;
    if (next && bp > np * 1.2 && w.prompt * w.batch >= w.gen) {
      return `Tiering wins${vs}: the ${w.prompt * w.batch}-token prompt dominates this workload and keeps the GPU computing every layer (${bp.toFixed(0)} vs ${np.toFixed(0)} tok/s prefill).`;
    }
    if (next && bd >= nd && e.zc > e.cpuBw) {
      return `Tiering wins${vs}: your PCIe link (${gbs(e.zc)} zero-copy) outruns CPU decode from RAM (${gbs(ramRaw)}, ${gbs(e.cpuBw)} as llama.cpp's CPU kernels read it) at batch ${w.batch}.`;
    }
    if (next?.decodeStep && best.decodeStep && bd >= nd) {
      const ms = (s: number) => `${(s * 1e3).toFixed(1)} ms`;
      return `Tiering wins${vs}: each decode step spends ${ms(best.decodeStep.hostS)} on the ${fmtGiB(best.memory.weightsHostBytes)} left in host RAM (the last blocks: spillover places by allocation order${e.a.isMoe ? "; each token reads only its routed experts" : ""}), against ${ms(next.decodeStep.hostS + next.decodeStep.syncS)} of CPU work for ${next.name}.`;
    }
    return `Tiering wins${vs}: it keeps all compute on the GPU and only the ${fmtGiB(best.memory.weightsHostBytes)} that do not fit cross the link.`;
  }
  return `${best.name} is fastest for this workload${vs}.`;
}

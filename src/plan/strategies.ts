// The strategies `spillover plan` compares, as pure functions of (model analysis, machine,
// workload): all in VRAM, spillover tiered (zero-copy, and with the streaming engine), llama.cpp
// layer split (-ngl), and MoE experts on the CPU (--n-cpu-moe / -ot exps=CPU). Each returns its
// predicted prefill and decode speed, memory per tier and the exact flags.

import type { Machine } from "../hw/machine.js";
import {
  activationBytes,
  attentionFlopsPerToken,
  kvBytesPerTokenByLayer,
  type ModelAnalysis,
} from "../models/analyze.js";
import type { KvType } from "../models/ggml-types.js";
import * as E from "./efficiency.js";
import { mmqZeroCopyFactor, zeroCopyGemmFactor } from "./zero-copy.js";

export interface Workload {
  readonly prompt: number;
  readonly gen: number;
  readonly batch: number;
  readonly ctx: number;
  readonly kvType: KvType;
  /** Tokens per forward pass during prefill (llama.cpp -ub, default 512). */
  readonly ubatch: number;
  /** Evaluate this placement instead of the largest that fits (llama.cpp -ngl / --n-cpu-moe). */
  readonly ngl?: number;
  readonly nCpuMoe?: number;
}

export type StrategyId =
  | "all-vram"
  | "spillover"
  | "spillover-streaming"
  | "layer-split"
  | "moe-cpu";

export interface StrategyResult {
  readonly id: StrategyId;
  readonly name: string;
  readonly feasible: boolean;
  /** False for strategies spillover does not ship yet (shown, never named the winner). */
  readonly available: boolean;
  /** Why it cannot run (when not feasible), or why it is not needed. */
  readonly whyNot: string | null;
  readonly prefillTokS: number | null;
  /** Generated tokens per second over the whole batch. */
  readonly decodeTokS: number | null;
  /** Prompt processing plus generation for the whole workload. */
  readonly totalSeconds: number | null;
  readonly memory: {
    readonly vramBytes: number;
    readonly hostBytes: number;
    readonly weightsVramBytes: number;
    readonly weightsHostBytes: number;
  };
  /** Per decode step: seconds spent on VRAM-resident bytes, on bytes across the link or in RAM, on hand-offs. */
  readonly decodeStep: {
    readonly gpuS: number;
    readonly hostS: number;
    readonly syncS: number;
  } | null;
  readonly command: string;
  readonly notes: readonly string[];
}

/** Numbers every strategy shares. */
export interface Env {
  readonly a: ModelAnalysis;
  readonly m: Machine;
  readonly w: Workload;
  readonly modelPath: string;
  readonly kvLayer: readonly number[];
  readonly kvTotal: number;
  readonly kvReadPerStep: number;
  readonly micro: number;
  readonly act: number;
  readonly usable: number;
  readonly gpuBw: number;
  readonly gpuReadBw: number;
  readonly cpuBw: number;
  readonly gpuFlops: number;
  readonly cpuFlops: number;
  readonly h2d: number;
  readonly zc: number;
  readonly hostRamLimit: number | null;
}

const GB = 1e9;

export function makeEnv(a: ModelAnalysis, m: Machine, w: Workload, modelPath: string): Env {
  const kvLayerPerTok = kvBytesPerTokenByLayer(a.arch, w.kvType);
  const kvLayer = kvLayerPerTok.map((x) => x * w.ctx * w.batch);
  const kvPerTok = kvLayerPerTok.reduce((s, x) => s + x, 0);
  const micro = Math.max(1, Math.min(w.ubatch, w.prompt * w.batch));
  const act = activationBytes(a.arch, micro);
  const vramAch = m.vramSource === "measured" ? m.vramGBs : m.vramGBs * E.VRAM_ACHIEVABLE_OF_SPEC;
  const ramAch =
    m.ramSource === "theoretical" ? m.ramGBs * E.RAM_ACHIEVABLE_OF_THEORETICAL : m.ramGBs;
  return {
    a,
    m,
    w,
    modelPath,
    kvLayer,
    kvTotal: kvLayer.reduce((s, x) => s + x, 0),
    kvReadPerStep: kvPerTok * (w.prompt + w.gen / 2) * w.batch,
    micro,
    act,
    usable: m.vramBytes - E.VRAM_OVERHEAD_BYTES - act,
    gpuBw: vramAch * E.GPU_DECODE_EFF * GB,
    gpuReadBw: vramAch * GB,
    cpuBw: ramAch * E.CPU_DECODE_EFF * GB,
    gpuFlops: m.fp16Tflops * 1e12 * E.GPU_PREFILL_EFF,
    cpuFlops: m.cpuThreads * E.CPU_GFLOPS_PER_THREAD * 1e9,
    h2d: m.h2dGBs * GB,
    zc: m.zeroCopyGBs * GB,
    // The interposer never pins more than MemTotal minus max(4 GiB, 10%) (docs/architecture.md, invariant 3).
    hostRamLimit:
      m.hostRamBytes === null ? null : m.hostRamBytes - Math.max(4 * 2 ** 30, 0.1 * m.hostRamBytes),
  };
}

/** Fraction of a layer's routed experts that `tokens` tokens touch (uniform routing). */
export function touched(a: ModelAnalysis, tokens: number): number {
  const { experts, expertsUsed } = a.arch;
  if (experts <= 0) return 1;
  return 1 - (1 - Math.min(1, expertsUsed / experts)) ** tokens;
}

/** Weight bytes read by a forward pass of `tokens` tokens (routed experts by touched fraction). */
function weightsTouched(e: Env, tokens: number): number {
  const a = e.a;
  const embRows =
    a.arch.vocab > 0 ? (a.embeddingBytes / a.arch.vocab) * Math.min(tokens, a.arch.vocab) : 0;
  const nonExpert =
    a.totalBytes - a.byRole.experts - a.embeddingBytes + (a.tiedOutput ? a.embeddingBytes : 0);
  return nonExpert + a.byRole.experts * touched(a, tokens) + embRows;
}

function flopsForTokens(e: Env, tokens: number, avgCtx: number): number {
  return tokens * (e.a.flopsPerToken + attentionFlopsPerToken(e.a.arch, avgCtx));
}

/** GPU time for a prefill micro-batch if every byte it touches were in VRAM. */
function gpuMicroTime(e: Env, bytesTouched: number): number {
  return Math.max(
    bytesTouched / e.gpuReadBw,
    flopsForTokens(e, e.micro, e.w.prompt / 2) / e.gpuFlops,
  );
}

function finish(
  e: Env,
  base: Base,
  microS: number,
  step: { gpuS: number; hostS: number; syncS: number },
): StrategyResult {
  const w = e.w;
  const promptTokens = w.prompt * w.batch;
  const prefillS = (promptTokens / e.micro) * microS;
  const stepS = step.gpuS + step.hostS + step.syncS + E.STEP_OVERHEAD_S;
  return {
    available: true,
    ...base,
    feasible: true,
    whyNot: null,
    prefillTokS: promptTokens / prefillS,
    decodeTokS: w.batch / stepS,
    totalSeconds: prefillS + w.gen * stepS,
    decodeStep: step,
  };
}

type Base = Omit<
  StrategyResult,
  "prefillTokS" | "decodeTokS" | "totalSeconds" | "decodeStep" | "feasible" | "whyNot" | "available"
> & {
  readonly available?: boolean;
};

function infeasible(base: Base, why: string): StrategyResult {
  return {
    available: true,
    ...base,
    feasible: false,
    whyNot: why,
    prefillTokS: null,
    decodeTokS: null,
    totalSeconds: null,
    decodeStep: null,
  };
}

const GiB = 2 ** 30;
export const fmtGiB = (b: number) => `${(b / GiB).toFixed(1)} GiB`;

const isGguf = (e: Env) => /\.gguf$/i.test(e.modelPath);

/** llama.cpp runs GGUF files: another format is converted first (llama.cpp's own script). */
function llamaServer(e: Env): string {
  if (isGguf(e)) return `llama-server -m ${e.modelPath}`;
  const dir = /\.(safetensors|json)$/i.test(e.modelPath)
    ? e.modelPath.replace(/\/[^/]*$/, "") || "."
    : e.modelPath;
  return `python3 convert_hf_to_gguf.py ${dir} --outfile MODEL.gguf && llama-server -m MODEL.gguf`;
}

function llamaFlags(e: Env): string {
  const kv = e.w.kvType === "f16" ? "" : ` -ctk ${e.w.kvType} -ctv ${e.w.kvType}`;
  const ub = e.w.ubatch === 512 ? "" : ` -ub ${e.w.ubatch}`;
  const np = e.w.batch > 1 ? ` -np ${e.w.batch}` : "";
  return `-c ${e.w.ctx * e.w.batch}${np} -fa on${kv}${ub}`;
}

/** Decode time for a step that reads `gpuBytes` from VRAM: bandwidth or compute, whichever binds. */
function gpuStep(e: Env, gpuBytes: number, gpuShareOfFlops: number): number {
  return Math.max(
    gpuBytes / e.gpuBw,
    (e.w.batch * e.a.flopsPerToken * gpuShareOfFlops) / e.gpuFlops,
  );
}

export function allVram(e: Env): StrategyResult {
  const a = e.a;
  const need = a.totalBytes + e.kvTotal;
  const base = {
    id: "all-vram" as const,
    name: "all in VRAM",
    memory: {
      vramBytes: need + e.act + E.VRAM_OVERHEAD_BYTES,
      hostBytes: 0,
      weightsVramBytes: a.totalBytes,
      weightsHostBytes: 0,
    },
    command: `${llamaServer(e)} -ngl 999 ${llamaFlags(e)}`,
    notes: [],
  };
  if (need > e.usable) {
    return infeasible(
      base,
      `needs ${fmtGiB(need + e.act + E.VRAM_OVERHEAD_BYTES)} of VRAM, the GPU has ${fmtGiB(e.m.vramBytes)}`,
    );
  }
  const stepBytes = weightsTouched(e, e.w.batch) + e.kvReadPerStep;
  return finish(e, base, gpuMicroTime(e, weightsTouched(e, e.micro)), {
    gpuS: gpuStep(e, stepBytes, 1),
    hostS: 0,
    syncS: 0,
  });
}

/** Which weight bytes spillover leaves in host RAM when `hostBytes` must go there, by the
 * interposer's rules (docs/interposer.md, "Placement"): every large allocation is movable, and a
 * fresh one evicts the least used, least recently used, then oldest pages first; weights, each
 * read once per forward, never trade places with each other afterwards. Programs allocate weights
 * in model order, so the host bytes are the head of it: the embeddings first (untied: one row
 * read per token), then the first blocks (each block's routed experts and the rest in proportion),
 * then the output head. */
function hostSplit(e: Env, hostBytes: number) {
  const a = e.a;
  let left = Math.max(0, hostBytes);
  const emb = a.tiedOutput ? 0 : Math.min(left, a.embeddingBytes);
  left -= emb;
  let experts = 0;
  let dense = 0;
  for (let i = 0; i < a.layers.length && left > 0; i++) {
    const l = a.layers[i];
    if (!l || l.total <= 0) continue;
    const take = Math.min(left, l.total);
    experts += take * (l.expertBytes / l.total);
    dense += take * (1 - l.expertBytes / l.total);
    left -= take;
  }
  // A tied head is the embedding matrix, read whole every token.
  dense += Math.min(left, a.globalOtherBytes + (a.tiedOutput ? a.embeddingBytes : a.outputBytes));
  return { emb, experts, dense };
}

function hostBytesRead(e: Env, s: ReturnType<typeof hostSplit>, tokens: number): number {
  const a = e.a;
  const rowFrac = a.arch.vocab > 0 && a.embeddingBytes > 0 ? Math.min(1, tokens / a.arch.vocab) : 0;
  return s.emb * rowFrac + s.experts * touched(a, tokens) + s.dense;
}

function tieredBase(e: Env, id: "spillover" | "spillover-streaming", staging: number) {
  const a = e.a;
  const resident = Math.max(0, Math.min(a.totalBytes, e.usable - e.kvTotal - staging));
  const host = a.totalBytes - resident;
  const reserve = Math.ceil((e.kvTotal + e.act + staging) / GiB) + 1;
  return {
    resident,
    host,
    base: {
      id,
      name: id === "spillover" ? "spillover tiered (zero-copy)" : "spillover tiered + streaming",
      memory: {
        vramBytes: resident + e.kvTotal + e.act + staging + E.VRAM_OVERHEAD_BYTES,
        hostBytes: host,
        weightsVramBytes: resident,
        weightsHostBytes: host,
      },
      command: `SPILLOVER_VRAM_RESERVE=${reserve}G spillover run -- ${llamaServer(e)} -ngl 999 ${llamaFlags(e)}`,
      notes: [] as string[],
      available: id === "spillover",
    },
  };
}

function tieredCheck(e: Env, resident: number, host: number): string | null {
  if (e.usable - e.kvTotal <= 0)
    return `the KV cache and activations alone (${fmtGiB(e.kvTotal + e.act)}) do not fit in VRAM`;
  if (e.hostRamLimit !== null && host > e.hostRamLimit) {
    return `needs ${fmtGiB(host)} of pinned host RAM, more than the ${fmtGiB(e.hostRamLimit)} spillover may pin here`;
  }
  return resident < 0 ? "no room for weights in VRAM" : null;
}

/** Weights stored below 16 bits per weight: llama.cpp multiplies them with its own quantized
 * kernels (MMQ); f16/bf16/f32 weights (and the HF programs --validate reads) go through cuBLAS. */
function quantized(a: ModelAnalysis): boolean {
  return a.params > 0 && (a.totalBytes * 8) / a.params < 16;
}

/** How many times a prefill micro-batch reads each host-resident weight byte across the link:
 * quantized weights once per MMQ token tile (routed experts per tile of the tokens routed to them,
 * uniform routing); others by the cuBLAS zero-copy curve (zero-copy.ts). Embedding rows are read
 * once either way for quantized models. */
function prefillRereads(e: Env): { dense: number; experts: number } {
  if (!quantized(e.a)) {
    const f = zeroCopyGemmFactor(e.micro);
    return { dense: f, experts: f };
  }
  const { experts, expertsUsed } = e.a.arch;
  const perExpert = experts > 0 ? (e.micro * Math.min(expertsUsed, experts)) / experts : e.micro;
  return { dense: mmqZeroCopyFactor(e.micro), experts: mmqZeroCopyFactor(perExpert) };
}

export function spilloverZeroCopy(e: Env): StrategyResult {
  const { resident, host, base } = tieredBase(e, "spillover", 0);
  const bad = tieredCheck(e, resident, host);
  if (bad) return infeasible(base, bad);
  const split = hostSplit(e, host);
  const stepHost = hostBytesRead(e, split, e.w.batch);
  const stepRes = weightsTouched(e, e.w.batch) - stepHost + e.kvReadPerStep;
  const microHost = hostBytesRead(e, split, e.micro);
  const microRes = weightsTouched(e, e.micro) - microHost;
  const rr = prefillRereads(e);
  const microHostRead = quantized(e.a)
    ? hostBytesRead(e, { ...split, experts: 0, dense: 0 }, e.micro) +
      split.experts * touched(e.a, e.micro) * rr.experts +
      split.dense * rr.dense
    : microHost * rr.dense;
  const microS = gpuMicroTime(e, microRes) + microHostRead / e.zc;
  if (host > 0) {
    base.notes.push(
      `${fmtGiB(host)} of weights in pinned host RAM read zero-copy at ${e.m.zeroCopyGBs.toFixed(1)} GB/s; prefill GEMMs of ${e.micro} tokens re-read them ${rr.dense.toFixed(1)}x${e.a.isMoe ? ` (routed experts ${rr.experts.toFixed(1)}x)` : ""}`,
    );
  } else base.notes.push("everything fits: spillover changes nothing");
  return finish(e, base, microS, {
    gpuS: gpuStep(e, stepRes, 1),
    hostS: stepHost / e.zc,
    syncS: 0,
  });
}

export function spilloverStreaming(e: Env): StrategyResult {
  // Staging ring: two of the largest layers, so one is copied while the other computes.
  const maxLayer = Math.max(0, ...e.a.layers.map((l) => l.total - l.expertBytes));
  const { resident, host, base } = tieredBase(e, "spillover-streaming", 2 * maxLayer);
  const bad = tieredCheck(e, resident, host);
  base.notes.push(
    "streaming engine: built and on by default (SPILLOVER_STREAM); this is its copy bound, and the H200 runs reached 0.5-0.6 of it, so it is shown and never named the winner",
  );
  if (bad) return infeasible(base, bad);
  const split = hostSplit(e, host);
  // Dense host bytes are copied ahead of use at copy-engine speed, overlapped with compute; routed
  // experts stay zero-copy (only the chosen ones are read).
  const stepLink = split.dense / e.h2d + (hostBytesRead(e, split, e.w.batch) - split.dense) / e.zc;
  const stepRes =
    weightsTouched(e, e.w.batch) - hostBytesRead(e, split, e.w.batch) + e.kvReadPerStep;
  const gpuS = gpuStep(e, stepRes, 1);
  const microHost =
    split.dense +
    split.experts * touched(e.a, e.micro) +
    split.emb * Math.min(1, e.micro / Math.max(1, e.a.arch.vocab));
  const microS = Math.max(microHost / e.h2d, gpuMicroTime(e, weightsTouched(e, e.micro)));
  // Overlapped: the step takes the longer of the two; report the excess as host time.
  return finish(e, base, microS, { gpuS, hostS: Math.max(0, stepLink - gpuS), syncS: 0 });
}

export function layerSplit(e: Env): StrategyResult {
  const a = e.a;
  const L = a.arch.layers;
  const unit = (i: number) =>
    i < L ? (a.layers[i]?.total ?? 0) + (e.kvLayer[i] ?? 0) : a.outputBytes + a.globalOtherBytes;
  // llama.cpp offloads the last N blocks; N = L + 1 also takes the output head. Embeddings stay on the CPU.
  let ngl = 0;
  let gpuBytes = 0;
  const forced = e.w.ngl !== undefined ? Math.min(e.w.ngl, L + 1) : undefined;
  for (let n = 1; n <= (forced ?? L + 1); n++) {
    const i = n <= L ? L - n : L;
    const next = gpuBytes + unit(i);
    if (forced === undefined && next > e.usable) break;
    gpuBytes = next;
    ngl = n;
  }
  const onGpu = (i: number) => (i < L ? i >= L - Math.min(ngl, L) : ngl === L + 1);
  let gpuActive = 0;
  let cpuActive = a.arch.vocab > 0 ? (a.embeddingBytes / a.arch.vocab) * e.w.batch : 0;
  let cpuAll = 0;
  let gpuWeights = 0;
  let cpuKv = 0;
  let cpuFlopShare = 0;
  const totalActiveParams = a.activeParamsPerToken || 1;
  for (let i = 0; i <= L; i++) {
    const l = a.layers[i];
    const stepBytes =
      i < L && l
        ? l.total - l.expertBytes + l.expertBytes * touched(a, e.w.batch)
        : a.outputBytes + a.globalOtherBytes;
    const all = i < L && l ? l.total : a.outputBytes + a.globalOtherBytes;
    const kvRead =
      i < L
        ? ((e.kvLayer[i] ?? 0) / (e.w.ctx * e.w.batch)) * (e.w.prompt + e.w.gen / 2) * e.w.batch
        : 0;
    if (onGpu(i)) {
      gpuActive += stepBytes + kvRead;
      gpuWeights += all;
    } else {
      cpuActive += stepBytes + kvRead;
      cpuAll += all;
      cpuKv += i < L ? (e.kvLayer[i] ?? 0) : 0;
      cpuFlopShare += i < L && l ? l.activeParams / totalActiveParams : 0;
    }
  }
  // Hand-offs between backends in one step: embeddings(CPU) -> blocks -> output.
  const seq = [false, ...Array.from({ length: L + 1 }, (_, i) => onGpu(i))];
  let handoffs = 0;
  for (let i = 1; i < seq.length; i++) if (seq[i] !== seq[i - 1]) handoffs++;
  const cpuS = Math.max(
    cpuActive / e.cpuBw,
    (e.w.batch * a.flopsPerToken * cpuFlopShare) / e.cpuFlops,
  );
  const gpuS = gpuStep(e, gpuActive, 1 - cpuFlopShare);
  let microS: number;
  if (e.micro >= E.LLAMA_CPP_OFFLOAD_MIN_BATCH) {
    // llama.cpp copies each CPU-resident weight to the GPU for the op, then computes there.
    microS = gpuMicroTime(e, weightsTouched(e, e.micro)) + (cpuAll * (cpuAll > 0 ? 1 : 0)) / e.h2d;
  } else {
    microS =
      gpuMicroTime(e, gpuWeights) +
      Math.max(
        cpuAll / e.cpuBw,
        (flopsForTokens(e, e.micro, e.w.prompt / 2) * cpuFlopShare) / e.cpuFlops,
      );
  }
  const hostBytes = cpuAll + a.embeddingBytes + cpuKv;
  const base = {
    id: "layer-split" as const,
    name: `llama.cpp layer split (-ngl ${ngl})`,
    memory: {
      vramBytes: gpuBytes + e.act + E.VRAM_OVERHEAD_BYTES,
      hostBytes,
      weightsVramBytes: gpuWeights,
      weightsHostBytes: cpuAll + a.embeddingBytes,
    },
    command: `${llamaServer(e)} -ngl ${ngl} ${llamaFlags(e)}`,
    notes: [
      `${ngl} of ${L + 1} layers on the GPU; ${fmtGiB(cpuAll)} of blocks computed by the CPU from RAM`,
    ],
  };
  if (e.hostRamLimit !== null && hostBytes > e.hostRamLimit + 4 * GiB) {
    return infeasible(base, `needs ${fmtGiB(hostBytes)} of host RAM`);
  }
  return finish(e, base, microS, { gpuS, hostS: cpuS, syncS: handoffs * E.SPLIT_SYNC_S });
}

export function moeCpu(e: Env): StrategyResult {
  const a = e.a;
  const L = a.arch.layers;
  const base0 = {
    id: "moe-cpu" as const,
    name: "MoE experts on CPU",
    memory: { vramBytes: 0, hostBytes: 0, weightsVramBytes: 0, weightsHostBytes: 0 },
    command: "",
    notes: [] as string[],
  };
  if (!a.isMoe) return infeasible(base0, "not a mixture-of-experts model");
  const gpuAll =
    a.totalBytes - a.embeddingBytes + (a.tiedOutput ? a.embeddingBytes : 0) + e.kvTotal;
  let n = -1;
  let cpuExperts = 0;
  for (let k = 0; k <= L; k++) {
    if (
      e.w.nCpuMoe !== undefined ? k === Math.min(e.w.nCpuMoe, L) : gpuAll - cpuExperts <= e.usable
    ) {
      n = k;
      break;
    }
    cpuExperts += a.layers[k]?.expertBytes ?? 0;
  }
  if (n < 0) {
    return infeasible(
      base0,
      `attention, shared weights and KV alone (${fmtGiB(gpuAll - a.byRole.experts)}) exceed VRAM; combine with -ngl`,
    );
  }
  const flag = n === L ? "-ot exps=CPU" : `--n-cpu-moe ${n}`;
  const gpuWeights = gpuAll - e.kvTotal - cpuExperts;
  const base = {
    ...base0,
    name: `MoE experts on CPU (${flag})`,
    memory: {
      vramBytes: gpuAll - cpuExperts + e.act + E.VRAM_OVERHEAD_BYTES,
      hostBytes: cpuExperts + a.embeddingBytes,
      weightsVramBytes: gpuWeights,
      weightsHostBytes: cpuExperts + a.embeddingBytes,
    },
    command: `${llamaServer(e)} -ngl 999 ${flag} ${llamaFlags(e)}`,
    notes: [
      `routed experts of ${n} of ${L} layers (${fmtGiB(cpuExperts)}) in RAM, computed by the CPU`,
    ],
  };
  if (n === 0) return infeasible(base, "everything fits in VRAM: no experts need to move");
  const frac = touched(a, e.w.batch);
  const cpuActive = cpuExperts * frac;
  const cpuParams = a.layers.slice(0, n).reduce((s, l) => s + l.activeExpertParams, 0);
  const cpuShare = cpuParams / (a.activeParamsPerToken || 1);
  const stepAll = weightsTouched(e, e.w.batch) + e.kvReadPerStep;
  const gpuS = gpuStep(e, stepAll - cpuActive, 1 - cpuShare);
  const cpuS = Math.max(cpuActive / e.cpuBw, (e.w.batch * a.flopsPerToken * cpuShare) / e.cpuFlops);
  let microS: number;
  if (e.micro >= E.LLAMA_CPP_OFFLOAD_MIN_BATCH) {
    microS = gpuMicroTime(e, weightsTouched(e, e.micro)) + cpuExperts / e.h2d;
  } else {
    const microCpu = cpuExperts * touched(a, e.micro);
    microS =
      gpuMicroTime(e, weightsTouched(e, e.micro) - microCpu) +
      Math.max(
        microCpu / e.cpuBw,
        (flopsForTokens(e, e.micro, e.w.prompt / 2) * cpuShare) / e.cpuFlops,
      );
  }
  return finish(e, base, microS, { gpuS, hostS: cpuS, syncS: 2 * n * E.SPLIT_SYNC_S });
}

export function allStrategies(e: Env): StrategyResult[] {
  return [allVram(e), spilloverZeroCopy(e), spilloverStreaming(e), layerSplit(e), moeCpu(e)];
}

// What `spillover plan` says about a model when it has no machine to predict for (no hardware
// profile, no --gpu / --vram flags): what the model needs for the workload, which strategies exist,
// and how to get speed predictions. Pure: analysis and workload in, text or JSON out.

import { activationBytes, kvBytesPerToken, type ModelAnalysis } from "../../models/analyze.js";
import { type ModelFormat, TENSOR_ROLES } from "../../models/types.js";
import type { Workload } from "../../plan/strategies.js";
import { formatBytes } from "../../util/size.js";

export const HOW_TO_PREDICT =
  "speed: no hardware profile here; run `spillover bench hw` on the GPU machine for measured predictions, or plan for a table GPU with --gpu NAME (e.g. --gpu 4090; --vram SIZE --vram-bw GB/s for others)";

export interface NeedsJson {
  readonly schema: "spillover-needs/1";
  readonly model: {
    readonly name: string;
    readonly path: string;
    readonly architecture: string;
    readonly layers: number;
    readonly params: number;
    readonly weightBytes: number;
    readonly bytesByRole: Readonly<Record<string, number>>;
    readonly activeBytesPerToken: number;
    readonly experts: number;
    readonly expertsUsed: number;
    readonly kvBytesPerToken: number;
  };
  readonly workload: Workload;
  readonly kvBytes: number;
  readonly activationBytes: number;
  readonly microBatch: number;
  /** Weights + KV + activations: what all-in-VRAM needs, before the runtime's own overhead. */
  readonly totalBytes: number;
  readonly strategies: readonly { readonly name: string; readonly what: string }[];
  readonly notes: readonly string[];
  readonly hint: string;
}

/** The directory llama.cpp's converter takes, from the path the user gave. */
function modelDir(path: string): string {
  return /\.(safetensors|json)$/i.test(path) ? path.replace(/\/[^/]*$/, "") || "." : path;
}

export function modelNeeds(
  a: ModelAnalysis,
  w: Workload,
  path: string,
  format: ModelFormat,
  readerNotes: readonly string[],
): NeedsJson {
  const convert = `python3 convert_hf_to_gguf.py ${modelDir(path)} --outfile MODEL.gguf`;
  const notes =
    format === "gguf"
      ? readerNotes
      : [
          ...readerNotes,
          format === "safetensors"
            ? `llama.cpp runs GGUF files: convert this safetensors model first (${convert})`
            : `only the architecture is here: llama.cpp needs the weights as GGUF (download a GGUF, or download the safetensors and run ${convert})`,
        ];
  const micro = Math.max(1, Math.min(w.ubatch, w.prompt * w.batch));
  const kvPerTok = kvBytesPerToken(a.arch, w.kvType);
  const kv = kvPerTok * w.ctx * w.batch;
  const act = activationBytes(a.arch, micro);
  const strategies = [
    { name: "all in VRAM", what: "weights, KV cache and activations on the card" },
    {
      name: "spillover",
      what: "what does not fit stays in pinned host RAM behind the same device pointers, read over the link",
    },
    { name: "layer split", what: "llama.cpp -ngl: the last layers run on the CPU from host RAM" },
    ...(a.isMoe
      ? [
          {
            name: "MoE experts on CPU",
            what: "llama.cpp --n-cpu-moe: routed experts stay in host RAM",
          },
        ]
      : []),
    {
      name: "spillover streaming",
      what: "prefill and other re-reading kernels read VRAM copies staged ahead (on by default; half its copy bound so far)",
    },
  ];
  return {
    schema: "spillover-needs/1",
    model: {
      name: a.name,
      path,
      architecture: a.arch.architecture,
      layers: a.arch.layers,
      params: a.params,
      weightBytes: a.totalBytes,
      bytesByRole: { ...a.byRole },
      activeBytesPerToken: a.activeBytesPerToken,
      experts: a.arch.experts,
      expertsUsed: a.arch.expertsUsed,
      kvBytesPerToken: kvPerTok,
    },
    workload: w,
    kvBytes: kv,
    activationBytes: act,
    microBatch: micro,
    totalBytes: a.totalBytes + kv + act,
    strategies,
    notes,
    hint: HOW_TO_PREDICT,
  };
}

const size = formatBytes;
const count = (n: number) =>
  n >= 1e9 ? `${(n / 1e9).toFixed(2)}B` : n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : String(n);

export function formatNeeds(n: NeedsJson): string {
  const m = n.model;
  const w = n.workload;
  const moe = m.experts > 0 ? `, MoE ${m.expertsUsed}/${m.experts} experts` : "";
  const roles = TENSOR_ROLES.filter((r) => (m.bytesByRole[r] ?? 0) > 0)
    .map((r) => `${r} ${size(m.bytesByRole[r] ?? 0)}`)
    .join(", ");
  const lines = [
    ...n.notes.map((t) => `note     ${t}`),
    `model    ${m.name} (${m.architecture}, ${m.layers} layers${moe}): ${size(m.weightBytes)} of weights, ${count(m.params)} parameters`,
    `roles    ${roles}`,
    `token    one decode step reads ${size(m.activeBytesPerToken)} of weights; KV cache ${size(m.kvBytesPerToken)} per token (${w.kvType})`,
    `workload prompt ${w.prompt}, generate ${w.gen}, batch ${w.batch}, context ${w.ctx}: KV cache ${size(n.kvBytes)}, activations ~${size(n.activationBytes)} (micro-batch ${n.microBatch})`,
    `needs    ${size(n.totalBytes)} for weights + KV + activations (all in VRAM needs this plus the runtime's own)`,
    "",
    "strategies",
    ...n.strategies.map((s) => `  ${s.name.padEnd(20)} ${s.what}`),
    "",
    n.hint,
  ];
  return lines.join("\n");
}

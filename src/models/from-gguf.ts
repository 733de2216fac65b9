// GGUF header(s) -> ModelDescription: architecture numbers from `<arch>.*` metadata, tensor roles
// from llama.cpp's tensor names.

import type { GgufArray, GgufFile, GgufValue } from "./gguf.js";
import { classifyGguf } from "./roles.js";
import { modelError } from "./source.js";
import type { ModelArch, ModelDescription, TensorEntry } from "./types.js";

/** Transformer architectures (attention KV cache per layer). SSM/RWKV/encoder models are refused:
 * their memory does not follow the KV-per-token model the planner uses. */
export const GGUF_ARCHITECTURES = [
  "llama",
  "llama4",
  "mistral3",
  "qwen2",
  "qwen3",
  "qwen2moe",
  "qwen3moe",
  "gemma",
  "gemma2",
  "gemma3",
  "phi2",
  "phi3",
  "phimoe",
  "deepseek",
  "deepseek2",
  "gpt-oss",
  "command-r",
  "cohere2",
  "olmo",
  "olmo2",
  "olmoe",
  "granite",
  "granitemoe",
  "starcoder2",
  "falcon",
  "glm4",
  "glm4moe",
  "exaone",
  "internlm2",
  "stablelm",
  "minicpm",
  "dbrx",
  "arctic",
  "baichuan",
  "orion",
  "gpt2",
  "ernie4_5",
  "ernie4_5-moe",
  "hunyuan-moe",
  "smollm3",
  "seed_oss",
  "apertus",
  "dots1",
  "bailingmoe",
  "bailingmoe2",
  "grok",
] as const;

function num(v: GgufValue | undefined): number | undefined {
  if (typeof v === "number") return v;
  if (typeof v === "bigint" && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
  return undefined;
}

function perLayer(v: GgufValue | undefined, layers: number): number[] | undefined {
  const n = num(v);
  if (n !== undefined) return Array.from({ length: layers }, () => n);
  if (typeof v === "object" && (v as GgufArray).kind === "array") {
    const vals = (v as GgufArray).values?.map(num);
    if (vals && vals.length === layers && vals.every((x) => x !== undefined))
      return vals as number[];
  }
  return undefined;
}

export function describeGguf(files: readonly GgufFile[], displayPath: string): ModelDescription {
  const first = files[0];
  if (!first) throw modelError(displayPath, "no GGUF parts");
  const md = first.metadata;
  const archRaw = md.get("general.architecture");
  if (typeof archRaw !== "string")
    throw modelError(first.path, "missing general.architecture in the GGUF metadata");
  if (!(GGUF_ARCHITECTURES as readonly string[]).includes(archRaw)) {
    throw modelError(
      first.path,
      `unsupported architecture "${archRaw}" (spillover plans transformer models such as llama, qwen3moe, gpt-oss, deepseek2)`,
    );
  }
  const key = (k: string) => md.get(`${archRaw}.${k}`);
  const need = (k: string): number => {
    const v = num(key(k));
    if (v === undefined || v <= 0)
      throw modelError(first.path, `missing or invalid ${archRaw}.${k} in the GGUF metadata`);
    return v;
  };
  const layers = need("block_count");
  const hidden = need("embedding_length");
  const headsArr = perLayer(key("attention.head_count"), layers);
  const heads = headsArr ? Math.max(...headsArr) : undefined;
  if (!heads)
    throw modelError(
      first.path,
      `missing or invalid ${archRaw}.attention.head_count in the GGUF metadata`,
    );
  const kvHeads =
    perLayer(key("attention.head_count_kv"), layers) ?? Array.from({ length: layers }, () => heads);

  const tensors: TensorEntry[] = [];
  for (const f of files) {
    for (const t of f.tensors) {
      const c = classifyGguf(t.name);
      if (c.layer !== null && c.layer >= layers) {
        throw modelError(
          f.path,
          `corrupt: tensor ${t.name} names block ${c.layer} but the model has ${layers}`,
        );
      }
      tensors.push({
        name: t.name,
        layer: c.layer,
        role: c.role,
        elements: t.elements,
        bytes: t.bytes,
        dtype: t.typeName,
      });
    }
  }
  const embd = files.flatMap((f) => f.tensors).find((t) => t.name === "token_embd.weight");
  const tok = md.get("tokenizer.ggml.tokens");
  const vocab =
    num(key("vocab_size")) ??
    embd?.shape[1] ??
    (typeof tok === "object" && (tok as GgufArray).kind === "array"
      ? (tok as GgufArray).length
      : 0);
  const experts = num(key("expert_count")) ?? 0;
  const kvLoraRank = num(key("attention.kv_lora_rank"));
  const ropeDim = num(key("rope.dimension_count"));
  const ctx = num(key("context_length"));
  const arch: ModelArch = {
    architecture: archRaw,
    layers,
    hidden,
    heads,
    kvHeads,
    headDim: num(key("attention.key_length")) ?? Math.floor(hidden / heads),
    vocab,
    ffnHidden: num(key("feed_forward_length")) ?? 0,
    experts,
    expertsUsed: experts > 0 ? (num(key("expert_used_count")) ?? 1) : 0,
    expertFfnHidden: num(key("expert_feed_forward_length")) ?? 0,
    ...(kvLoraRank !== undefined ? { kvLoraRank } : {}),
    ...(kvLoraRank !== undefined && ropeDim !== undefined ? { ropeDim } : {}),
    ...(ctx !== undefined ? { contextLength: ctx } : {}),
  };
  const nameRaw = md.get("general.name");
  return {
    name: typeof nameRaw === "string" && nameRaw ? nameRaw : displayPath,
    path: displayPath,
    format: "gguf",
    arch,
    tensors,
  };
}

// Hugging Face config.json: the architecture numbers for safetensors models, and, for a config with
// no weights (the bench suite's random-init models), the tensor list computed from the architecture
// and a dtype.

import { z } from "zod";
import { modelError } from "./source.js";
import type { ModelArch, TensorEntry, TensorRole } from "./types.js";

const int = z.number().int().nonnegative();
export const hfConfigSchema = z.looseObject({
  model_type: z.string(),
  hidden_size: int.min(1),
  num_hidden_layers: int.min(1).max(10_000),
  num_attention_heads: int.min(1),
  num_key_value_heads: int.min(1).optional(),
  head_dim: int.min(1).nullish(),
  intermediate_size: int.optional(),
  vocab_size: int.min(1),
  tie_word_embeddings: z.boolean().optional(),
  torch_dtype: z.string().nullish(),
  dtype: z.string().nullish(),
  max_position_embeddings: int.optional(),
  // MoE (Mixtral: num_local_experts; Qwen-MoE: num_experts, moe_intermediate_size, shared_expert_*).
  num_local_experts: int.optional(),
  num_experts: int.nullish(),
  num_experts_per_tok: int.nullish(),
  moe_intermediate_size: int.nullish(),
  shared_expert_intermediate_size: int.nullish(),
  decoder_sparse_step: int.nullish(),
  mlp_only_layers: z.array(int).nullish(),
});
export type HfConfig = z.infer<typeof hfConfigSchema>;

/** Model types whose layers are plain attention + (dense or MoE) SwiGLU FFN. */
export const HF_MODEL_TYPES = [
  "llama",
  "mistral",
  "qwen2",
  "qwen3",
  "gemma",
  "gemma2",
  "phi3",
  "granite",
  "olmo2",
  "mixtral",
  "qwen2_moe",
  "qwen3_moe",
] as const;

/** Bytes per element for --dtype and config torch_dtype values. */
export const DTYPE_BYTES: Readonly<Record<string, number>> = {
  f32: 4,
  float32: 4,
  fp32: 4,
  f16: 2,
  float16: 2,
  fp16: 2,
  bf16: 2,
  bfloat16: 2,
  fp8: 1,
  f8: 1,
  float8_e4m3fn: 1,
  int8: 1,
  q8_0: 34 / 32,
  q6_k: 210 / 256,
  q5_k: 176 / 256,
  q4_k: 144 / 256,
  q4_0: 18 / 32,
  mxfp4: 17 / 32,
};

export function parseHfConfig(path: string, json: unknown): HfConfig {
  const r = hfConfigSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    const where = issue?.path.join(".") || "config";
    throw modelError(path, `invalid config.json: ${where}: ${issue?.message ?? "invalid"}`);
  }
  if (!(HF_MODEL_TYPES as readonly string[]).includes(r.data.model_type)) {
    throw modelError(
      path,
      `unsupported architecture "${r.data.model_type}" (spillover plans: ${HF_MODEL_TYPES.join(", ")})`,
    );
  }
  return r.data;
}

function isMoeLayer(c: HfConfig, layer: number): boolean {
  const experts = c.num_local_experts ?? c.num_experts ?? 0;
  if (experts === 0) return false;
  if (c.mlp_only_layers?.includes(layer)) return false;
  const step = c.decoder_sparse_step ?? 1;
  return step > 0 && (layer + 1) % step === 0;
}

export function archFromHfConfig(c: HfConfig): ModelArch {
  const experts = c.num_local_experts ?? c.num_experts ?? 0;
  const kv = c.num_key_value_heads ?? c.num_attention_heads;
  return {
    architecture: c.model_type,
    layers: c.num_hidden_layers,
    hidden: c.hidden_size,
    heads: c.num_attention_heads,
    kvHeads: Array.from({ length: c.num_hidden_layers }, () => kv),
    headDim: c.head_dim ?? Math.floor(c.hidden_size / c.num_attention_heads),
    vocab: c.vocab_size,
    ffnHidden: c.model_type === "mixtral" ? 0 : (c.intermediate_size ?? 0),
    experts,
    expertsUsed: experts > 0 ? (c.num_experts_per_tok ?? 2) : 0,
    expertFfnHidden: experts > 0 ? (c.moe_intermediate_size ?? c.intermediate_size ?? 0) : 0,
    ...(c.max_position_embeddings !== undefined
      ? { contextLength: c.max_position_embeddings }
      : {}),
  };
}

/** The tensors a config implies, at `bytesPerElement` (norms at 4 bytes would be noise: same dtype). */
export function tensorsFromHfConfig(
  c: HfConfig,
  dtype: string,
  bytesPerElement: number,
): TensorEntry[] {
  const a = archFromHfConfig(c);
  const h = a.hidden;
  const out: TensorEntry[] = [];
  const add = (name: string, layer: number | null, role: TensorRole, elements: number) => {
    if (elements > 0)
      out.push({
        name,
        layer,
        role,
        elements,
        bytes: Math.ceil(elements * bytesPerElement),
        dtype,
      });
  };
  add("model.embed_tokens.weight", null, "embedding", a.vocab * h);
  for (let l = 0; l < a.layers; l++) {
    const p = `model.layers.${l}`;
    const kvh = a.kvHeads[l] ?? a.heads;
    add(`${p}.self_attn.q_proj.weight`, l, "attention", h * a.heads * a.headDim);
    add(`${p}.self_attn.k_proj.weight`, l, "attention", h * kvh * a.headDim);
    add(`${p}.self_attn.v_proj.weight`, l, "attention", h * kvh * a.headDim);
    add(`${p}.self_attn.o_proj.weight`, l, "attention", a.heads * a.headDim * h);
    add(`${p}.input_layernorm.weight`, l, "norm", h);
    add(`${p}.post_attention_layernorm.weight`, l, "norm", h);
    if (isMoeLayer(c, l)) {
      const f = a.expertFfnHidden;
      add(`${p}.mlp.gate.weight`, l, "router", h * a.experts);
      add(`${p}.mlp.experts.weight`, l, "experts", a.experts * 3 * h * f);
      const sh = c.shared_expert_intermediate_size ?? 0;
      add(`${p}.mlp.shared_expert.weight`, l, "shared_experts", 3 * h * sh);
    } else {
      add(`${p}.mlp.weight`, l, "ffn", 3 * h * (c.intermediate_size ?? 0));
    }
  }
  add("model.norm.weight", null, "norm", h);
  if (!c.tie_word_embeddings) add("lm_head.weight", null, "output", a.vocab * h);
  return out;
}

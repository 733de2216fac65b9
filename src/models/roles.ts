// Tensor name -> (layer, role), for GGUF names (llama.cpp's convention: blk.N.attn_q.weight,
// blk.N.ffn_up_exps.weight, ...) and Hugging Face names (model.layers.N.self_attn.q_proj.weight,
// ...mlp.experts.E.gate_proj.weight, ...block_sparse_moe.experts.E.w1.weight).

import type { TensorRole } from "./types.js";

export interface Classified {
  readonly layer: number | null;
  readonly role: TensorRole;
}

const GGUF_BLOCK = /^blk\.(\d+)\.(.+)$/;

export function classifyGguf(name: string): Classified {
  const m = GGUF_BLOCK.exec(name);
  if (!m) {
    if (name.startsWith("token_embd") || name.startsWith("per_layer_token_embd"))
      return { layer: null, role: "embedding" };
    if (name.startsWith("output_norm")) return { layer: null, role: "norm" };
    if (name.startsWith("output")) return { layer: null, role: "output" };
    if (name.includes("norm")) return { layer: null, role: "norm" };
    return { layer: null, role: "other" };
  }
  const layer = Number(m[1]);
  const rest = m[2] ?? "";
  return { layer, role: ggufBlockRole(rest) };
}

function ggufBlockRole(rest: string): TensorRole {
  if (/_exps\b|_exps\./.test(rest)) return "experts";
  if (/_shexp\b|_shexp\./.test(rest)) return "shared_experts";
  if (rest.startsWith("ffn_gate_inp") || rest.startsWith("exp_probs_b")) return "router";
  if (rest.includes("norm")) return "norm";
  if (rest.startsWith("attn") || rest.startsWith("time_mix") || rest.startsWith("ssm"))
    return "attention";
  if (rest.startsWith("ffn") || rest.startsWith("channel_mix")) return "ffn";
  return "other";
}

const HF_LAYER = /(?:^|\.)(?:layers|h|blocks)\.(\d+)\.(.+)$/;

export function classifyHf(name: string): Classified {
  const m = HF_LAYER.exec(name);
  if (!m) {
    if (/embed_tokens|wte|word_embeddings|tok_embeddings/.test(name))
      return { layer: null, role: "embedding" };
    if (/lm_head|(^|\.)output\.weight/.test(name)) return { layer: null, role: "output" };
    if (/norm|ln_f/.test(name)) return { layer: null, role: "norm" };
    return { layer: null, role: "other" };
  }
  const layer = Number(m[1]);
  const rest = m[2] ?? "";
  return { layer, role: hfBlockRole(rest) };
}

function hfBlockRole(rest: string): TensorRole {
  if (/shared_expert|shared_experts/.test(rest)) return "shared_experts";
  if (/\.experts\./.test(rest) || /(^|\.)experts\.(gate_up_proj|down_proj)/.test(rest))
    return "experts";
  if (/(mlp|block_sparse_moe)\.(gate|router)(\.|$)|e_score_correction/.test(rest)) return "router";
  if (/norm/.test(rest)) return "norm";
  if (/self_attn|attention|attn/.test(rest)) return "attention";
  if (/mlp|feed_forward|ffn/.test(rest)) return "ffn";
  return "other";
}

// What planning needs from a model: bytes by role per layer, what one decode step reads (routed
// experts counted at experts-used / experts), KV-cache bytes per token for a KV type, FLOPs per
// token, and an activation (compute buffer) estimate.

import { KV_TYPES, type KvType } from "./ggml-types.js";
import { type ModelArch, type ModelDescription, TENSOR_ROLES, type TensorRole } from "./types.js";

export type RoleBytes = Record<TensorRole, number>;

export interface LayerAnalysis {
  readonly layer: number;
  readonly bytes: RoleBytes;
  readonly total: number;
  /** Bytes one decode token reads from this layer (routed experts at used/experts). */
  readonly activeBytes: number;
  /** Routed-expert bytes of this layer (what --n-cpu-moe / -ot exps=CPU moves). */
  readonly expertBytes: number;
  readonly activeExpertBytes: number;
  readonly activeParams: number;
  readonly activeExpertParams: number;
}

export interface ModelAnalysis {
  readonly name: string;
  readonly arch: ModelArch;
  readonly totalBytes: number;
  readonly params: number;
  readonly layers: readonly LayerAnalysis[];
  /** Outside the blocks: token embeddings, output head, final norm, anything else. */
  readonly embeddingBytes: number;
  readonly outputBytes: number;
  readonly globalOtherBytes: number;
  /** No separate output head: the embedding matrix is read as the head every token. */
  readonly tiedOutput: boolean;
  readonly byRole: RoleBytes;
  readonly isMoe: boolean;
  /** Bytes a batch-1 decode step reads: every layer's active bytes, the head, one embedding row. */
  readonly activeBytesPerToken: number;
  readonly activeParamsPerToken: number;
  /** 2 x active parameters, matrix work only (attention over the context is added per workload). */
  readonly flopsPerToken: number;
}

function zeroRoles(): RoleBytes {
  return Object.fromEntries(TENSOR_ROLES.map((r) => [r, 0])) as RoleBytes;
}

export function analyzeModel(m: ModelDescription): ModelAnalysis {
  const a = m.arch;
  const perLayer = Array.from({ length: a.layers }, zeroRoles);
  const perLayerParams = Array.from({ length: a.layers }, zeroRoles);
  const global = zeroRoles();
  const globalParams = zeroRoles();
  for (const t of m.tensors) {
    const target = t.layer === null ? global : perLayer[t.layer];
    const targetP = t.layer === null ? globalParams : perLayerParams[t.layer];
    if (!target || !targetP) continue;
    target[t.role] += t.bytes;
    targetP[t.role] += t.elements;
  }
  const frac = a.experts > 0 ? Math.min(1, a.expertsUsed / a.experts) : 1;
  const layers: LayerAnalysis[] = perLayer.map((b, layer) => {
    const p = perLayerParams[layer] ?? zeroRoles();
    const total = TENSOR_ROLES.reduce((s, r) => s + b[r], 0);
    const activeExpertBytes = b.experts * frac;
    const activeParams = TENSOR_ROLES.reduce(
      (s, r) => s + (r === "experts" ? p[r] * frac : p[r]),
      0,
    );
    return {
      layer,
      bytes: b,
      total,
      activeBytes: total - b.experts + activeExpertBytes,
      expertBytes: b.experts,
      activeExpertBytes,
      activeParams,
      activeExpertParams: p.experts * frac,
    };
  });
  const byRole = zeroRoles();
  for (const b of [...perLayer, global]) for (const r of TENSOR_ROLES) byRole[r] += b[r];
  const tiedOutput = global.output === 0;
  const outputBytes = tiedOutput ? global.embedding : global.output;
  const outputParams = tiedOutput ? globalParams.embedding : globalParams.output;
  const embeddingRow = a.vocab > 0 ? global.embedding / a.vocab : 0;
  const totalBytes = TENSOR_ROLES.reduce((s, r) => s + byRole[r], 0);
  const params = m.tensors.reduce((s, t) => s + t.elements, 0);
  const activeParamsPerToken = layers.reduce((s, l) => s + l.activeParams, 0) + outputParams;
  return {
    name: m.name,
    arch: a,
    totalBytes,
    params,
    layers,
    embeddingBytes: global.embedding,
    outputBytes,
    globalOtherBytes:
      global.norm +
      global.other +
      global.attention +
      global.ffn +
      global.experts +
      global.shared_experts +
      global.router,
    tiedOutput,
    byRole,
    isMoe: byRole.experts > 0,
    activeBytesPerToken:
      layers.reduce((s, l) => s + l.activeBytes, 0) + outputBytes + embeddingRow + global.norm,
    activeParamsPerToken,
    flopsPerToken: 2 * activeParamsPerToken,
  };
}

/** KV-cache bytes one token adds, per layer (K and V). MLA models cache the compressed latent. */
export function kvBytesPerTokenByLayer(a: ModelArch, kvType: KvType): number[] {
  const bpe = KV_TYPES[kvType];
  return Array.from({ length: a.layers }, (_, l) => {
    if (a.kvLoraRank !== undefined) return (a.kvLoraRank + (a.ropeDim ?? 0)) * bpe;
    return 2 * (a.kvHeads[l] ?? a.heads) * a.headDim * bpe;
  });
}

export function kvBytesPerToken(a: ModelArch, kvType: KvType): number {
  return kvBytesPerTokenByLayer(a, kvType).reduce((s, x) => s + x, 0);
}

/**
 * Activation / compute-buffer estimate for a forward pass over `tokens` tokens, in bytes: f32
 * logits for every token of the micro-batch (llama.cpp sizes its output buffer that way), about six
 * hidden-size f32 vectors and three FFN-width vectors per token (residual, norms, q/k/v/out; gate,
 * up, act), attention assumed fused (flash attention: no tokens x context score matrix).
 */
export function activationBytes(a: ModelArch, tokens: number): number {
  const ffnWidth = Math.max(a.ffnHidden, a.expertsUsed * a.expertFfnHidden);
  return tokens * 4 * (a.vocab + 6 * a.hidden + 3 * ffnWidth);
}

/** Attention FLOPs for one token attending over `ctx` positions (QK^T and AV). */
export function attentionFlopsPerToken(a: ModelArch, ctx: number): number {
  return 4 * a.layers * a.heads * a.headDim * ctx;
}

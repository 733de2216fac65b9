// The one description of a model that planning works from, whatever it was read from (GGUF,
// safetensors, a Hugging Face config.json, or built in code for a published case).

export type TensorRole =
  | "attention"
  | "ffn"
  | "experts"
  | "shared_experts"
  | "router"
  | "embedding"
  | "output"
  | "norm"
  | "other";

export const TENSOR_ROLES: readonly TensorRole[] = [
  "attention",
  "ffn",
  "experts",
  "shared_experts",
  "router",
  "embedding",
  "output",
  "norm",
  "other",
];

export interface TensorEntry {
  readonly name: string;
  /** Transformer block index, or null for embeddings, output head and final norm. */
  readonly layer: number | null;
  readonly role: TensorRole;
  readonly elements: number;
  readonly bytes: number;
  readonly dtype: string;
}

export interface ModelArch {
  /** GGUF general.architecture or HF model_type. */
  readonly architecture: string;
  readonly layers: number;
  readonly hidden: number;
  readonly heads: number;
  /** KV heads per layer (grouped-query attention); one entry per layer. */
  readonly kvHeads: readonly number[];
  readonly headDim: number;
  readonly vocab: number;
  /** Dense FFN width (0 when every layer is MoE). */
  readonly ffnHidden: number;
  /** Routed experts per MoE layer (0 for dense models) and experts used per token. */
  readonly experts: number;
  readonly expertsUsed: number;
  readonly expertFfnHidden: number;
  /** MLA (DeepSeek-2/3): compressed KV width per layer instead of heads x headDim x 2. */
  readonly kvLoraRank?: number;
  readonly ropeDim?: number;
  readonly contextLength?: number;
}

export type ModelFormat = "gguf" | "safetensors" | "hf-config" | "described";

export interface ModelDescription {
  readonly name: string;
  readonly path: string;
  readonly format: ModelFormat;
  readonly arch: ModelArch;
  readonly tensors: readonly TensorEntry[];
  /** What the reader decided on the user's behalf (which shards or file it read), said once. */
  readonly notes?: readonly string[];
}

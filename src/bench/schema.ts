// The results file bench/suite.py writes (schema "spillover-bench/1"), as a zod schema: the
// report renders only what validates, so a results file from a broken or older suite fails with
// one line naming the field instead of rendering nonsense. It stays in src/ because
// `spillover plan --validate` reads results files too; the report renderer that is not part of
// the product lives beside the suite, in bench/report/.

import { z } from "zod";

const bytes = z.number().int().nonnegative();
const seconds = z.number().nonnegative();

export const ModelFactsSchema = z.object({
  arch: z.enum(["llama", "mixtral"]),
  hidden: z.number().int().positive(),
  layers: z.number().int().positive(),
  intermediate: z.number().int().positive(),
  heads: z.number().int().positive(),
  kv_heads: z.number().int().positive(),
  head_dim: z.number().int().positive(),
  vocab: z.number().int().positive(),
  experts: z.number().int().nonnegative(),
  experts_per_token: z.number().int().nonnegative(),
  tied_embeddings: z.boolean(),
  dtype: z.string(),
  params: z.number().int().positive(),
  weight_bytes: bytes,
  embed_bytes: bytes,
  expert_bytes: bytes,
  lm_head_bytes: bytes,
  dense_bytes: bytes,
});
export type ModelFacts = z.infer<typeof ModelFactsSchema>;

const PrefillSchema = z.object({
  tokens: z.number().int().positive(),
  seconds: z.number().positive(),
  tokens_per_s: z.number().positive(),
  /** The timed repetitions (median = seconds); the warm-up before them is apart. */
  all_seconds: z.array(seconds),
  warmup_s: seconds.optional(),
  last_logits_sha: z.string(),
});

const DecodeSchema = z.object({
  new_tokens: z.number().int().positive(),
  step_estimate_s: seconds,
  /** Median of the runs; results before the lean decode loop took one HF generate per run. */
  tokens_per_s: z.number().positive(),
  min_tokens_per_s: z.number().positive().optional(),
  max_tokens_per_s: z.number().positive().optional(),
  /** "cuda-graph": static KV cache, one captured step replayed; "static-eager": the same loop
   * without a graph (MoE routing, accelerate); absent: HF generate (results before 2026-11-29). */
  method: z.enum(["cuda-graph", "static-eager"]).optional(),
  graph_error: z.string().nullable().optional(),
  warmup_s: seconds.optional(),
  runs: z.array(
    z.object({
      seconds: seconds,
      tokens_per_s: z.number().positive(),
      same_tokens_as_first: z.boolean(),
    }),
  ),
});

const OffloadSchema = z.object({
  max_memory_gpu_bytes: bytes,
  offloaded_bytes: bytes,
  gpu_weight_bytes: bytes,
  modules_on_cpu: z.number().int().nonnegative(),
  modules_total: z.number().int().nonnegative(),
  setup_s: seconds,
});

const WeightPlacementSchema = z.object({ weights_host_bytes: bytes, weights_vram_bytes: bytes });

export const LlmMetricsSchema = z.object({
  facts: ModelFactsSchema,
  weights_checksum: z.string(),
  build_s: seconds,
  checksum_s: seconds,
  offload: OffloadSchema.nullable(),
  prefill: z.record(z.string(), PrefillSchema),
  ttft_s: z.number().positive(),
  ttft_all_s: z.array(seconds).optional(),
  ttft_prompt: z.number().int().positive(),
  decode: DecodeSchema,
  tokens: z.array(z.number().int()),
  torch_max_allocated_bytes: bytes,
  torch_max_reserved_bytes: bytes,
  reported_vram_total_bytes: bytes,
  reported_vram_free_bytes: bytes,
  // Where the weights were (asked of the driver page by page), sampled after prefill and after
  // decode: with migration the placement changes during a run. Absent in results before it.
  placement: z
    .object({
      after_prefill: WeightPlacementSchema.nullable().optional(),
      after_decode: WeightPlacementSchema.nullable().optional(),
    })
    .optional(),
});
export type LlmMetrics = z.infer<typeof LlmMetricsSchema>;

// The no-spillover reference run again, in its own process, decode only: the report compares its
// tokens with the reference's to tell the program's own run-to-run variation from spillover's.
export const RepeatMetricsSchema = z.object({
  facts: ModelFactsSchema,
  weights_checksum: z.string(),
  build_s: seconds,
  checksum_s: seconds,
  decode: z.object({
    new_tokens: z.number().int().positive(),
    runs: z.array(z.object({ seconds: seconds, same_tokens_as_first: z.boolean() })),
  }),
  tokens: z.array(z.number().int()),
});
export type RepeatMetrics = z.infer<typeof RepeatMetricsSchema>;

export const ArrayMetricsSchema = z.object({
  working_set_bytes: bytes,
  arrays: z.number().int().positive(),
  checksums: z.object({
    mix_sums_sha: z.string(),
    chain_sum: z.string(),
    float_chain_sha: z.string(),
  }),
  passes_s: z.record(z.string(), seconds),
  memory_stats: z.record(z.string(), z.unknown()),
  versions: z.record(z.string(), z.string()),
});
export type ArrayMetrics = z.infer<typeof ArrayMetricsSchema>;

export const ProbeMetricsSchema = z.object({
  h2d_pinned_gbps: z.number().positive(),
  h2d_pinned_to_gbps: z.number().positive(),
  d2h_pinned_gbps: z.number().positive(),
  vram_read_gbps: z.number().positive(),
  vram_copy_gbps: z.number().positive(),
  copy_bytes: bytes,
  gpu_name: z.string(),
  vram_total_bytes: bytes,
  vram_free_bytes: bytes,
  sm_count: z.number().int().positive(),
  cuda_runtime: z.string().nullable(),
  smi: z.record(z.string(), z.string()),
  kernel: z.string(),
});

// The interposer's stats record as bench/workloads/common.py decodes it. GPU fields are absent
// when the record lists no GPU.
export const SpillStatsSchema = z.object({
  version: z.number().int(),
  pid: z.number().int(),
  gpu_count: z.number().int().nonnegative(),
  mode: z.number().int(),
  mode_name: z.string(),
  exited: z.number().int(),
  pinned_limit: bytes,
  pinned_lease: bytes,
  pinned_pool_bytes: bytes,
  pinned_used_bytes: bytes,
  pinned_peak_bytes: bytes,
  alloc_calls: bytes,
  free_calls: bytes,
  tiered_allocs: bytes,
  passthrough_allocs: bytes,
  oom_returned: bytes,
  pages_vram: bytes,
  pages_pinned: bytes,
  migrations: bytes,
  pool_grows: bytes,
  lease_denials: bytes,
  bad_args: bytes,
  largest_alloc: bytes,
  vram_physical: bytes.optional(),
  vram_limit: bytes.optional(),
  vram_reserve: bytes.optional(),
  tier_vram_bytes: bytes.optional(),
  tier_pinned_bytes: bytes.optional(),
  tier_vram_peak: bytes.optional(),
  tier_pinned_peak: bytes.optional(),
  passthrough_bytes: bytes.optional(),
  passthrough_peak: bytes.optional(),
  program_vmm_bytes: bytes.optional(),
  program_vmm_host_bytes: bytes.optional(),
  reported_total: bytes.optional(),
  reported_free: bytes.optional(),
  // The streaming engine's block; absent in results recorded before the decoder read it.
  stream_staged_bytes: bytes.optional(),
  stream_staged_ranges: bytes.optional(),
  stream_stage_hits: bytes.optional(),
  stream_late_stages: bytes.optional(),
  stream_writeback_pages: bytes.optional(),
  stream_inplace_launches: bytes.optional(),
  stream_copy_busy_ns: bytes.optional(),
  stream_budget_bytes: bytes.optional(),
  stream_fallbacks: bytes.optional(),
});
export type SpillStats = z.infer<typeof SpillStatsSchema>;

const status = z.enum(["ok", "failed", "timeout", "skipped"]);

const entryBase = {
  id: z.string().min(1),
  variant: z.string().nullable(),
  fraction: z.number().positive().max(1).nullable(),
  vram_limit_bytes: bytes.nullable(),
  spillover: z.boolean(),
  spec: z.record(z.string(), z.unknown()),
  status,
  error: z.string().nullable(),
  exit_code: z.number().int().nullable(),
  duration_s: seconds,
  timeout_s: seconds,
  spill_stats: SpillStatsSchema.nullable(),
  vram_used_smi_mib: z.number().nullable(),
  env: z.record(z.string(), z.string()),
};

const LlmEntrySchema = z.object({
  ...entryBase,
  group: z.literal("llm"),
  model: z.string(),
  mode: z.enum(["baseline", "spillover", "accelerate"]),
  metrics: LlmMetricsSchema.nullable(),
});
const RepeatEntrySchema = z.object({
  ...entryBase,
  group: z.literal("llm-repeat"),
  model: z.string(),
  mode: z.literal("reference-repeat"),
  metrics: RepeatMetricsSchema.nullable(),
});
const ArrayEntrySchema = z.object({
  ...entryBase,
  group: z.enum(["jax", "cupy"]),
  model: z.null(),
  mode: z.enum(["reference", "spillover"]),
  metrics: ArrayMetricsSchema.nullable(),
});
const ProbeEntrySchema = z.object({
  ...entryBase,
  group: z.literal("probe"),
  model: z.null(),
  mode: z.literal("probe"),
  metrics: ProbeMetricsSchema.nullable(),
});

export const WorkloadEntrySchema = z.discriminatedUnion("group", [
  LlmEntrySchema,
  RepeatEntrySchema,
  ArrayEntrySchema,
  ProbeEntrySchema,
]);
export type WorkloadEntry = z.infer<typeof WorkloadEntrySchema>;
export type LlmEntry = z.infer<typeof LlmEntrySchema>;
export type ArrayEntry = z.infer<typeof ArrayEntrySchema>;
export type RepeatEntry = z.infer<typeof RepeatEntrySchema>;

export const BenchResultsSchema = z.object({
  schema: z.literal("spillover-bench/1"),
  fixture: z.boolean(),
  smoke: z.boolean(),
  created_utc: z.string(),
  git_commit: z.string().nullable(),
  command: z.string(),
  host: z.object({
    card: z.string(),
    gpu_name: z.string().nullable(),
    driver: z.string().nullable(),
    cuda_driver: z.string().nullable(),
    cuda_runtime: z.string().nullable(),
    vram_total_bytes: bytes.nullable(),
    pcie: z.string().nullable(),
    cpu_model: z.string().nullable(),
    cpu_count: z.number().int().nullable(),
    mem_total_bytes: bytes.nullable(),
    kernel: z.string(),
  }),
  versions: z.record(z.string(), z.string().nullable()),
  interposer: z.object({ path: z.string(), present: z.boolean() }),
  bandwidth: z
    .object({
      h2d_pinned_gbps: z.number().positive(),
      d2h_pinned_gbps: z.number().positive().nullable(),
      vram_read_gbps: z.number().positive(),
      vram_copy_gbps: z.number().positive().nullable(),
    })
    .nullable(),
  allowance_bytes: bytes,
  /** SPILLOVER_VRAM_RESERVE of the LLM spillover runs; absent in files from before it was
   * recorded, whose runs set the reserve to the allowance */
  reserve_bytes: bytes.optional(),
  budget_s: seconds,
  duration_s: seconds,
  models: z.record(
    z.string(),
    z.object({
      arch: z.enum(["llama", "mixtral"]),
      config: z.record(z.string(), z.unknown()),
      predicted_weight_bytes: bytes,
      facts: ModelFactsSchema.nullable(),
    }),
  ),
  workloads: z.array(WorkloadEntrySchema),
  /** "K/N" for one part of a suite run in several calls; absent or null for a whole run */
  part: z.string().nullable().optional(),
  /** for a run merged from parts: each part's duration and measured bandwidths */
  parts: z
    .array(
      z.object({
        part: z.string().nullable(),
        duration_s: seconds,
        created_utc: z.string(),
        bandwidth: z.record(z.string(), z.number().nullable()).nullable(),
      }),
    )
    .optional(),
});
export type BenchResults = z.infer<typeof BenchResultsSchema>;

/** Validates parsed JSON; throws an Error whose message names the first bad field. */
export function parseBenchResults(data: unknown, source: string): BenchResults {
  const r = BenchResultsSchema.safeParse(data);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue ? issue.path.join(".") || "(top level)" : "(unknown)";
  throw new Error(
    `${source}: not a valid spillover-bench/1 results file: ${where}: ${issue?.message ?? "invalid"}; ` +
      "regenerate it with bash bench/run_suite.sh",
  );
}

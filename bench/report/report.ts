// Renders docs/benchmarks.md and its SVG charts from one validated results file. Pure: results
// in, markdown text and named SVG files out; scripts/bench-report.ts does the reading and writing.

import type { BenchResults, SpillStats } from "../../src/bench/schema.js";
import {
  type Analysis,
  type ArrayRow,
  analyse,
  type Claim,
  idealPlacement,
  type LlmRow,
  type ModelAnalysis,
  ordinal,
  type PlacementNote,
  TARGETS,
  type TokenVerdict,
} from "./analysis.js";
import { citeName, NO_RECORDS, type Records } from "./records.js";
import { barChart, type LineSeries, lineChart, PALETTE } from "./svg.js";

export interface RenderedReport {
  readonly markdown: string;
  /** file name (no directory) -> SVG text */
  readonly images: ReadonlyMap<string, string>;
}

export interface RenderOptions {
  /** how the results file is named in the report, e.g. bench/results/2026-11-27-h100.json */
  readonly source: string;
  /** the images' directory relative to the markdown file, e.g. "img" */
  readonly imgDir: string;
  /** extra GPU records from bench/results/runs/ (determinism diagnoses, follow-up runs) */
  readonly records?: Records;
}

const dash = "–";

export function fmtGB(b: number | null | undefined): string {
  return b === null || b === undefined ? dash : `${(b / 1e9).toFixed(2)} GB`;
}

/** " (min-max)" of repeated measurements, or nothing when there were none. */
function rangeCell(r: readonly [number, number] | null | undefined): string {
  return r ? ` (${fmtRate(r[0])}-${fmtRate(r[1])})` : "";
}

export function fmtRate(v: number | null | undefined): string {
  if (v === null || v === undefined) return dash;
  if (v >= 100) return v.toFixed(0);
  if (v >= 10) return v.toFixed(1);
  return v.toFixed(2);
}

function fmtRatio(v: number | null): string {
  return v === null ? dash : v.toFixed(2);
}

function fmtS(v: number | null): string {
  if (v === null) return dash;
  return v < 1 ? `${(v * 1000).toFixed(0)} ms` : `${v.toFixed(2)} s`;
}

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const esc = (c: string) => c.replace(/\|/g, "\\|").replace(/\n/g, " ");
  return [
    `| ${head.map(esc).join(" | ")} |`,
    `|${head.map(() => "---").join("|")}|`,
    ...rows.map((r) => `| ${r.map(esc).join(" | ")} |`),
  ].join("\n");
}

function verdictCell(c: Claim): string {
  return c.verdict === "met" ? "met" : c.verdict === "missed" ? "**missed**" : "no data";
}

function claimsSection(a: Analysis): string {
  const out = ["## What the numbers say", ""];
  out.push(
    table(
      ["claim", "expected", "measured", "verdict"],
      a.claims.map((c) => [c.name, c.expectation, c.headline, verdictCell(c)]),
    ),
  );
  for (const c of a.claims) {
    if (c.points.length === 0) continue;
    out.push("", `**${c.name}**, every point:`, "");
    for (const p of c.points) {
      const v = c.name.startsWith("Overhead")
        ? `${(p.value * 100).toFixed(1)}%`
        : c.name.startsWith("Decode speed-up") || c.name.startsWith("Prefill")
          ? `${p.value.toFixed(1)}x`
          : p.value.toFixed(2);
      out.push(`- ${p.model}, ${p.label}: ${v}${p.met ? "" : ` (missed: ${p.why.join("; ")})`}`);
    }
  }
  return out.join("\n");
}

function runSection(r: BenchResults): string {
  const h = r.host;
  const v = r.versions;
  const bw = r.bandwidth;
  const rows: string[][] = [
    [
      "card",
      `${h.gpu_name ?? h.card}${h.vram_total_bytes ? `, ${fmtGB(h.vram_total_bytes)}` : ""}`,
    ],
    [
      "driver / CUDA",
      `${h.driver ?? dash} / driver CUDA ${h.cuda_driver ?? dash}, runtime ${h.cuda_runtime ?? dash}`,
    ],
    ["link", h.pcie ?? dash],
    [
      "host",
      `${h.cpu_model ?? dash}, ${h.cpu_count ?? dash} CPUs, ${fmtGB(h.mem_total_bytes)} RAM, kernel ${h.kernel}`,
    ],
    [
      "software",
      Object.entries(v)
        .map(([k, x]) => `${k} ${x ?? "absent"}`)
        .join(", "),
    ],
    ["git commit", r.git_commit ?? "not recorded (set GIT_COMMIT)"],
    ["command", `\`${r.command}\``],
    [
      "run",
      `${r.created_utc}, ${(r.duration_s / 60).toFixed(1)} min, interposer ${r.interposer.present ? "built" : "**missing**"}` +
        (r.parts?.length
          ? `; in ${r.parts.length} parts (one GPU call each; bounds use the highest bandwidths the parts measured)`
          : r.part
            ? `; **part ${r.part} only**`
            : ""),
    ],
  ];
  if (bw) {
    rows.push([
      "measured in this run",
      `pinned host→device ${bw.h2d_pinned_gbps} GB/s, device→host ${bw.d2h_pinned_gbps ?? dash} GB/s, ` +
        `VRAM read ${bw.vram_read_gbps} GB/s, VRAM copy ${bw.vram_copy_gbps ?? dash} GB/s (read + write)`,
    ]);
  } else {
    rows.push([
      "measured in this run",
      "**the bandwidth probe failed: no bounds can be computed**",
    ]);
  }
  rows.push([
    "activation allowance",
    `${fmtGB(r.allowance_bytes)} of VRAM on top of the weights' share; VRAM reserve ${fmtGB(r.reserve_bytes ?? r.allowance_bytes)}`,
  ]);
  return ["## The run", "", table(["", ""], rows)].join("\n");
}

function factsTable(m: ModelAnalysis): string {
  const f = m.facts;
  if (!f) return `No run of ${m.id} completed, so its measured facts are missing.`;
  return table(
    [
      "arch",
      "hidden",
      "layers",
      "intermediate",
      "heads",
      "kv heads",
      "head dim",
      "vocab",
      "experts",
      "per token",
      "dtype",
      "weights",
      "embedding",
      "experts' bytes",
      "read by every token",
    ],
    [
      [
        f.arch,
        String(f.hidden),
        String(f.layers),
        String(f.intermediate),
        String(f.heads),
        String(f.kv_heads),
        String(f.head_dim),
        String(f.vocab),
        String(f.experts),
        String(f.experts_per_token),
        f.dtype,
        fmtGB(f.weight_bytes),
        fmtGB(f.embed_bytes),
        fmtGB(f.expert_bytes),
        fmtGB(f.dense_bytes),
      ],
    ],
  );
}

/** The token column's words: "equal", "differ (the program differs between its own runs too)",
 * or a loud "differ" (a real finding, or nothing tells). */
export function tokenWords(t: TokenVerdict, ref: string | null): string {
  switch (t.kind) {
    case "none":
      return ref ? dash : "no reference";
    case "reference":
      return "reference";
    case "equal":
      return `equal (${t.compared})`;
    case "program":
      return `differ (the program differs between its own runs too): from the ${ordinal(t.at)} token on, ${t.compared} compared`;
    case "finding":
      return `**differ: a real finding**: from the ${ordinal(t.at)} token on, ${t.compared} compared, while the reference repeated without spillover was identical`;
    case "unknown":
      return `**differ** from the ${ordinal(t.at)} token on, ${t.compared} compared (not known whether the program differs between its own runs)`;
  }
}

function tokensCell(r: LlmRow, ref: string | null): string {
  if (!r.ok) return dash;
  const base = tokenWords(r.tokens, ref);
  const extra: string[] = [];
  if (r.logitsEqual === false) extra.push("logits differ");
  if (r.weightsIdentical === false) extra.push("**weights differ**");
  return extra.length ? `${base}; ${extra.join("; ")}` : base;
}

/** Every run whose tokens differ, with the evidence its class rests on. */
function tokenSection(a: Analysis): string {
  const rows = a.models.flatMap((m) =>
    m.rows.flatMap((r) =>
      r.tokens.kind === "program" || r.tokens.kind === "finding" || r.tokens.kind === "unknown"
        ? [{ m, r, t: r.tokens }]
        : [],
    ),
  );
  if (rows.length === 0) return "";
  const out = ["## Token equality", ""];
  const findings = rows.filter((x) => x.t.kind === "finding");
  if (findings.length) {
    out.push(
      `> **${findings.length} run${findings.length > 1 ? "s give" : " gives"} different tokens from the reference while the ` +
        `reference repeated without spillover gave identical ones: ${findings.map((x) => `${x.m.id} ${x.r.label}`).join(", ")}. ` +
        "This is a real difference to investigate, not the program's own variation.**",
      "",
    );
  }
  for (const { m, r, t } of rows) {
    out.push(`- ${m.id}, ${r.label}: ${tokenWords(t, m.reference)}. ${capitalise(t.evidence)}.`);
  }
  return out.join("\n");
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function repeatLine(m: ModelAnalysis): string {
  if (m.repeats.length === 0) return "";
  const ref = m.baseline?.entry.metrics?.tokens ?? null;
  return m.repeats
    .map((rep) => {
      if (rep.status !== "ok" || !rep.metrics) return `${rep.id}: **${rep.status}**.`;
      if (!ref) return `${rep.id}: ran, but no reference tokens to compare with.`;
      const n = Math.min(ref.length, rep.metrics.tokens.length);
      const d = ref.slice(0, n).findIndex((x, i) => x !== rep.metrics?.tokens[i]);
      const inProcess = rep.metrics.decode.runs.every((x) => x.same_tokens_as_first)
        ? "its repetitions within the process agreed"
        : "its repetitions within the process **differed**";
      return d < 0
        ? `The reference repeated without spillover in its own process (${rep.id}) gave the same tokens (${n} compared); ${inProcess}.`
        : `The reference repeated without spillover in its own process (${rep.id}) differed from it from the ${ordinal(d)} token on (${n} compared): the program differs between its own runs; ${inProcess}.`;
    })
    .join(" ");
}

function placementLine(m: ModelAnalysis, r: LlmRow, p: PlacementNote): string {
  const parts: string[] = [];
  const host = p.hostBytes;
  parts.push(
    host !== null
      ? `${fmtGB(host)} in pinned host memory at exit (peak ${fmtGB(p.hostPeak)})`
      : "no stats record: placement unknown",
  );
  if (p.reserve !== null && p.requiredHost !== null) {
    const budget = Math.max(0, p.limit - p.reserve);
    const weights = m.facts ? fmtGB(m.facts.weight_bytes) : dash;
    parts.push(
      `requests over SPILLOVER_THRESHOLD (${p.threshold}) share limit − reserve = ${fmtGB(budget)} of VRAM ` +
        `(${fmtGB(p.limit)} − ${fmtGB(p.reserve)}; the reserve serves only requests up to the threshold) against ${weights} of weights, ` +
        (p.requiredHost === 0
          ? `so the limit requires no weight in host memory and leaves ${fmtGB(budget - (m.facts?.weight_bytes ?? 0))} for every other request over the threshold`
          : `so the limit requires ${fmtGB(p.requiredHost)} of weights in host memory`),
    );
    if (host !== null && host > p.requiredHost) {
      parts.push(
        `${fmtGB(host - p.requiredHost)} were in host memory beyond what the limit requires` +
          (p.torchPeakReserved !== null && m.facts
            ? ` (PyTorch's peak reserved memory, ${fmtGB(p.torchPeakReserved)}, is ${fmtGB(p.torchPeakReserved - m.facts.weight_bytes)} above the weights)`
            : "") +
          "; which allocations (weights, activations, allocator rounding) hold them is not recorded",
      );
    }
  }
  if (p.prefillSlowdown !== null && p.requiredHost === 0 && p.prefillSlowdown >= 2) {
    const found = p.followUps.find((f) => f.finding !== null);
    parts.push(
      `prefill at 2048 tokens ran ${p.prefillSlowdown.toFixed(1)}x slower than without spillover ` +
        `(${fmtRate(r.prefill2048Tps)} against ${fmtRate(m.baseline?.prefill2048Tps)} tok/s); ` +
        (found
          ? `cause, found by a follow-up (${citeName(found.file)}): ${found.finding}`
          : "cause not established"),
    );
  }
  for (const f of p.followUps) {
    const facts: string[] = [];
    const before = r.prefill2048Tps;
    if (f.prefill2048Tps !== null && before !== null) {
      const same = Math.abs(f.prefill2048Tps / before - 1) <= 0.25;
      facts.push(
        `prefill 2048 ${same ? "about the same" : "changed"}: ${fmtRate(f.prefill2048Tps)} tok/s against ${fmtRate(before)} here`,
      );
    }
    if (f.decodeTps !== null && r.decodeTps !== null) {
      facts.push(`decode ${fmtRate(f.decodeTps)} tok/s against ${fmtRate(r.decodeTps)} here`);
    }
    parts.push(
      `a follow-up run with ${f.change}: ${facts.length ? facts.join(", ") : "no comparable figure"} (see ${citeName(f.file)})`,
    );
  }
  return `- ${r.label}: ${parts.join("; ")}.`;
}

function placementSection(m: ModelAnalysis): string {
  const lines = m.rows.flatMap((r) => (r.placement ? [placementLine(m, r, r.placement)] : []));
  if (lines.length === 0) return "";
  return ["Placement of the spillover runs:", "", ...lines].join("\n");
}

function resultsTable(m: ModelAnalysis): string {
  return table(
    [
      "run",
      "VRAM limit",
      "decode tok/s, median (min-max)",
      "bound tok/s",
      "of bound",
      "prefill 512 tok/s",
      "prefill 2048 tok/s",
      "2048 copy bound tok/s",
      "TTFT (512)",
      "pinned peak",
      "staged (late)",
      "tokens vs reference",
    ],
    m.rows.map((r) => {
      const e = r.entry;
      if (!r.ok) {
        return [
          r.label,
          fmtGB(e.vram_limit_bytes),
          `**${e.status}**`,
          fmtRate(r.boundTps),
          dash,
          dash,
          dash,
          dash,
          dash,
          dash,
          dash,
          dash,
        ];
      }
      const active = r.spillActive === false ? " (interposer inactive)" : "";
      return [
        r.label + active,
        e.vram_limit_bytes ? fmtGB(e.vram_limit_bytes) : "card",
        fmtRate(r.decodeTps) + rangeCell(r.decodeRange),
        fmtRate(r.boundTps),
        fmtRatio(r.fractionOfBound),
        fmtRate(r.prefill512Tps) + rangeCell(r.prefillRange["512"]),
        fmtRate(r.prefill2048Tps) + rangeCell(r.prefillRange["2048"]),
        e.mode === "spillover" ? fmtRate(r.prefill2048CopyBoundTps) : dash,
        fmtS(r.ttftS),
        e.mode === "spillover" ? fmtGB(r.pinnedPeakBytes) : dash,
        e.mode === "spillover" ? stagedCell(e.spill_stats) : dash,
        tokensCell(r, m.reference),
      ];
    }),
  );
}

/** What the streaming engine staged in a run, and how many stagings were late; a dash for runs
 *  recorded before the stats decoder read the engine's block. */
function stagedCell(st: SpillStats | null): string {
  if (st?.stream_staged_bytes === undefined) return dash;
  return `${fmtGB(st.stream_staged_bytes)} (${st.stream_late_stages ?? 0})`;
}

function decodeChart(m: ModelAnalysis): string {
  const pts = (mode: "spillover" | "accelerate") =>
    m.rows
      .filter((r) => r.entry.mode === mode && r.decodeTps !== null)
      .map((r) => ({ x: r.fraction * 100, y: r.decodeTps as number }));
  const fractions = [
    ...new Set(m.rows.filter((r) => r.entry.mode !== "baseline").map((r) => r.fraction)),
  ];
  const bound = fractions
    .map((f) => ({ f, row: m.rows.find((r) => r.fraction === f && r.boundTps !== null) }))
    .filter((x) => x.row)
    .map((x) => ({ x: x.f * 100, y: x.row?.boundTps as number }));
  const series: LineSeries[] = [
    { name: "spillover", color: PALETTE.spillover, points: pts("spillover") },
    { name: "accelerate offload", color: PALETTE.accelerate, points: pts("accelerate") },
    { name: "physical bound", color: PALETTE.bound, points: bound, dashed: true, labels: "below" },
  ];
  if (m.baseline?.decodeTps) {
    series.push({
      name: "no spillover",
      color: PALETTE.baseline,
      points: [{ x: 100, y: m.baseline.decodeTps }],
      markersOnly: true,
      labels: "right",
    });
  }
  return lineChart({
    title: `${m.id}: decode tokens/s by VRAM limit`,
    xLabel: "VRAM limit for weights (% of the model's weight bytes)",
    yLabel: "decode tokens/s (log scale)",
    xTicks: [25, 50, 75, 100].map((x) => ({ x, label: `${x}%` })),
    series,
    logY: true,
  });
}

function spillRows(a: Analysis, pred: (m: ModelAnalysis, r: LlmRow) => boolean) {
  return a.models.flatMap((m) =>
    m.rows.filter((r) => r.entry.mode === "spillover" && pred(m, r)).map((r) => ({ m, r })),
  );
}

function boundFractionChart(a: Analysis): string | null {
  const rows = spillRows(
    a,
    (m, r) =>
      r.fractionOfBound !== null &&
      !!m.facts &&
      idealPlacement(m.facts, r.fraction).linkBytesPerToken > 0,
  );
  if (rows.length === 0) return null;
  return barChart({
    title: "Spillover decode as a fraction of the physical bound",
    yLabel: "measured / bound",
    categories: rows.map(({ m, r }) => `${m.id} ${Math.round(r.fraction * 100)}%`),
    series: [
      {
        name: "spillover",
        color: PALETTE.spillover,
        values: rows.map(({ r }) => r.fractionOfBound),
      },
    ],
    target: {
      value: TARGETS.decodeFractionOfBound,
      label: `target ${TARGETS.decodeFractionOfBound}`,
    },
    valueFormat: (v) => v.toFixed(2),
  });
}

function speedupChart(a: Analysis): string | null {
  const c = a.claims.find((x) => x.name.startsWith("Decode speed-up"));
  if (!c || c.points.length === 0) return null;
  return barChart({
    title: "Decode speed-up of spillover over accelerate's CPU offload",
    yLabel: "spillover tok/s / accelerate tok/s",
    categories: c.points.map((p) => `${p.model} ${p.label}`),
    series: [{ name: "speed-up", color: PALETTE.spillover, values: c.points.map((p) => p.value) }],
    target: {
      value: TARGETS.speedupOverAccelerate,
      label: `target ${TARGETS.speedupOverAccelerate}x`,
    },
    valueFormat: (v) => `${v.toFixed(1)}x`,
  });
}

function prefillChart(a: Analysis): string | null {
  const rows = spillRows(a, (_m, r) => r.prefill2048Tps !== null);
  if (rows.length === 0) return null;
  const accel = rows.map(
    ({ m, r }) =>
      m.rows.find((x) => x.entry.mode === "accelerate" && x.fraction === r.fraction)
        ?.prefill2048Tps ?? null,
  );
  return barChart({
    title: "Prefill of a 2048-token prompt",
    yLabel: "prefill tokens/s (log scale)",
    categories: rows.map(({ m, r }) => `${m.id} ${Math.round(r.fraction * 100)}%`),
    series: [
      {
        name: "spillover",
        color: PALETTE.spillover,
        values: rows.map(({ r }) => r.prefill2048Tps),
      },
      { name: "accelerate offload", color: PALETTE.accelerate, values: accel },
      {
        name: "copy bound",
        color: PALETTE.bound,
        values: rows.map(({ r }) => r.prefill2048CopyBoundTps),
      },
    ],
    logY: true,
    width: 900,
  });
}

function arraysSection(a: Analysis): string {
  const rows: string[][] = [];
  const add = (group: string, list: ArrayRow[]) => {
    for (const x of list) {
      const e = x.entry;
      const m = e.metrics;
      const setting =
        group === "jax"
          ? e.env.XLA_PYTHON_CLIENT_PREALLOCATE === "false"
            ? "XLA_PYTHON_CLIENT_PREALLOCATE=false"
            : `default preallocation (XLA_PYTHON_CLIENT_MEM_FRACTION ${e.env.XLA_PYTHON_CLIENT_MEM_FRACTION ?? "0.75, the default"})`
          : "CuPy default memory pool";
      const passes = m ? Object.values(m.passes_s).reduce((s, v) => s + v, 0) : null;
      rows.push([
        `${group} ${e.mode}`,
        setting,
        e.vram_limit_bytes ? fmtGB(e.vram_limit_bytes) : "card",
        m ? fmtGB(m.working_set_bytes) : dash,
        x.oversubscription !== null ? `${x.oversubscription.toFixed(1)}x` : dash,
        e.status === "ok" ? "ok" : `**${e.status}**`,
        x.equal === null
          ? e.mode === "reference"
            ? "reference"
            : dash
          : x.equal
            ? "identical"
            : "**differ**",
        e.env.SPILLOVER_PINNED_LIMIT ? fmtGB(Number(e.env.SPILLOVER_PINNED_LIMIT)) : dash,
        e.spillover ? fmtGB(e.spill_stats?.pinned_peak_bytes ?? null) : dash,
        e.spillover ? fmtGB(e.spill_stats?.program_vmm_host_bytes ?? null) : dash,
        fmtS(passes),
      ]);
    }
  };
  add("jax", a.arrays.jax);
  add("cupy", a.arrays.cupy);
  if (rows.length === 0) return "";
  return [
    "## Correctness corpus: JAX and CuPy programs larger than the VRAM limit",
    "",
    "Every array stays alive to the end, so the working set is the sum of them; each is read by three passes " +
      "(a mixing sum, a chained multiply-add, and two rounds of float matrix-vector products). The integer results " +
      "are exact and order-independent; the float chain is compared bit for bit (XLA runs with " +
      "`--xla_gpu_deterministic_ops=true --xla_gpu_autotune_level=0` in every run). Spillover runs set " +
      "`SPILLOVER_PINNED_LIMIT` (column *pinned limit*): the interposer reports VRAM limit + pinned limit as the " +
      "card's total memory, and XLA's default preallocation takes 75% of what is reported free. XLA allocates " +
      "through its own `cuMemCreate`, which spillover backs with pinned host memory past the VRAM budget: that " +
      "memory is in the column *program VMM in host* (at the end of the run), not in the pinned pool.",
    "",
    table(
      [
        "run",
        "allocator",
        "VRAM limit",
        "working set",
        "over limit",
        "status",
        "results vs reference",
        "pinned limit",
        "pinned pool peak",
        "program VMM in host",
        "compute time (one run: not a speed result)",
      ],
      rows,
    ),
  ].join("\n");
}

function failuresSection(a: Analysis): string {
  if (a.failures.length === 0) return "";
  const out = ["## Failed and skipped workloads", ""];
  for (const f of a.failures) {
    out.push(
      `### ${f.id}: ${f.status}${f.duration_s ? ` after ${f.duration_s.toFixed(0)} s` : ""}`,
      "",
    );
    out.push("```", (f.error ?? "(no output)").trim(), "```", "");
  }
  return out.join("\n");
}

function methodSection(r: BenchResults): string {
  const lean = r.workloads.some((w) => w.group === "llm" && w.metrics?.decode.method !== undefined);
  const decode = lean
    ? [
        "- Decode: greedy, batch 1, from a 512-token prompt, the way serving systems run it: the prompt fills a static KV " +
          "cache, then one-token steps of the model's own forward, captured once into a CUDA graph and replayed (MoE " +
          "models and accelerate run the same loop without a graph: HF's MoE routing syncs with the host, accelerate copies " +
          "weights per forward). A warm-up run, then 5 timed runs of the same N steps; tokens/s is the median, with the " +
          "slowest and fastest run beside it. N scales with the measured cost of a step. TTFT: the prompt into the cache " +
          "and the first token, median of 5 after a warm-up. A difference between runs whose ranges overlap is not a result.",
        "- Prefill: one forward pass over a 512- and a 2048-token prompt, logits for the last position only; a warm-up, then " +
          "the median of 5.",
      ]
    : [
        "- Decode: greedy `generate` from a 512-token prompt; tokens/s = (N − 1) / (time for N tokens − time for 1). " +
          "N scales with the measured cost of a step (few tokens for slow runs). TTFT is the time of `generate` with one new token.",
        "- Prefill: one forward pass over a 512- and a 2048-token prompt, logits for the last position only, repeated while cheap.",
      ];
  return [
    "## How it was measured",
    "",
    "- Models are built with random weights, in bf16, directly on the GPU from a fixed seed, so every run of a model holds " +
      "bit-identical weights (checked with an exact checksum of every parameter; a mismatch shows as *weights differ*). " +
      "Speed does not depend on the weights' values.",
    `- Spillover runs: \`SPILLOVER_VRAM_LIMIT\` = fraction × weight bytes + ${fmtGB(r.allowance_bytes)} and ` +
      `\`SPILLOVER_VRAM_RESERVE\` = ${fmtGB(r.reserve_bytes ?? r.allowance_bytes)}. The interposer lets only requests up to ` +
      "`SPILLOVER_THRESHOLD` (2 MiB by default) use the reserve; larger ones, weights included, share limit − reserve, and the " +
      "bounds take (limit − reserve) ÷ weight bytes, at most 1, as the weights' VRAM share. " +
      'accelerate runs get the same limit as `max_memory={0: limit, "cpu": ...}` through the device map ' +
      '`device_map="auto"` builds (`infer_auto_device_map` + `dispatch_model`), so accelerate may use the allowance for weights too.',
    ...decode,
    "- Physical bound for decode: the best placement of the VRAM share (the embedding table in host memory, the bytes every " +
      "token reads in VRAM, experts sharing the rest evenly); bytes that must cross the link per token ÷ the pinned copy " +
      "bandwidth measured in this run, plus bytes read from VRAM ÷ the VRAM bandwidth measured in this run.",
    "- Copy bound for prefill: copy the host-resident weights to VRAM once at the measured link bandwidth, then compute as fast " +
      "as the run without spillover did.",
    "- Token equality: each run's greedy tokens against the reference run of the same model (the run without spillover " +
      "when it ran; otherwise spillover at a 100% limit, otherwise accelerate at its largest limit); the last-position logits " +
      "of the 512-token prefill are also compared bit for bit. A difference is *differ (the program differs between its own " +
      "runs too)* when a run without spillover varies as well: the reference repeated in its own process (the " +
      "`reference-repeat` workload) or a determinism record in `bench/results/runs/` (see bench/README.md); it is a " +
      "**real finding** when the repeated reference gave identical tokens, and a plain **differ** when nothing tells.",
    "- Each workload runs in its own process; a crash, OOM or timeout is recorded with the end of its output.",
  ].join("\n");
}

function banner(r: BenchResults): string {
  const out: string[] = [];
  if (r.fixture) {
    out.push(
      "> **FIXTURE DATA, NOT A MEASUREMENT.** This report was rendered from a hand-written test fixture; " +
        "run `bash bench/run_suite.sh` on a GPU and render its results instead.",
    );
  }
  if (r.smoke) {
    out.push(
      "> **Smoke run**: tiny models and few tokens; it checks that the suite works and says nothing about speed.",
    );
  }
  return out.join("\n>\n");
}

export function renderReport(r: BenchResults, opts: RenderOptions): RenderedReport {
  const a = analyse(r, opts.records ?? NO_RECORDS);
  const images = new Map<string, string>();
  const img = (name: string, svg: string | null, alt: string): string => {
    if (!svg) return "";
    images.set(name, svg);
    return `![${alt}](${opts.imgDir}/${name})`;
  };
  const parts: string[] = [
    "# spillover benchmarks",
    "",
    `<!-- Generated by \`npm run bench:report\` from ${opts.source}. Do not edit by hand. -->`,
    "",
  ];
  const b = banner(r);
  if (b) parts.push(b, "");
  parts.push(
    `Results of \`${r.command}\` on ${r.host.gpu_name ?? r.host.card} (${r.created_utc}), from \`${opts.source}\`.`,
    "",
    claimsSection(a),
    "",
  );
  const tokens = tokenSection(a);
  if (tokens) parts.push(tokens, "");
  const charts = [
    img(
      "bench-bound-fraction.svg",
      boundFractionChart(a),
      "decode as a fraction of the physical bound",
    ),
    img("bench-speedup.svg", speedupChart(a), "decode speed-up over accelerate"),
    img("bench-prefill-2048.svg", prefillChart(a), "prefill at 2048 tokens"),
  ].filter((x) => x);
  if (charts.length) parts.push(charts.join("\n\n"), "");
  parts.push(runSection(r), "");
  for (const m of a.models) {
    const f = m.facts;
    const title = f
      ? `## ${m.id}: ${f.arch}, ${(f.params / 1e9).toFixed(2)} B parameters, ${fmtGB(f.weight_bytes)} of ${f.dtype} weights`
      : `## ${m.id}`;
    parts.push(title, "", factsTable(m), "");
    if (m.rows.some((x) => x.decodeTps !== null)) {
      parts.push(
        img(`bench-decode-${m.id}.svg`, decodeChart(m), `${m.id} decode tokens/s by VRAM limit`),
        "",
      );
    }
    parts.push(resultsTable(m), "");
    const repeat = repeatLine(m);
    parts.push(
      (m.reference
        ? `Tokens compared against the ${m.reference} run (greedy decoding).`
        : "No run completed that could serve as the token reference.") +
        (repeat ? ` ${repeat}` : ""),
      "",
    );
    const placement = placementSection(m);
    if (placement) parts.push(placement, "");
  }
  const arrays = arraysSection(a);
  if (arrays) parts.push(arrays, "");
  const fails = failuresSection(a);
  if (fails) parts.push(fails);
  parts.push(methodSection(r), "");
  return { markdown: parts.join("\n"), images };
}

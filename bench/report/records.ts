// Extra GPU records (bench/results/runs/*.json) that the report may cite next to a suite run:
// determinism diagnoses (does the program give the same tokens on its own?) and follow-up runs of
// one suite workload with one setting changed. Pure parsing and matching; report-cli.ts reads the
// files. A record that fits neither shape is ignored: other tools keep their notes there too.

import { z } from "zod";

/** One file from bench/results/runs/, as read from disk. */
export interface RawRecord {
  /** path as the report names it, e.g. bench/results/runs/2026-11-27-h100-determinism-diag.json */
  readonly file: string;
  readonly data: unknown;
}

const DeterminismRunSchema = z.object({
  label: z.string(),
  tokens: z.array(z.number().int()),
  /** true when this process ran under spillover; absent: taken from the label (see noSpillover) */
  spillover: z.boolean().optional(),
  /** the process's two repetitions of generate gave the same tokens */
  rep_equal: z.boolean().optional(),
  weights_same: z.boolean().optional(),
});

const DeterminismRecordSchema = z.object({
  /** the suite's model id; records without one match by tokens (see determinismFor) */
  model: z.string().optional(),
  runs: z.array(DeterminismRunSchema).min(1),
});

export type DeterminismRun = z.infer<typeof DeterminismRunSchema>;

export interface DeterminismRecord {
  readonly file: string;
  readonly model: string | null;
  readonly runs: readonly DeterminismRun[];
}

const FollowUpRunSchema = z.object({
  prefill_2048_tok_s: z.number().positive().optional(),
  decode_tok_s: z.number().positive().optional(),
});

const FollowUpRecordSchema = z.object({
  runs: z.record(z.string(), FollowUpRunSchema),
  /** What the follow-up established, in one or two sentences, when it found a cause. */
  finding: z.string().min(1).optional(),
  /** created_utc of the suite run it follows up; absent: it applies to any run of the workload. */
  follows: z.string().min(1).optional(),
});

/** A suite workload run again with something changed: runs keyed "<workload id> <change>". */
export interface FollowUp {
  readonly file: string;
  readonly workload: string;
  readonly change: string;
  readonly prefill2048Tps: number | null;
  readonly decodeTps: number | null;
  /** The record's `finding`, shared by all its runs; null when it established no cause. */
  readonly finding: string | null;
  /** created_utc of the suite run it follows up (another run's numbers are not comparable). */
  readonly follows: string | null;
}

export interface Records {
  readonly determinism: readonly DeterminismRecord[];
  readonly followUps: readonly FollowUp[];
}

export const NO_RECORDS: Records = { determinism: [], followUps: [] };

function baseName(file: string): string {
  return file.split(/[\\/]/).pop() ?? file;
}

export function parseRecords(raw: readonly RawRecord[]): Records {
  const determinism: DeterminismRecord[] = [];
  const followUps: FollowUp[] = [];
  for (const r of raw) {
    if (baseName(r.file).includes("determinism")) {
      const d = DeterminismRecordSchema.safeParse(r.data);
      if (d.success)
        determinism.push({ file: r.file, model: d.data.model ?? null, runs: d.data.runs });
      continue;
    }
    const f = FollowUpRecordSchema.safeParse(r.data);
    if (!f.success) continue;
    for (const [key, v] of Object.entries(f.data.runs)) {
      const space = key.indexOf(" ");
      if (space <= 0) continue;
      followUps.push({
        file: r.file,
        workload: key.slice(0, space),
        change: key.slice(space + 1).trim(),
        prefill2048Tps: v.prefill_2048_tok_s ?? null,
        decodeTps: v.decode_tok_s ?? null,
        finding: f.data.finding ?? null,
        follows: f.data.follows ?? null,
      });
    }
  }
  return { determinism, followUps };
}

/** A run of a determinism record that had no interposer: its `spillover` flag, else its label. */
export function noSpillover(run: DeterminismRun): boolean {
  if (run.spillover !== undefined) return !run.spillover;
  return /^(baseline|reference|no[- ]spillover)/i.test(run.label);
}

/** Index of the first difference on the common prefix, or null when that prefix is equal. */
export function firstDifference(a: readonly number[], b: readonly number[]): number | null {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return null;
}

// Matching by tokens needs a prefix long enough that random-weight models cannot collide.
const MIN_MATCH_TOKENS = 8;

function samePrefix(a: readonly number[], b: readonly number[]): boolean {
  return Math.min(a.length, b.length) >= MIN_MATCH_TOKENS && firstDifference(a, b) === null;
}

/** The determinism records about a model: those naming it, and those without a model whose runs
 * include one that reproduced the model's reference tokens (the record is about that program). */
export function determinismFor(
  recs: Records,
  model: string,
  referenceTokens: readonly number[] | null,
): DeterminismRecord[] {
  return recs.determinism.filter((d) =>
    d.model !== null
      ? d.model === model
      : referenceTokens !== null && d.runs.some((r) => samePrefix(r.tokens, referenceTokens)),
  );
}

export function followUpsFor(recs: Records, workload: string, runCreatedUtc: string): FollowUp[] {
  return recs.followUps.filter(
    (f) => f.workload === workload && (f.follows === null || f.follows === runCreatedUtc),
  );
}

/** The record's file name without directories, as the report cites it (runs/<name>). */
export function citeName(file: string): string {
  return `runs/${baseName(file)}`;
}

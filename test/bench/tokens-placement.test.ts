// Token equality and placement notes in the report: a run whose tokens differ is "differ (the
// program differs between its own runs too)" only when a run without spillover varies as well (a
// repeat of the reference, or a determinism record), a loud real finding when the repeated
// reference was identical, and a plain loud "differ" when nothing tells. Placement notes state
// measured bytes against what the limit requires and never name a cause the data cannot show.

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { analyse } from "../../bench/report/analysis.js";
import { parseRecords, type RawRecord } from "../../bench/report/records.js";
import { renderReport } from "../../bench/report/report.js";
import { entry, fixture, type rawFixture } from "./fixture.js";

const RECORDS_DIR = join(import.meta.dirname, "..", "fixtures", "bench", "records");

function rawRecords(only?: (name: string) => boolean): RawRecord[] {
  return readdirSync(RECORDS_DIR)
    .filter((n) => n.endsWith(".json") && (!only || only(n)))
    .map((n) => ({
      file: `bench/results/runs/${n}`,
      data: JSON.parse(readFileSync(join(RECORDS_DIR, n), "utf8")),
    }));
}

type Raw = ReturnType<typeof rawFixture>;

/** The determinism record's no-spillover tokens: the reference's up to token 15, then others. */
function recordBaselineTokens(): number[] {
  const rec = rawRecords((n) => n.includes("determinism"))[0]?.data as {
    runs: { label: string; tokens: number[] }[];
  };
  return rec.runs.find((r) => r.label === "baseline")?.tokens ?? [];
}

/** dense-20g at 75% now gives `tokens`. */
function withTokens(raw: Raw, id: string, tokens: number[]) {
  entry(raw, id).metrics.tokens = tokens;
}

function repeatEntry(raw: Raw, model: string, tokens: number[], sameInProcess = true) {
  const base = entry(raw, `${model}/baseline`);
  raw.workloads.push({
    id: `${model}/reference-repeat`,
    group: "llm-repeat",
    model,
    mode: "reference-repeat",
    variant: null,
    fraction: null,
    vram_limit_bytes: null,
    spillover: false,
    spec: { mode: "reference-repeat", decode_tokens: tokens.length, decode_reps: 2 },
    status: "ok",
    error: null,
    exit_code: 0,
    duration_s: 22.5,
    timeout_s: 180,
    metrics: {
      facts: base.metrics.facts,
      weights_checksum: base.metrics.weights_checksum,
      build_s: 0.5,
      checksum_s: 0.5,
      decode: {
        new_tokens: tokens.length,
        runs: [
          { seconds: 6.1, same_tokens_as_first: true },
          { seconds: 6.0, same_tokens_as_first: sameInProcess },
        ],
      },
      tokens,
    },
    spill_stats: null,
    vram_used_smi_mib: null,
    env: {},
  });
}

const opts = { source: "bench/results/2026-11-27-h100-80gb-hbm3.json", imgDir: "img" };

function rowLine(md: string, model: string, label: string): string {
  const section = md.split(`## ${model}:`)[1] ?? "";
  const line = section.split("\n").find((l) => l.startsWith(`| ${label} |`));
  if (!line) throw new Error(`no row ${label} for ${model}`);
  return line;
}

describe("token equality wording", () => {
  it("says the program differs between its own runs when a determinism record's run without spillover gave these same tokens", () => {
    const r = fixture((raw) => withTokens(raw, "dense-20g/spillover-75", recordBaselineTokens()));
    const { markdown } = renderReport(r, { ...opts, records: parseRecords(rawRecords()) });
    const line = rowLine(markdown, "dense-20g", "spillover 75%");
    expect(line).toContain(
      "differ (the program differs between its own runs too): from the 16th token on, 32 compared",
    );
    expect(line).not.toContain("**differ");
    expect(markdown).toContain("## Token equality");
    expect(markdown).toMatch(
      /- dense-20g, spillover 75%: differ \(the program differs.*A separate run without spillover \("baseline" in runs\/2026-11-27-h100-determinism-sample\.json\) diverged from the reference at the same token with these same tokens/,
    );
    expect(markdown).toContain('runs under spillover there ("s75") gave the reference\'s tokens');
    expect(markdown).toContain(
      'two repetitions of generate within one process differed (under spillover: "s75" in runs/2026-11-27-h100-determinism-sample.json)',
    );
    expect(markdown).not.toContain("**differ: a real finding**");
  });

  it("says the same from an in-suite repeat of the reference that diverged the same way", () => {
    const alt = recordBaselineTokens();
    const r = fixture((raw) => {
      withTokens(raw, "dense-20g/spillover-75", alt);
      repeatEntry(raw, "dense-20g", alt);
    });
    const { markdown } = renderReport(r, opts);
    expect(rowLine(markdown, "dense-20g", "spillover 75%")).toContain(
      "differ (the program differs between its own runs too)",
    );
    expect(markdown).toMatch(
      /- dense-20g, spillover 75%: differ \(the program differs between its own runs too\).*\. The reference repeated without spillover \(dense-20g\/reference-repeat\) gave these same tokens/,
    );
    expect(markdown).toMatch(
      /The reference repeated without spillover in its own process \(dense-20g\/reference-repeat\) differed from it from the 16th token on \(32 compared\): the program differs between its own runs/,
    );
  });

  it("flags a real finding loudly when spillover differs but the repeated reference was identical", () => {
    const alt = recordBaselineTokens();
    const r = fixture((raw) => {
      withTokens(raw, "dense-20g/spillover-75", alt);
      const ref = entry(raw, "dense-20g/baseline").metrics.tokens as number[];
      repeatEntry(raw, "dense-20g", [...ref]);
    });
    const { markdown } = renderReport(r, opts);
    const line = rowLine(markdown, "dense-20g", "spillover 75%");
    expect(line).toContain(
      "**differ: a real finding**: from the 16th token on, 32 compared, while the reference repeated without spillover was identical",
    );
    expect(line).not.toContain("differs between its own runs too");
    expect(markdown).toMatch(
      /> \*\*1 run gives different tokens from the reference while the reference repeated without spillover gave identical ones: dense-20g spillover 75%\. This is a real difference to investigate/,
    );
    expect(markdown).toContain(
      "The reference repeated without spillover in its own process (dense-20g/reference-repeat) gave the same tokens (64 compared); its repetitions within the process agreed.",
    );
  });

  it("keeps a real finding loud even when a record shows the program varies in other ways", () => {
    const r = fixture((raw) => {
      // different alternative tokens from the record's no-spillover run
      const toks = entry(raw, "dense-20g/spillover-75").metrics.tokens as number[];
      toks[20] = (toks[20] as number) + 1;
      const ref = entry(raw, "dense-20g/baseline").metrics.tokens as number[];
      repeatEntry(raw, "dense-20g", [...ref]);
    });
    const { markdown } = renderReport(r, { ...opts, records: parseRecords(rawRecords()) });
    expect(rowLine(markdown, "dense-20g", "spillover 75%")).toContain("**differ: a real finding**");
  });

  it("says plainly and loudly that it differs, and that nothing tells why, without a repeat or record", () => {
    const r = fixture((raw) => {
      const toks = entry(raw, "dense-8g/spillover-50").metrics.tokens as number[];
      toks[3] = (toks[3] as number) + 1;
    });
    const { markdown } = renderReport(r, opts);
    expect(rowLine(markdown, "dense-8g", "spillover 50%")).toContain(
      "**differ** from the 4th token on, 64 compared (not known whether the program differs between its own runs)",
    );
    expect(markdown).toContain(
      "No repeat of the reference run (and no determinism record) tells whether the program gives different tokens on its own.",
    );
  });

  it("uses a record only for the model it is about: by its model field, else by reproducing the reference's tokens", () => {
    const alt = recordBaselineTokens();
    const named = (model: string): RawRecord[] =>
      rawRecords((n) => n.includes("determinism")).map((x) => ({
        file: x.file,
        data: { ...(x.data as object), model },
      }));
    const r = fixture((raw) => withTokens(raw, "dense-20g/spillover-75", alt));
    const other = analyse(r, parseRecords(named("dense-8g")));
    const row = (a: ReturnType<typeof analyse>) =>
      a.models.find((m) => m.id === "dense-20g")?.rows.find((x) => x.label === "spillover 75%");
    expect(row(other)?.tokens.kind).toBe("unknown");
    expect(row(analyse(r, parseRecords(named("dense-20g"))))?.tokens.kind).toBe("program");
    // without a model field, a record whose runs reproduce no reference of this model is ignored
    const r2 = fixture((raw) => {
      withTokens(raw, "dense-20g/spillover-75", alt);
      const ref = entry(raw, "dense-20g/baseline").metrics.tokens as number[];
      ref[0] = (ref[0] as number) + 1;
    });
    expect(row(analyse(r2, parseRecords(rawRecords())))?.tokens.kind).toBe("unknown");
  });

  it("ignores records of other shapes", () => {
    const recs = parseRecords(rawRecords((n) => n.includes("hwprobe")));
    expect(recs.determinism).toHaveLength(0);
    expect(recs.followUps).toHaveLength(0);
  });

  it("writes equal rows as equal", () => {
    const { markdown } = renderReport(fixture(), { ...opts, records: parseRecords(rawRecords()) });
    expect(rowLine(markdown, "dense-20g", "spillover 75%")).toContain("| equal (60) |");
    expect(markdown).not.toContain("## Token equality");
  });
});

describe("placement notes", () => {
  const slow100 = (raw: Raw) => {
    const e = entry(raw, "dense-8g/spillover-100");
    e.spill_stats.tier_pinned_bytes = 648019968;
    e.spill_stats.pinned_peak_bytes = 671088640;
    e.metrics.prefill["2048"].seconds = 2048 / 1016;
    e.metrics.prefill["2048"].tokens_per_s = 1016;
  };

  it("states the 100% run's host bytes against limit − reserve and the weights, and no cause it cannot show", () => {
    const { markdown } = renderReport(fixture(slow100), {
      ...opts,
      records: parseRecords(rawRecords()),
    });
    const line = markdown.split("\n").find((l) => l.startsWith("- spillover 100%:")) ?? "";
    expect(line).toContain("0.65 GB in pinned host memory at exit (peak 0.67 GB)");
    expect(line).toContain(
      "requests over SPILLOVER_THRESHOLD (2 MiB, the default) share limit − reserve = 8.38 GB of VRAM (10.52 GB − 2.15 GB; the reserve serves only requests up to the threshold) against 8.38 GB of weights, so the limit requires no weight in host memory and leaves 0.00 GB for every other request over the threshold",
    );
    expect(line).toContain(
      "which allocations (weights, activations, allocator rounding) hold them is not recorded",
    );
    expect(line).toContain(
      "prefill at 2048 tokens ran 44.8x slower than without spillover (1016 against 45500 tok/s); cause not established",
    );
    expect(line).toContain(
      "a follow-up run with SPILLOVER_THRESHOLD=64M: prefill 2048 about the same: 1021 tok/s against 1016 here, decode 13.9 tok/s against",
    );
    expect(line).toContain("(see runs/2026-11-27-h100-threshold-sample.json)");
    expect(line).not.toMatch(/because|caused by|were placed in host memory/);
  });

  it("states the cause when a follow-up record established one, and cites it", () => {
    const finding = {
      file: "bench/results/runs/2026-11-27-h100-threshold-found.json",
      data: {
        finding: "FIXTURE: host-backed segments were recycled for activations.",
        runs: { "dense-8g/spillover-100 SPILLOVER_THRESHOLD=1G": { prefill_2048_tok_s: 45000 } },
      },
    };
    const { markdown } = renderReport(fixture(slow100), {
      ...opts,
      records: parseRecords([...rawRecords(), finding]),
    });
    const line = markdown.split("\n").find((l) => l.startsWith("- spillover 100%:")) ?? "";
    expect(line).toContain(
      "cause, found by a follow-up (runs/2026-11-27-h100-threshold-found.json): FIXTURE: host-backed segments were recycled for activations.",
    );
    expect(line).not.toContain("cause not established");
    expect(line).toContain(
      "a follow-up run with SPILLOVER_THRESHOLD=1G: prefill 2048 changed: 45000 tok/s",
    );
  });

  it("says what the limit requires in host memory below 100%", () => {
    const { markdown } = renderReport(fixture(), opts);
    const dense20 = markdown.split("## dense-20g:")[1] ?? "";
    expect(dense20).toMatch(
      /- spillover 50%: 10\.28 GB in pinned host memory at exit .*so the limit requires 10\.24 GB of weights in host memory; 0\.04 GB were in host memory beyond what the limit requires/,
    );
  });

  it("takes limit − reserve as the weights' VRAM share for the bounds: a smaller reserve raises the share", () => {
    const before = analyse(fixture());
    const after = analyse(
      fixture((raw) => {
        const e = entry(raw, "dense-20g/spillover-50");
        e.env.SPILLOVER_VRAM_RESERVE = String(2 ** 30);
        e.spill_stats.vram_reserve = 2 ** 30;
      }),
    );
    const row = (a: ReturnType<typeof analyse>) =>
      a.models.find((m) => m.id === "dense-20g")?.rows.find((x) => x.label === "spillover 50%");
    expect(row(before)?.weightShare).toBeCloseTo(0.5, 6);
    expect(row(after)?.weightShare).toBeCloseTo(0.5 + 2 ** 30 / 20474193920, 6);
    expect(row(after)?.boundTps ?? 0).toBeGreaterThan(row(before)?.boundTps ?? Infinity);
  });
});

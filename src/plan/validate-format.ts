// The human-readable validation: one table (measured, the planner's own prediction, the calibrated
// one and what it was calibrated with), then the reason for every miss, then the tallies.

import type { Validation, ValidationRow } from "./validate.js";

const GB = 1e9;
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
const pct = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(0)}%`;

function placementCell(r: ValidationRow): string {
  const p = r.placement;
  if (p.source === "vram") return "all in VRAM";
  const w = (p.hostWeightBytes / GB).toFixed(2);
  if (p.source === "limit") return `limit: ${w} GB w`;
  return `${p.source}: ${w} GB w + ${(p.hostOtherBytes / GB).toFixed(2)} other`;
}

function overheadCell(r: ValidationRow): string {
  const src = r.overheadSource.startsWith("no-spillover") ? "baseline" : "planner";
  return `${(r.overheadS * 1e3).toFixed(1)} ms (${src})`;
}

export function formatValidation(v: Validation): string {
  const head = [
    "run",
    "metric",
    "measured tok/s",
    "planner",
    "error",
    "host bytes",
    "overhead",
    "calibrated",
    "error",
    "verdict",
  ];
  const cells = v.rows.map((r) => [
    r.run,
    r.metric,
    fmt(r.measured),
    fmt(r.predicted),
    pct(r.errorPct),
    placementCell(r),
    overheadCell(r),
    fmt(r.calibrated),
    pct(r.calibratedErrorPct),
    r.verdict,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: readonly string[]) =>
    c
      .map((x, i) => x.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const m = v.machine;
  const out = [
    `predictions vs ${v.source} on ${m.gpuName} (VRAM ${m.vramGBs.toFixed(0)} GB/s, link ${m.h2dGBs.toFixed(1)} GB/s copy, ${m.zeroCopyGBs.toFixed(1)} GB/s zero-copy); program: ${v.program.expertReads} experts read per forward`,
    "planner: placement from the VRAM limit, the planner's 1 ms step overhead. calibrated: placement from the run's spill_stats (host bytes: weights + other), the program's overhead from its no-spillover run (baseline rows are that source and are not counted: exact by construction, except where the model's GPU time alone exceeds the measurement)",
    "",
    line(head),
    ...cells.map(line),
    "",
  ];
  const notes = v.rows.filter((r) => r.reason !== null && r.verdict !== "calibration");
  if (notes.length > 0) {
    out.push("why (computed from the results):");
    for (const r of notes) out.push(`  ${r.run} ${r.metric}: ${r.reason}`);
    out.push("");
  }
  const calib = v.rows.filter((r) => r.verdict === "calibration");
  if (calib.length > 0) {
    out.push("calibration sources:");
    for (const r of calib) out.push(`  ${r.run} ${r.metric}: ${r.reason}`);
    out.push("");
  }
  const tally = Object.entries(v.byMetric)
    .filter(([, t]) => t.total > 0)
    .map(([k, t]) => `${k} ${t.within}/${t.total}`)
    .join(", ");
  out.push(
    `${v.within25} of ${v.validated} spillover predictions within ${v.tolerancePct}% calibrated (${tally}); planner alone: ${v.plannerWithin25} of ${v.validated}`,
  );
  for (const s of v.skipped) out.push(`skipped  ${s}`);
  return out.join("\n");
}

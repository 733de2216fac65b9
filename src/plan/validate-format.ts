// The human-readable validation: one table (measured, `spillover plan`'s prediction and its verdict,
// then beside it the calibrated reconstruction and what it was calibrated with), the reconstruction's
// reasons, then the tallies: the prediction's first, the reconstruction's named as such.

import type { Validation, ValidationRow } from "./validate.js";

const GB = 1e9;
const fmt = (x: number) => (x >= 100 ? x.toFixed(0) : x.toFixed(2));
const pct = (x: number) => `${x >= 0 ? "+" : ""}${x.toFixed(0)}%`;

function placementCell(p: ValidationRow["placement"]): string {
  if (p.source === "vram") return "all in VRAM";
  const w = (p.hostWeightBytes / GB).toFixed(2);
  if (p.source === "limit" || p.source === "planner") return `${p.source}: ${w} GB w`;
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
    "predicted",
    "error",
    "host bytes",
    "verdict",
    "| reconstruction: host bytes",
    "overhead",
    "tok/s",
    "error",
    "verdict",
  ];
  const cells = v.rows.map((r) => [
    r.run,
    r.metric,
    fmt(r.measured),
    fmt(r.predicted),
    pct(r.errorPct),
    placementCell(r.predictedPlacement),
    r.verdict,
    `| ${placementCell(r.placement)}`,
    overheadCell(r),
    fmt(r.calibrated),
    pct(r.calibratedErrorPct),
    r.calibratedVerdict,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  const line = (c: readonly string[]) =>
    c
      .map((x, i) => x.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  const m = v.machine;
  const out = [
    `predictions vs ${v.source} on ${m.gpuName} (VRAM ${m.vramGBs.toFixed(0)} GB/s, link ${m.h2dGBs.toFixed(1)} GB/s copy, ${m.zeroCopyGBs.toFixed(1)} GB/s zero-copy)`,
    "predicted: what `spillover plan` says for the run's model and VRAM limit, placing the bytes itself; nothing is taken from the run. Baseline rows (no spillover) are predicted all in VRAM and not counted.",
    `calibrated reconstruction (beside it, not a prediction): the same model fed the run's measured placement (weights + other) and the program's overhead from its no-spillover run; program: ${v.program.expertReads} experts read per forward`,
    "",
    line(head),
    ...cells.map(line),
    "",
  ];
  const notes = v.rows.filter((r) => r.reason !== null && r.calibratedVerdict !== "calibration");
  if (notes.length > 0) {
    out.push("calibrated reconstruction, why (computed from the results):");
    for (const r of notes) out.push(`  ${r.run} ${r.metric}: ${r.reason}`);
    out.push("");
  }
  const calib = v.rows.filter((r) => r.calibratedVerdict === "calibration");
  if (calib.length > 0) {
    out.push("calibration sources:");
    for (const r of calib) out.push(`  ${r.run} ${r.metric}: ${r.reason}`);
    out.push("");
  }
  const tally = (t: Validation["byMetric"]) =>
    Object.entries(t)
      .filter(([, x]) => x.total > 0)
      .map(([k, x]) => `${k} ${x.within}/${x.total}`)
      .join(", ");
  out.push(
    `prediction: ${v.within25} of ${v.validated} spillover points within ${v.tolerancePct}% (${tally(v.byMetric)})`,
    `calibrated reconstruction (uses the measured placement and overhead): ${v.calibratedWithin25} of ${v.validated} (${tally(v.calibratedByMetric)})`,
  );
  for (const s of v.skipped) out.push(`skipped  ${s}`);
  return out.join("\n");
}

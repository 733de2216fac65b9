// The human-readable plan: fixed columns padded with padEnd, then the winner, its command and why.

import type { PlanJson } from "./plan.js";
import type { StrategyResult } from "./strategies.js";

const GiB = 2 ** 30;
const gib = (b: number) => `${(b / GiB).toFixed(1)}`;
const rate = (r: number | null) => (r === null ? "-" : r >= 100 ? r.toFixed(0) : r.toFixed(1));
const dur = (s: number | null) =>
  s === null ? "-" : s >= 100 ? `${s.toFixed(0)}s` : `${s.toFixed(1)}s`;

function row(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
    .join("  ")
    .trimEnd();
}

export function formatPlan(p: PlanJson): string {
  const m = p.model;
  const hw = p.machine;
  const w = p.workload;
  const lines: string[] = [];
  const moe = m.experts > 0 ? `, MoE ${m.expertsUsed}/${m.experts} experts` : "";
  lines.push(
    `model    ${m.name} (${m.architecture}, ${m.layers} layers${moe}): ${gib(m.weightBytes)} GiB weights, ${gib(m.activeBytesPerToken)} GiB read per token, KV ${(m.kvBytesPerToken / 1024).toFixed(0)} KiB/token (${w.kvType})`,
  );
  lines.push(
    `machine  ${hw.gpuName} ${gib(hw.vramBytes)} GiB VRAM at ${hw.vramGBs.toFixed(0)} GB/s (${hw.vramSource}); link ${hw.h2dGBs.toFixed(1)} GB/s copy, ${hw.zeroCopyGBs.toFixed(1)} GB/s zero-copy (${hw.linkSource}); RAM ${hw.ramGBs.toFixed(1)} GB/s (${hw.ramSource}), ${hw.cpuThreads} threads`,
  );
  lines.push(
    `workload prompt ${w.prompt}, generate ${w.gen}, batch ${w.batch}, context ${w.ctx}, micro-batch ${Math.min(w.ubatch, w.prompt * w.batch)}`,
  );
  lines.push("");
  const header = [
    "strategy",
    "prefill tok/s",
    "decode tok/s",
    "VRAM GiB",
    "RAM GiB",
    "total",
    "notes",
  ];
  const cells = p.strategies.map((s: StrategyResult) => [
    s.name,
    rate(s.prefillTokS),
    rate(s.decodeTokS),
    s.feasible ? gib(s.memory.vramBytes) : "-",
    s.feasible ? gib(s.memory.hostBytes) : "-",
    dur(s.totalSeconds),
    s.feasible ? (s.notes[0] ?? "") : `not possible: ${s.whyNot ?? ""}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] ?? "").length)));
  lines.push(row(header, widths));
  for (const c of cells) lines.push(row(c, widths));
  lines.push("");
  if (p.winner) {
    lines.push(`winner   ${p.winner.name}`);
    lines.push(`why      ${p.winner.why}`);
    lines.push(`command  ${p.winner.command}`);
  } else {
    lines.push("winner   none: no strategy fits this machine (see the reasons above)");
  }
  return lines.join("\n");
}

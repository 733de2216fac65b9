// `spillover top`'s screen as a pure function of its state: renderFrame(state, cols, rows) returns
// exactly `rows` lines, none wider than `cols`, so it is unit-tested like any other string.

import type { MemorySample } from "../../broker/pressure.js";
import type { BrokerStatus } from "../../broker/status.js";
import { formatBusy, streamActive, sumStream } from "../../broker/view.js";
import { formatBytes } from "../../util/size.js";

export interface TopState {
  readonly now: Date;
  readonly status: BrokerStatus;
  /** Read by `top` itself when no broker runs (the broker's status carries its own). */
  readonly memory?: MemorySample | undefined;
}

function bar(frac: number, width: number): string {
  const w = Math.max(0, width);
  const n = Math.round(Math.min(1, Math.max(0, frac)) * w);
  return `[${"#".repeat(n)}${".".repeat(w - n)}]`;
}

function clip(s: string, cols: number): string {
  return s.length > cols ? s.slice(0, Math.max(0, cols)) : s;
}

export function renderFrame(state: TopState, cols: number, rows: number): string[] {
  const s = state.status;
  const lines: string[] = [];
  const time = state.now.toISOString().slice(11, 19);
  const who = s.broker ? `broker pid ${s.broker.pid}` : "no broker (stats records)";
  const head = `spillover top  ${time}  ${who}`;
  const hint = "q: quit";
  lines.push(
    head.length + hint.length + 2 <= cols
      ? head + " ".repeat(cols - head.length - hint.length) + hint
      : head,
  );

  const memTotal = s.broker ? s.pressure.memTotal : (state.memory?.mem.memTotal ?? 0);
  const memAvail = s.broker ? s.pressure.memAvailable : (state.memory?.mem.memAvailable ?? 0);
  const psiSome = s.broker ? s.pressure.psiSome : (state.memory?.psi?.someAvg10 ?? null);
  const psiFull = s.broker ? s.pressure.psiFull : (state.memory?.psi?.fullAvg10 ?? null);
  const barW = Math.max(5, Math.min(30, cols - 60));
  const used = memTotal > 0 ? (memTotal - memAvail) / memTotal : 0;
  lines.push(
    `RAM    ${bar(used, barW)} ${formatBytes(memTotal - memAvail)} used of ${formatBytes(memTotal)}, available ${formatBytes(memAvail)}` +
      (s.broker ? `  pressure ${s.pressure.level.toUpperCase()}` : ""),
  );
  lines.push(
    `PSI    some avg10 ${psiSome === null ? "n/a" : psiSome.toFixed(2)}%  full avg10 ${psiFull === null ? "n/a" : psiFull.toFixed(2)}%`,
  );
  if (s.broker) {
    const b = s.budgets;
    lines.push(
      `LEASE  ${bar(b.pinnedBudget > 0 ? b.pinnedLeased / b.pinnedBudget : 0, barW)} pinned ${formatBytes(b.pinnedLeased)} leased of ${formatBytes(b.pinnedBudget)}, ${s.clients.length} client(s)`,
    );
  } else {
    lines.push("LEASE  no broker: each process uses its own standalone budget");
  }
  const sum = (f: (p: (typeof s.processes)[number]) => number) =>
    s.processes.reduce((a, p) => a + f(p), 0);
  lines.push(
    `TIERS  VRAM ${formatBytes(sum((p) => p.vram))}   pinned ${formatBytes(sum((p) => p.pinned))}   OOMs ${sum((p) => p.ooms)}`,
  );
  const st = sumStream(s.processes);
  if (streamActive(st)) {
    lines.push(
      `STREAM staged ${formatBytes(st.stagedBytes)} in ${st.stagedRanges} ranges   budget ${formatBytes(st.budgetBytes)}   copy engine busy ${formatBusy(st.copyBusyNs)}`,
      `       hits ${st.stageHits}   late ${st.lateStages}   in place ${st.inplaceLaunches}   write-back ${st.writebackPages} pages   fallbacks ${st.fallbacks}`,
    );
  } else {
    lines.push("STREAM nothing staged (streaming off, or no kernel has read host memory)");
  }
  lines.push("");

  // One row per GPU of each process (status does the same); the process's own columns (peak of
  // its pinned pool, lease, bytes staged by the streaming engine, OOMs, mode, command) on its
  // first row.
  const header = [
    "PID",
    "GPU",
    "VRAM",
    "PINNED",
    "PEAK-PIN",
    "LEASE",
    "STAGED",
    "OOMS",
    "MODE",
    "COMMAND",
  ];
  const widths = [8, 4, 9, 9, 9, 9, 9, 5, 11];
  const row = (cells: string[]) =>
    cells
      .map((c, i) => {
        const w = widths[i];
        if (w === undefined) return c;
        return i === 0 || i === 8 ? c.padEnd(w) : c.padStart(w - 1).padEnd(w);
      })
      .join("");
  lines.push(row(header));
  if (s.processes.length === 0) lines.push("  no processes are using spillover");
  const leases = new Map(s.clients.map((c) => [c.pid, c.pinnedLease]));
  const sorted = [...s.processes].sort((a, b) => b.vram + b.pinned - (a.vram + a.pinned));
  for (const p of sorted) {
    const gpus =
      p.gpus.length > 0
        ? p.gpus.map((g) => ({
            gpu: String(g.gpu),
            vram: g.vram + g.passthrough,
            pinned: g.pinned,
          }))
        : [{ gpu: "-", vram: p.vram, pinned: p.pinned }];
    gpus.forEach((g, i) => {
      const first = i === 0;
      lines.push(
        row([
          first ? String(p.pid) : "",
          g.gpu,
          formatBytes(g.vram),
          formatBytes(g.pinned),
          first ? formatBytes(p.pinnedPeak) : "",
          first ? formatBytes(leases.get(p.pid) ?? p.pinnedLease) : "",
          first ? formatBytes(p.stream.stagedBytes) : "",
          first ? String(p.ooms) : "",
          first ? p.mode : "",
          first ? p.command : "",
        ]).trimEnd(),
      );
    });
  }
  const out = lines.slice(0, rows).map((l) => clip(l, cols));
  if (lines.length > rows && rows > 0)
    out[rows - 1] = clip(`... ${lines.length - rows + 1} more`, cols);
  while (out.length < rows) out.push("");
  return out;
}

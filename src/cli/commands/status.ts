// `spillover status [--json]`: every process using spillover (pid, command, bytes per tier and GPU,
// peaks, mode, OOMs, what the streaming engine staged), from the broker's API when a broker runs, else straight from the stats
// records in /dev/shm (skipping records whose process is gone).

import { apiGet, findBroker } from "../../broker/client.js";
import { scanProcesses } from "../../broker/procs.js";
import type { BrokerStatus } from "../../broker/status.js";
import { formatBusy, STREAM_ZERO, streamActive } from "../../broker/view.js";
import { loadConfig } from "../../config/load.js";
import { formatBytes } from "../../util/size.js";
import { defineCommand } from "../command.js";
import { table, uid } from "./shared.js";

export interface StatusSources {
  readonly env: NodeJS.ProcessEnv;
  readonly socket?: string | undefined;
  readonly statsDir: string;
  readonly procRoot?: string;
}

/** From the broker if one answers, else from the stats files (source "stats-files", no budgets). */
export async function collectStatus(s: StatusSources): Promise<BrokerStatus> {
  const sock = await findBroker(s.env, uid(), s.socket);
  if (sock) {
    try {
      const r = await apiGet(sock, "/api/v1/status");
      if (r.status === 200) return fromOlderBroker(JSON.parse(r.body) as BrokerStatus);
    } catch {
      // an old broker without the API socket: fall back to the files
    }
  }
  const scan = await scanProcesses({
    dir: s.statsDir,
    uid: uid(),
    ...(s.procRoot !== undefined ? { procRoot: s.procRoot } : {}),
  });
  return {
    version: 1,
    source: "stats-files",
    broker: null,
    budgets: { pinnedBudget: 0, pinnedLeased: 0, pinnedFree: 0, growStep: 0, vramTotal: {} },
    pressure: {
      level: "ok",
      levelCode: 0,
      why: "no broker",
      memTotal: 0,
      memAvailable: 0,
      swapTotal: 0,
      swapFree: 0,
      psiSome: null,
      psiFull: null,
    },
    clients: [],
    processes: scan.processes,
    events: [],
    eventCounts: {},
  };
}

/** A broker started before the streaming engine's counters existed sends processes without them:
 *  they read as zeros, as the stats record's former padding does. */
function fromOlderBroker(s: BrokerStatus): BrokerStatus {
  return { ...s, processes: s.processes.map((p) => ({ ...p, stream: p.stream ?? STREAM_ZERO })) };
}

/** One line per user the broker holds a quota or leases for: "user alice (uid 1000): ...". */
export function quotaLines(s: BrokerStatus): string[] {
  return (s.users ?? []).map(
    (u) =>
      `user ${u.user ?? "?"} (uid ${u.uid}): pinned leased ${formatBytes(u.pinnedLeased)}` +
      (u.quota === null
        ? ", no quota"
        : ` of quota ${formatBytes(u.quota)} (${u.quotaSource}), ${u.quotaDenials} refused`),
  );
}

export function renderStatus(s: BrokerStatus): string {
  const lines: string[] = [];
  if (s.broker) {
    lines.push(
      `broker pid ${s.broker.pid} at ${s.broker.socket}: pinned leased ${formatBytes(s.budgets.pinnedLeased)} of ${formatBytes(s.budgets.pinnedBudget)}, RAM pressure ${s.pressure.level} (MemAvailable ${formatBytes(s.pressure.memAvailable)})`,
    );
    lines.push(...quotaLines(s));
  } else {
    lines.push("no broker running: read from the stats records");
  }
  if (s.processes.length === 0) {
    lines.push("no processes are using spillover");
    return lines.join("\n");
  }
  // Each byte column and its peak count the same thing: spillover's pages per tier. What the
  // program holds outside the tiers (allocations passed to the driver, its own cuMemCreate) is
  // OTHER, without a peak (the stats record keeps none for the sum).
  const rows: string[][] = [
    [
      "PID",
      "GPU",
      "VRAM",
      "VRAM-PEAK",
      "PINNED",
      "PINNED-PEAK",
      "OTHER",
      "LEASE",
      "MODE",
      "OOMS",
      "COMMAND",
    ],
  ];
  const leases = new Map(s.clients.map((c) => [c.pid, c.pinnedLease]));
  for (const p of s.processes) {
    const gpus = p.gpus.length > 0 ? p.gpus : [undefined];
    gpus.forEach((g, i) => {
      const first = i === 0;
      rows.push([
        first ? String(p.pid) : "",
        g ? String(g.gpu) : "-",
        formatBytes(g ? g.vram - g.programVmm : 0),
        formatBytes(g?.vramPeak ?? 0),
        formatBytes(g ? g.pinned - g.programVmmHost : 0),
        formatBytes(g?.pinnedPeak ?? 0),
        formatBytes(g ? g.passthrough + g.programVmm + g.programVmmHost : 0),
        first ? formatBytes(leases.get(p.pid) ?? p.pinnedLease) : "",
        first ? p.mode + (p.exited ? " (exited)" : "") : "",
        first ? String(p.ooms) : "",
        first ? p.command : "",
      ]);
    });
  }
  lines.push(table(rows, [2, 3, 4, 5, 6, 7, 9]));
  lines.push(
    "VRAM, PINNED: spillover's pages in each tier now, with their peaks; OTHER: allocations passed to the driver and the program's own cuMemCreate",
  );
  lines.push(...streamLines(s));
  return lines.join("\n");
}

/** The streaming engine of each process that has staged anything: one row each, then a legend. */
function streamLines(s: BrokerStatus): string[] {
  const active = s.processes.filter((p) => streamActive(p.stream));
  if (active.length === 0)
    return ["streaming: nothing staged (streaming off, or no kernel has read host memory)"];
  const rows: string[][] = [
    [
      "PID",
      "STAGED",
      "RANGES",
      "HITS",
      "LATE",
      "IN-PLACE",
      "COPY-BUSY",
      "WRITE-BACK",
      "FALLBACKS",
      "BUDGET",
    ],
    ...active.map((p) => {
      const st = p.stream;
      return [
        String(p.pid),
        formatBytes(st.stagedBytes),
        String(st.stagedRanges),
        String(st.stageHits),
        String(st.lateStages),
        String(st.inplaceLaunches),
        formatBusy(st.copyBusyNs),
        String(st.writebackPages),
        String(st.fallbacks),
        formatBytes(st.budgetBytes),
      ];
    }),
  ];
  return [
    "",
    table(rows, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
    "STAGED: bytes copied into VRAM ahead of the kernels that read them (RANGES: how many ranges); HITS: launches that read a staged copy; LATE: stagings not made ahead of the launch that needed them; IN-PLACE: launches that read host pages across the link; COPY-BUSY: copy engine time; WRITE-BACK: staged pages a kernel wrote, copied back; FALLBACKS: stagings that could not be made; BUDGET: the VRAM staging arena now",
  ];
}

export const statusCommand = defineCommand({
  name: "status",
  summary: "show the processes using spillover: bytes per tier, peaks, leases, OOMs",
  flags: ["json", "socket", "config"],
  async run({ flags, io }) {
    const config = await loadConfig({
      env: io.env,
      configFile: flags.config,
      uses: ["socket", "stats_dir"],
      flags: { socket: flags.socket },
    });
    const s = await collectStatus({
      env: io.env,
      socket: config.socket,
      statsDir: config.stats_dir,
    });
    return { output: flags.json ? JSON.stringify(s, null, 2) : renderStatus(s), exitCode: 0 };
  },
});

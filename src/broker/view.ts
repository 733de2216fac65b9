// What `status`, `top`, the JSON API and the dashboard show about one process: a flat view of
// its stats record (and its lease, when it is a broker client). Pure. The record's swap tier is
// left out: tier 2 is not implemented, so it is always zero.

import type { StatsRecord, StreamStats } from "../protocol/stats.js";

export interface GpuView {
  readonly gpu: number;
  readonly vram: number;
  readonly pinned: number;
  readonly vramPeak: number;
  readonly pinnedPeak: number;
  readonly passthrough: number;
  readonly vramLimit: number;
  readonly vramPhysical: number;
  readonly programVmm: number;
  readonly programVmmHost: number;
}

export interface ProcessView {
  readonly pid: number;
  readonly command: string;
  readonly mode: string;
  readonly exited: boolean;
  readonly gpus: readonly GpuView[];
  /** Sums over GPUs: spillover's VRAM pages + small allocations passed to the driver. */
  readonly vram: number;
  readonly pinned: number;
  readonly vramPeak: number;
  readonly pinnedPeak: number;
  readonly pinnedLimit: number;
  readonly pinnedLease: number;
  readonly pinnedPool: number;
  readonly ooms: number;
  readonly leaseDenials: number;
  readonly largestAlloc: number;
  readonly migrations: number;
  readonly updatedMs: number;
  readonly top: StatsRecord["top"];
  /** The streaming engine's counters (zeros while it is off or has staged nothing). */
  readonly stream: StreamStats;
}

export function processView(r: StatsRecord): ProcessView {
  const gpus: GpuView[] = r.gpus.map((g, i) => ({
    gpu: i,
    vram: g.tierBytes.vram + g.programVmmBytes,
    pinned: g.tierBytes.pinned + g.programVmmHostBytes,
    vramPeak: g.tierPeak.vram,
    pinnedPeak: g.tierPeak.pinned,
    passthrough: g.passthroughBytes,
    vramLimit: g.vramLimit,
    vramPhysical: g.vramPhysical,
    programVmm: g.programVmmBytes,
    programVmmHost: g.programVmmHostBytes,
  }));
  const sum = (f: (g: GpuView) => number) => gpus.reduce((s, g) => s + f(g), 0);
  return {
    pid: r.pid,
    command: r.cmdline,
    mode: r.mode,
    exited: r.exited,
    gpus,
    vram: sum((g) => g.vram + g.passthrough),
    pinned: sum((g) => g.pinned),
    vramPeak: sum((g) => g.vramPeak),
    pinnedPeak: r.pinned.peakBytes,
    pinnedLimit: r.pinned.limit,
    pinnedLease: r.pinned.lease,
    pinnedPool: r.pinned.poolBytes,
    ooms: r.counters.oomReturned,
    leaseDenials: r.counters.leaseDenials,
    largestAlloc: r.counters.largestAlloc,
    migrations: r.counters.migrations,
    updatedMs: r.updateUnixMs,
    top: r.top,
    stream: r.stream,
  };
}

export const STREAM_ZERO: StreamStats = {
  stagedBytes: 0,
  stagedRanges: 0,
  stageHits: 0,
  lateStages: 0,
  writebackPages: 0,
  inplaceLaunches: 0,
  copyBusyNs: 0,
  budgetBytes: 0,
  fallbacks: 0,
};

/** The streaming counters of several processes added up (top's STREAM line, the dashboard). */
export function sumStream(ps: readonly ProcessView[]): StreamStats {
  const out: Record<keyof StreamStats, number> = { ...STREAM_ZERO };
  for (const p of ps)
    for (const k of Object.keys(out) as (keyof StreamStats)[]) out[k] += p.stream[k];
  return out;
}

/** Whether the engine has done anything in this process (else status and top say so in a word). */
export function streamActive(s: StreamStats): boolean {
  return Object.values(s).some((v) => v !== 0);
}

/** Copy-engine busy time as status, top and the dashboard print it: "2.75 s". */
export function formatBusy(ns: number): string {
  return `${(ns / 1e9).toFixed(2)} s`;
}

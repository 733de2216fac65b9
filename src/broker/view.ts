// What `status`, `top`, the JSON API and the dashboard show about one process: a flat view of
// its stats record (and its lease, when it is a broker client). Pure.

import type { StatsRecord } from "../protocol/stats.js";

export interface GpuView {
  readonly gpu: number;
  readonly vram: number;
  readonly pinned: number;
  readonly swap: number;
  readonly vramPeak: number;
  readonly pinnedPeak: number;
  readonly swapPeak: number;
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
  readonly swap: number;
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
}

export function processView(r: StatsRecord): ProcessView {
  const gpus: GpuView[] = r.gpus.map((g, i) => ({
    gpu: i,
    vram: g.tierBytes.vram + g.programVmmBytes,
    pinned: g.tierBytes.pinned + g.programVmmHostBytes,
    swap: g.tierBytes.swap,
    vramPeak: g.tierPeak.vram,
    pinnedPeak: g.tierPeak.pinned,
    swapPeak: g.tierPeak.swap,
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
    swap: sum((g) => g.swap),
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
  };
}

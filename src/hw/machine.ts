// The machine a plan is for: this machine's saved profile, a table GPU, or both with flags on top.
// Records where each number came from, so the plan can say "measured" or "spec".

import { SpilloverError } from "../util/errors.js";
import type { HwProfile } from "./profile.js";
import {
  DEFAULT_HOST,
  findGpu,
  type GpuSpec,
  gpuOrThrow,
  PCIE,
  parseRamBw,
  ZERO_COPY_OF_COPY,
} from "./table.js";

export type Provenance = "measured" | "spec" | "flag";

export interface Machine {
  readonly gpuName: string;
  readonly vramBytes: number;
  /** Raw VRAM read bandwidth a streaming kernel reaches (measured) or the vendor spec. */
  readonly vramGBs: number;
  readonly vramSource: Provenance;
  readonly fp16Tflops: number;
  readonly pcieGen: number | null;
  /** Pinned host->device copy bandwidth, and a kernel's zero-copy read of pinned host pages. */
  readonly h2dGBs: number;
  readonly zeroCopyGBs: number;
  readonly linkSource: Provenance;
  /** Host RAM read bandwidth: measured with all threads, or theoretical (DDR spec x channels). */
  readonly ramGBs: number;
  readonly ramSource: "measured" | "theoretical" | "flag";
  readonly cpuThreads: number;
  readonly hostRamBytes: number | null;
  /** Set when the host (RAM bandwidth, threads) is DEFAULT_HOST, not measured or given. */
  readonly assumedHost?: string;
}

export interface MachineFlags {
  readonly gpu?: string;
  readonly vram?: number;
  readonly vramBw?: number;
  readonly link?: { gen?: 3 | 4 | 5; width?: number; copyGBs: number };
  readonly ramBw?: { gbs: number; theoretical: boolean };
  readonly cpuThreads?: number;
}

/** RAM bandwidth at `threads` from the profile's per-thread-count measurements (linear between). */
function ramAtThreads(p: HwProfile, threads: number): number {
  const pts = [...p.cpu.ramReadByThreads].sort((a, b) => a.threads - b.threads);
  if (pts.length === 0) return p.cpu.ramReadGBs;
  let prev = { threads: 0, gbs: 0 };
  for (const pt of pts) {
    if (threads <= pt.threads)
      return (
        prev.gbs + ((pt.gbs - prev.gbs) * (threads - prev.threads)) / (pt.threads - prev.threads)
      );
    prev = pt;
  }
  return prev.gbs;
}

export function buildMachine(profile: HwProfile | undefined, f: MachineFlags): Machine {
  const useProfile = profile !== undefined && f.gpu === undefined;
  const spec: GpuSpec | undefined =
    f.gpu !== undefined ? gpuOrThrow(f.gpu) : profile ? findGpu(profile.gpu.name) : undefined;
  if (!useProfile && !spec && (f.vram === undefined || f.vramBw === undefined)) {
    throw new SpilloverError(
      "ERR_PROFILE",
      "no hardware profile: run `spillover bench hw` on this machine, or describe one with --gpu NAME (or --vram SIZE --vram-bw GB/s), --link gen3|gen4|gen5, --ram-bw GB/s",
    );
  }
  const p = useProfile ? profile : undefined;
  const gen = f.link?.gen ?? (p?.gpu.pcieGen as 3 | 4 | 5 | null | undefined) ?? spec?.pcieGen ?? 4;
  const linkSpec = PCIE[gen as 3 | 4 | 5] ?? PCIE[4];
  const width = f.link?.width ?? (p ? (p.gpu.pcieWidth ?? 16) : (spec?.pcieWidth ?? 16));
  const h2d = f.link?.copyGBs ?? p?.gpu.h2dGBs ?? (linkSpec.practicalGBs * width) / 16;
  const zeroCopy = f.link
    ? h2d * ZERO_COPY_OF_COPY
    : (p?.gpu.vmmHostReadGBs ?? p?.gpu.zeroCopyReadGBs ?? h2d * ZERO_COPY_OF_COPY);
  const threads = f.cpuThreads ?? p?.cpu.threads ?? DEFAULT_HOST.cpuThreads;
  let ramGBs: number;
  let ramSource: Machine["ramSource"];
  let assumedHost: string | undefined;
  if (f.ramBw) {
    ramGBs = f.ramBw.gbs;
    ramSource = f.ramBw.theoretical ? "theoretical" : "flag";
  } else if (profile) {
    ramGBs =
      f.cpuThreads !== undefined ? ramAtThreads(profile, f.cpuThreads) : profile.cpu.ramReadGBs;
    ramSource = "measured";
  } else {
    const host = parseRamBw(DEFAULT_HOST.ram);
    ramGBs = host?.gbs ?? 0;
    ramSource = "theoretical";
    assumedHost = `${DEFAULT_HOST.what}${f.cpuThreads !== undefined ? ` (threads: ${threads}, from --cpu-threads)` : ""}`;
  }
  return {
    gpuName: p?.gpu.name ?? spec?.name ?? "custom GPU",
    vramBytes: f.vram ?? p?.gpu.vramBytes ?? spec?.vramBytes ?? 0,
    vramGBs: f.vramBw ?? p?.gpu.vramReadGBs ?? spec?.vramGBs ?? 0,
    vramSource: f.vramBw !== undefined ? "flag" : p ? "measured" : "spec",
    fp16Tflops: spec?.fp16Tflops ?? 100,
    pcieGen: f.link?.gen ?? p?.gpu.pcieGen ?? spec?.pcieGen ?? null,
    h2dGBs: h2d,
    zeroCopyGBs: zeroCopy,
    linkSource: f.link ? "flag" : p ? "measured" : "spec",
    ramGBs,
    ramSource,
    cpuThreads: threads,
    hostRamBytes: profile?.cpu.memTotalBytes ?? null,
    ...(assumedHost !== undefined ? { assumedHost } : {}),
  };
}

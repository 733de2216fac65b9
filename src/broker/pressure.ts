// Memory pressure: parsing /proc/meminfo, /proc/pressure/memory (PSI) and the memory limit of our
// cgroup (v2 memory.max/memory.current, or v1 memory.limit_in_bytes/usage_in_bytes, on every level
// up to the root), and turning a sample into a level with configurable thresholds. Parsing and
// classification are pure; sampleMemory reads files under roots that tests replace with a
// simulated tree.

import { readFile } from "node:fs/promises";
import type { SizeOrPercent } from "../config/schema.js";
import { PressureLevel } from "../protocol/frame.js";
import { hostRoom } from "./budget.js";

export interface MemInfo {
  readonly memTotal: number;
  readonly memAvailable: number;
  readonly swapTotal: number;
  readonly swapFree: number;
}

export interface Psi {
  readonly someAvg10: number;
  readonly fullAvg10: number;
}

/** The tightest memory limit on our cgroup and its ancestors. */
export interface CgroupMemory {
  /** The cgroup we are in, as /proc/self/cgroup names it. */
  readonly path: string;
  /** The lowest limit on the way to the root, bytes. */
  readonly max: number;
  /** The least room left under any limit on the way (limit minus that cgroup's usage), bytes. */
  readonly headroom: number;
}

export interface MemorySample {
  readonly t: number;
  readonly mem: MemInfo;
  readonly psi?: Psi | undefined;
  /** Absent when no cgroup on our path has a memory limit. */
  readonly cgroup?: CgroupMemory | undefined;
}

/** Parses /proc/meminfo (kB) into bytes. Missing fields read as 0; returns undefined without MemTotal. */
export function parseMeminfo(text: string): MemInfo | undefined {
  const kb = (name: string): number | undefined => {
    const m = new RegExp(`^${name}:\\s+(\\d+)\\s*kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : undefined;
  };
  const memTotal = kb("MemTotal");
  if (memTotal === undefined) return undefined;
  return {
    memTotal,
    memAvailable: kb("MemAvailable") ?? kb("MemFree") ?? 0,
    swapTotal: kb("SwapTotal") ?? 0,
    swapFree: kb("SwapFree") ?? 0,
  };
}

/** Parses /proc/pressure/memory: "some avg10=1.23 ..." and "full avg10=..." lines. */
export function parsePsi(text: string): Psi | undefined {
  const avg = (kind: string) => {
    const m = new RegExp(`^${kind}\\s+avg10=([\\d.]+)`, "m").exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const some = avg("some");
  if (some === undefined) return undefined;
  return { someAvg10: some, fullAvg10: avg("full") ?? 0 };
}

export interface PressureThresholds {
  readonly warnAvailable: SizeOrPercent;
  readonly criticalAvailable: SizeOrPercent;
  /** PSI "some avg10" (%) at or above which growth slows. */
  readonly psiWarn: number;
  /** PSI "full avg10" (%) at or above which growth stops. */
  readonly psiCritical: number;
}

export function resolveSize(v: SizeOrPercent, of: number): number {
  return "percent" in v ? Math.floor((of * v.percent) / 100) : v.bytes;
}

export function classify(
  s: MemorySample,
  th: PressureThresholds,
): { level: PressureLevel; why: string } {
  // Under a cgroup limit tighter than the host, the room under the limit is what runs out.
  const room = hostRoom(s);
  const avail = room.available;
  const what = room.limitedBy === "cgroup" ? "room under the cgroup limit" : "MemAvailable";
  const crit = resolveSize(th.criticalAvailable, room.total);
  const warn = resolveSize(th.warnAvailable, room.total);
  if (avail < crit) return { level: PressureLevel.CRITICAL, why: `${what} ${avail} < ${crit}` };
  if (s.psi && th.psiCritical > 0 && s.psi.fullAvg10 >= th.psiCritical) {
    return {
      level: PressureLevel.CRITICAL,
      why: `PSI full avg10 ${s.psi.fullAvg10} >= ${th.psiCritical}`,
    };
  }
  if (avail < warn) return { level: PressureLevel.WARN, why: `${what} ${avail} < ${warn}` };
  if (s.psi && th.psiWarn > 0 && s.psi.someAvg10 >= th.psiWarn) {
    return { level: PressureLevel.WARN, why: `PSI some avg10 ${s.psi.someAvg10} >= ${th.psiWarn}` };
  }
  return { level: PressureLevel.OK, why: "ok" };
}

/** Where the host's memory facts are read: /proc and /sys/fs/cgroup, or a simulated tree. */
export interface HostPaths {
  readonly procRoot: string;
  readonly cgroupRoot: string;
}

export const DEFAULT_HOST: HostPaths = { procRoot: "/proc", cgroupRoot: "/sys/fs/cgroup" };

/** From /proc/self/cgroup: the v2 path ("0::/a/b"), else the v1 memory controller's ("4:memory:/a"). */
export function parseCgroupSelf(text: string): { v2: boolean; path: string } | undefined {
  const v2 = /^0::(\/.*)$/m.exec(text);
  const v1 = /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(\/.*)$/m.exec(text);
  if (v1) return { v2: false, path: v1[1] as string };
  if (v2) return { v2: true, path: v2[1] as string };
  return undefined;
}

/** A v2 "max", or v1's "no limit" (a page-rounded 2^63), reads as no limit. */
export function parseLimit(text: string): number | undefined {
  const t = text.trim();
  if (!/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n >= 2 ** 62 ? undefined : n;
}

/** Combines the levels from our cgroup up to the root; undefined when none has a limit. */
export function cgroupLimit(
  path: string,
  levels: readonly { readonly max: number | undefined; readonly current: number | undefined }[],
): CgroupMemory | undefined {
  let max: number | undefined;
  let headroom: number | undefined;
  for (const l of levels) {
    if (l.max === undefined) continue;
    max = Math.min(max ?? l.max, l.max);
    const room = Math.max(0, l.max - (l.current ?? 0));
    headroom = Math.min(headroom ?? room, room);
  }
  return max === undefined || headroom === undefined ? undefined : { path, max, headroom };
}

async function readText(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch {
    return undefined;
  }
}

export async function sampleCgroup(host: HostPaths): Promise<CgroupMemory | undefined> {
  const self = await readText(`${host.procRoot}/self/cgroup`);
  const cg = self === undefined ? undefined : parseCgroupSelf(self);
  if (!cg) return undefined;
  const [maxFile, curFile, base] = cg.v2
    ? ["memory.max", "memory.current", host.cgroupRoot]
    : ["memory.limit_in_bytes", "memory.usage_in_bytes", `${host.cgroupRoot}/memory`];
  const levels: { max: number | undefined; current: number | undefined }[] = [];
  let p = cg.path.replace(/\/+$/, "");
  for (;;) {
    const dir = `${base}${p}`;
    const [max, cur] = await Promise.all([
      readText(`${dir}/${maxFile}`),
      readText(`${dir}/${curFile}`),
    ]);
    levels.push({
      max: max === undefined ? undefined : parseLimit(max),
      current: cur === undefined ? undefined : parseLimit(cur),
    });
    if (p === "") break;
    p = p.slice(0, p.lastIndexOf("/"));
  }
  return cgroupLimit(cg.path, levels);
}

export async function sampleMemory(
  host: HostPaths = DEFAULT_HOST,
): Promise<MemorySample | undefined> {
  const text = await readText(`${host.procRoot}/meminfo`);
  const mem = text === undefined ? undefined : parseMeminfo(text);
  if (!mem) return undefined;
  const psiText = await readText(`${host.procRoot}/pressure/memory`);
  // kernels without PSI: MemAvailable alone decides
  const psi = psiText === undefined ? undefined : parsePsi(psiText);
  return { t: Date.now(), mem, psi, cgroup: await sampleCgroup(host) };
}

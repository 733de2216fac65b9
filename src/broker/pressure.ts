// Memory pressure: parsing /proc/meminfo and /proc/pressure/memory (PSI) and turning a sample into a
// level with configurable thresholds. Parsing and classification are pure; sampleMemory reads files.

import { readFile } from "node:fs/promises";
import type { SizeOrPercent } from "../config/schema.js";
import { PressureLevel } from "../protocol/frame.js";

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

export interface MemorySample {
  readonly t: number;
  readonly mem: MemInfo;
  readonly psi?: Psi | undefined;
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
  const avail = s.mem.memAvailable;
  const crit = resolveSize(th.criticalAvailable, s.mem.memTotal);
  const warn = resolveSize(th.warnAvailable, s.mem.memTotal);
  if (avail < crit)
    return { level: PressureLevel.CRITICAL, why: `MemAvailable ${avail} < ${crit}` };
  if (s.psi && th.psiCritical > 0 && s.psi.fullAvg10 >= th.psiCritical) {
    return {
      level: PressureLevel.CRITICAL,
      why: `PSI full avg10 ${s.psi.fullAvg10} >= ${th.psiCritical}`,
    };
  }
  if (avail < warn) return { level: PressureLevel.WARN, why: `MemAvailable ${avail} < ${warn}` };
  if (s.psi && th.psiWarn > 0 && s.psi.someAvg10 >= th.psiWarn) {
    return { level: PressureLevel.WARN, why: `PSI some avg10 ${s.psi.someAvg10} >= ${th.psiWarn}` };
  }
  return { level: PressureLevel.OK, why: "ok" };
}

export interface ProcPaths {
  readonly meminfo: string;
  readonly psi: string;
}

export const DEFAULT_PROC: ProcPaths = { meminfo: "/proc/meminfo", psi: "/proc/pressure/memory" };

export async function sampleMemory(
  paths: ProcPaths = DEFAULT_PROC,
): Promise<MemorySample | undefined> {
  let mem: MemInfo | undefined;
  try {
    mem = parseMeminfo(await readFile(paths.meminfo, "utf8"));
  } catch {
    return undefined;
  }
  if (!mem) return undefined;
  let psi: Psi | undefined;
  try {
    psi = parsePsi(await readFile(paths.psi, "utf8"));
  } catch {
    psi = undefined; // kernels without PSI: MemAvailable alone decides
  }
  return { t: Date.now(), mem, psi };
}

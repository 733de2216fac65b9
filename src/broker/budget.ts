// The pinned budget follows the machine: pure functions from a memory sample (MemAvailable, PSI,
// the cgroup limit) to the budget the broker may lease, with hysteresis so that small moves of
// MemAvailable do not push LEASE_UPDATE to every client each sample.
//
// target = leased + room - reserve, where room is MemAvailable, or the cgroup's headroom where
// that is lower (the cgroup limit wins), and reserve is the host reserve (default max(4 GiB, 10%
// of the smaller of MemTotal and the cgroup limit)). Leased bytes are counted back in because
// the pinned pages of the leases are what took them out of MemAvailable: leasing does not shrink
// the budget, memory used by anything else does, and memory the machine gains grows it.

import type { MemorySample } from "./pressure.js";

export function defaultHostReserve(memTotal: number): number {
  return Math.max(4 * 2 ** 30, Math.floor(memTotal / 10));
}

export interface HostRoom {
  /** MemTotal, or the cgroup limit where lower. */
  readonly total: number;
  /** MemAvailable, or the room under the cgroup limit where lower. */
  readonly available: number;
  readonly limitedBy: "host" | "cgroup";
}

export function hostRoom(s: MemorySample): HostRoom {
  const cg = s.cgroup;
  const byCgroup = cg !== undefined && cg.headroom < s.mem.memAvailable;
  return {
    total: cg ? Math.min(s.mem.memTotal, cg.max) : s.mem.memTotal,
    available: byCgroup ? cg.headroom : s.mem.memAvailable,
    limitedBy: byCgroup ? "cgroup" : "host",
  };
}

/** The budget this sample supports, with `leased` bytes already pinned by clients. */
export function budgetTarget(s: MemorySample, leased: number, reserve?: number): number {
  const room = hostRoom(s);
  return Math.max(0, leased + room.available - (reserve ?? defaultHostReserve(room.total)));
}

/** The dead band: moves smaller than this are ignored (a grow step, or 1/64 of the memory). */
export function hysteresisBand(total: number, growStep: number): number {
  return Math.max(growStep, Math.floor(total / 64));
}

/**
 * The next budget: the target once it is a band away from the current one; growth waits while
 * the machine is under pressure (`holdGrowth`), shrinking never does.
 */
export function followBudget(
  current: number,
  target: number,
  band: number,
  holdGrowth: boolean,
): number {
  if (target <= current - band) return target;
  if (target >= current + band && !holdGrowth) return target;
  return current;
}

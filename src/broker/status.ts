// The JSON shape of GET /api/v1/status (also what `spillover status --json` prints), and the pure
// projection of the broker's state onto it. Versioned: add fields freely, never change the
// meaning of one.

import type { GpuInfo } from "../gpu/nvidia-smi.js";
import { type HostRoom, hostRoom } from "./budget.js";
import type { LeaseBook } from "./leases.js";
import type { MemorySample } from "./pressure.js";
import type { LeaseEvent } from "./server.js";
import type { ProcessView } from "./view.js";

export const PRESSURE_NAMES = ["ok", "warn", "critical"] as const;

export interface ClientView {
  readonly pid: number;
  /** The kernel's uid of the client (SO_PEERCRED), and its name where /etc/passwd has one. */
  readonly uid?: number;
  readonly user?: string | null;
  readonly gpus: number;
  readonly pinnedLease: number;
  readonly pinnedPeak: number;
  readonly vram: Readonly<Record<string, number>>;
  readonly grants: number;
  readonly denials: number;
  readonly sinceMs: number;
}

/** One user's pinned leases against their quota ([broker.quota]). */
export interface UserView {
  readonly uid: number;
  readonly user: string | null;
  readonly clients: number;
  readonly pinnedLeased: number;
  /** Bytes at the current budget; null: no quota applies to this user. */
  readonly quota: number | null;
  /** "user alice", "group ml", "default", or null. */
  readonly quotaSource: string | null;
  readonly quotaDenials: number;
}

export interface BrokerStatus {
  readonly version: 1;
  readonly source: "broker" | "stats-files";
  readonly broker: {
    readonly pid: number;
    readonly socket: string;
    readonly system: boolean;
    readonly startedMs: number;
    readonly nowMs: number;
  } | null;
  readonly budgets: {
    readonly pinnedBudget: number;
    readonly pinnedLeased: number;
    readonly pinnedFree: number;
    readonly growStep: number;
    readonly vramTotal: Readonly<Record<string, number>>;
    /** true: the budget follows MemAvailable and the cgroup limit; false: broker.pinned_budget. */
    readonly follows?: boolean;
    /** The budget the last sample supports (the budget moves to it past the hysteresis band). */
    readonly target?: number;
    readonly hostReserve?: number;
    /** What bounds the room: "host" (MemAvailable) or "cgroup" (memory.max less usage). */
    readonly limitedBy?: HostRoom["limitedBy"];
  };
  readonly pressure: {
    readonly level: (typeof PRESSURE_NAMES)[number];
    readonly levelCode: number;
    readonly why: string;
    readonly memTotal: number;
    readonly memAvailable: number;
    readonly swapTotal: number;
    readonly swapFree: number;
    readonly psiSome: number | null;
    readonly psiFull: number | null;
    /** The tightest cgroup memory limit on the broker's cgroup path, and the room under it. */
    readonly cgroupMax?: number | null;
    readonly cgroupHeadroom?: number | null;
  };
  /** From nvidia-smi (refreshed every 10 s); empty where there is none. */
  readonly gpus?: readonly GpuInfo[];
  readonly clients: readonly ClientView[];
  /** Per user: leases and quota (users with a client now, or refused by their quota before). */
  readonly users?: readonly UserView[];
  readonly processes: readonly ProcessView[];
  readonly events: readonly LeaseEvent[];
  readonly eventCounts: Readonly<Record<string, number>>;
}

export interface StatusInput {
  readonly broker: NonNullable<BrokerStatus["broker"]>;
  readonly book: LeaseBook;
  readonly sample: MemorySample;
  readonly why: string;
  readonly follows: boolean;
  readonly target: number;
  readonly hostReserve: number;
  readonly gpus: readonly GpuInfo[];
  readonly processes: readonly ProcessView[];
  readonly events: readonly LeaseEvent[];
  readonly eventCounts: Readonly<Record<string, number>>;
  readonly userName: (uid: number) => string | undefined;
}

const byKey = (m: ReadonlyMap<number, number>) =>
  Object.fromEntries([...m].map(([k, v]) => [String(k), v]));

/** The broker's state as the API shows it. Pure: reads the book, touches nothing. */
export function projectStatus(i: StatusInput): BrokerStatus {
  const { book, sample } = i;
  return {
    version: 1,
    source: "broker",
    broker: i.broker,
    budgets: {
      pinnedBudget: book.budget,
      pinnedLeased: book.leased,
      pinnedFree: book.free,
      growStep: book.policy.growStep,
      vramTotal: byKey(book.vramTotals()),
      follows: i.follows,
      target: i.target,
      hostReserve: i.hostReserve,
      limitedBy: hostRoom(sample).limitedBy,
    },
    pressure: {
      level: PRESSURE_NAMES[book.pressure],
      levelCode: book.pressure,
      why: i.why,
      memTotal: sample.mem.memTotal,
      memAvailable: sample.mem.memAvailable,
      swapTotal: sample.mem.swapTotal,
      swapFree: sample.mem.swapFree,
      psiSome: sample.psi?.someAvg10 ?? null,
      psiFull: sample.psi?.fullAvg10 ?? null,
      cgroupMax: sample.cgroup?.max ?? null,
      cgroupHeadroom: sample.cgroup?.headroom ?? null,
    },
    gpus: i.gpus,
    clients: book.list().map((c) => ({
      pid: c.pid,
      uid: c.uid,
      user: i.userName(c.uid) ?? null,
      gpus: c.gpus,
      pinnedLease: c.pinned,
      pinnedPeak: c.pinnedPeak,
      vram: byKey(c.vram),
      grants: c.grants,
      denials: c.denials,
      sinceMs: c.since,
    })),
    users: book.users().map((u) => ({
      uid: u.uid,
      user: i.userName(u.uid) ?? null,
      clients: u.clients,
      pinnedLeased: u.pinned,
      quota: u.quota?.bytes ?? null,
      quotaSource: u.quota?.source ?? null,
      quotaDenials: u.quotaDenials,
    })),
    processes: i.processes,
    events: i.events,
    eventCounts: { ...i.eventCounts },
  };
}

// The JSON shape of GET /api/v1/status (also what `spillover status --json` prints). Versioned:
// add fields freely, never change the meaning of one.

import type { GpuInfo } from "../gpu/nvidia-smi.js";
import type { LeaseEvent } from "./server.js";
import type { ProcessView } from "./view.js";

export const PRESSURE_NAMES = ["ok", "warn", "critical"] as const;

export interface ClientView {
  readonly pid: number;
  readonly gpus: number;
  readonly pinnedLease: number;
  readonly pinnedPeak: number;
  readonly vram: Readonly<Record<string, number>>;
  readonly grants: number;
  readonly denials: number;
  readonly sinceMs: number;
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
  };
  /** From nvidia-smi (refreshed every 10 s); empty where there is none. */
  readonly gpus?: readonly GpuInfo[];
  readonly clients: readonly ClientView[];
  readonly processes: readonly ProcessView[];
  readonly events: readonly LeaseEvent[];
  readonly eventCounts: Readonly<Record<string, number>>;
}

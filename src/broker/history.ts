// A fixed-length in-memory time series (about 10 minutes at 2 Hz) of machine-wide tier usage and
// RAM pressure, stored as columns so the dashboard hands them to uPlot unchanged.

export interface HistoryPoint {
  readonly t: number; // unix seconds
  readonly vram: number;
  readonly pinned: number;
  /** VRAM the streaming engines hold for staging now (their budgets, inside the VRAM limits). */
  readonly stagingBudget: number;
  readonly pinnedLeased: number;
  /** The pinned budget then (it follows the host's memory). */
  readonly pinnedBudget: number;
  readonly memAvailable: number;
  readonly psiSome: number;
  readonly psiFull: number;
  readonly pressure: number;
}

export const HISTORY_COLUMNS = [
  "t",
  "vram",
  "pinned",
  "stagingBudget",
  "pinnedLeased",
  "pinnedBudget",
  "memAvailable",
  "psiSome",
  "psiFull",
  "pressure",
] as const;
export type HistoryColumns = Record<(typeof HISTORY_COLUMNS)[number], number[]>;

export class History {
  private readonly points: HistoryPoint[] = [];

  constructor(readonly capacity: number) {}

  push(p: HistoryPoint): void {
    this.points.push(p);
    if (this.points.length > this.capacity)
      this.points.splice(0, this.points.length - this.capacity);
  }

  get length(): number {
    return this.points.length;
  }

  columns(sinceT = 0): HistoryColumns {
    const out = Object.fromEntries(
      HISTORY_COLUMNS.map((k) => [k, [] as number[]]),
    ) as HistoryColumns;
    for (const p of this.points) {
      if (p.t < sinceT) continue;
      for (const k of HISTORY_COLUMNS) out[k].push(p[k]);
    }
    return out;
  }
}

/** A ring of the last `capacity` items (lease events). */
export class Ring<T> {
  private readonly items: T[] = [];
  constructor(readonly capacity: number) {}
  push(x: T): void {
    this.items.push(x);
    if (this.items.length > this.capacity) this.items.shift();
  }
  list(): readonly T[] {
    return this.items;
  }
}

// The pressure watchdog: samples MemAvailable, PSI and the cgroup limit every broker.sample_ms,
// sets the pressure level, and (unless broker.pinned_budget fixes it) moves the pinned budget to
// what the machine has now, with hysteresis (budget.ts). Either change is pushed to every client
// as LEASE_UPDATE through `onChange`.

import { PressureLevel } from "../protocol/frame.js";
import {
  budgetTarget,
  defaultHostReserve,
  followBudget,
  hostRoom,
  hysteresisBand,
} from "./budget.js";
import type { LeaseBook } from "./leases.js";
import type { Logger } from "./log.js";
import {
  classify,
  type HostPaths,
  type MemorySample,
  type PressureThresholds,
  sampleMemory,
} from "./pressure.js";
import type { LeaseEvent } from "./server.js";
import { PRESSURE_NAMES } from "./status.js";

export interface WatchdogOptions {
  readonly book: LeaseBook;
  readonly host: HostPaths;
  readonly thresholds: PressureThresholds;
  readonly sampleMs: number;
  /** Follow the host (no broker.pinned_budget): the host reserve, if configured. */
  readonly follow: { readonly reserve?: number | undefined } | false;
  readonly log: Logger;
  /** The level or the budget changed: clients' caps moved. */
  readonly onChange: () => void;
  readonly onEvent: (e: LeaseEvent) => void;
}

export class Watchdog {
  private timer: NodeJS.Timeout | undefined;
  private sampling = false;
  /** The latest sample, the reason for the level, and the budget it supports. */
  sample: MemorySample;
  why = "ok";
  target: number;

  constructor(
    private readonly o: WatchdogOptions,
    first: MemorySample,
  ) {
    this.sample = first;
    this.target = o.book.budget;
    this.apply(first);
  }

  /** The host reserve in use (configured, or the default for this sample's memory). */
  get reserve(): number {
    return this.o.follow && this.o.follow.reserve !== undefined
      ? this.o.follow.reserve
      : defaultHostReserve(hostRoom(this.sample).total);
  }

  start(): void {
    this.timer = setInterval(() => {
      if (this.sampling) return;
      this.sampling = true;
      void sampleMemory(this.o.host)
        .then((s) => {
          if (s) this.apply(s);
        })
        .finally(() => {
          this.sampling = false;
        });
    }, this.o.sampleMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  apply(s: MemorySample): void {
    const { book, log } = this.o;
    this.sample = s;
    const c = classify(s, this.o.thresholds);
    this.why = c.why;
    const levelChanged = book.setPressure(c.level);
    if (levelChanged) {
      log.log(c.level === PressureLevel.OK ? "info" : "warn", "pressure level changed", {
        level: PRESSURE_NAMES[c.level],
        why: c.why,
      });
      this.event("deny", 0, `pressure ${PRESSURE_NAMES[c.level]}: ${c.why}`);
    }
    let budgetChanged = false;
    if (this.o.follow) {
      const room = hostRoom(s);
      this.target = budgetTarget(s, book.leased, this.o.follow.reserve);
      const from = book.budget;
      const next = followBudget(
        from,
        this.target,
        hysteresisBand(room.total, book.policy.growStep),
        c.level !== PressureLevel.OK,
      );
      budgetChanged = book.setBudget(next);
      if (budgetChanged) {
        log.log("info", "pinned budget follows the host", {
          from,
          to: next,
          mem_available: s.mem.memAvailable,
          cgroup_max: s.cgroup?.max,
          cgroup_headroom: s.cgroup?.headroom,
          limited_by: room.limitedBy,
          leased: book.leased,
        });
        this.event("budget", next, `pinned budget ${from} -> ${next} (${room.limitedBy})`);
      }
    }
    if (levelChanged || budgetChanged) this.o.onChange();
  }

  private event(kind: LeaseEvent["kind"], bytes: number, detail: string) {
    this.o.onEvent({ t: Date.now(), pid: 0, kind, bytes, detail });
  }
}

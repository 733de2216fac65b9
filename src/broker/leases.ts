// The lease book: who holds how much pinned host memory (one machine-wide budget) and VRAM (one
// budget per GPU). Pure policy, no I/O: the socket server calls it, tests drive it directly.
// Invariant: the sum of pinned leases never exceeds the pinned budget; the sum of VRAM grants on a
// GPU never exceeds that GPU's known VRAM.

import { DenyReason, PressureLevel } from "../protocol/frame.js";

export interface LeasePolicy {
  /** Machine-wide pinned host memory the broker may lease, bytes. */
  readonly pinnedBudget: number;
  /** Grow step told to clients; also the largest grant under WARN pressure. */
  readonly growStep: number;
  /** Largest initial grant at HELLO. */
  readonly initialGrant: number;
  /** Largest pinned lease one client may hold (undefined: the whole budget). */
  readonly clientPinnedMax?: number | undefined;
}

export interface ClientLease {
  readonly id: number;
  readonly pid: number;
  readonly gpus: number;
  pinned: number;
  pinnedPeak: number;
  readonly vram: Map<number, number>;
  grants: number;
  denials: number;
  readonly since: number;
}

export interface GrowResult {
  readonly granted: number;
  readonly total: number;
  readonly reason: DenyReason;
}

export class LeaseBook {
  private readonly clients = new Map<number, ClientLease>();
  private readonly vramTotal = new Map<number, number>();
  private pinnedLeased = 0;
  private level: PressureLevel = PressureLevel.OK;

  constructor(readonly policy: LeasePolicy) {}

  get pressure(): PressureLevel {
    return this.level;
  }

  /** Returns true when the level changed (the server then pushes LEASE_UPDATE to every client). */
  setPressure(level: PressureLevel): boolean {
    if (level === this.level) return false;
    this.level = level;
    return true;
  }

  get leased(): number {
    return this.pinnedLeased;
  }

  get free(): number {
    return Math.max(0, this.policy.pinnedBudget - this.pinnedLeased);
  }

  list(): readonly ClientLease[] {
    return [...this.clients.values()];
  }

  get(id: number): ClientLease | undefined {
    return this.clients.get(id);
  }

  /** Grants what policy allows of `want` for client `c`; returns the bytes and why it fell short. */
  private allow(c: ClientLease, want: number): { bytes: number; reason: DenyReason } {
    if (want <= 0) return { bytes: 0, reason: DenyReason.NONE };
    if (this.level === PressureLevel.CRITICAL) return { bytes: 0, reason: DenyReason.PRESSURE };
    let bytes = want;
    let reason: DenyReason = DenyReason.NONE;
    const cut = (limit: number, why: DenyReason) => {
      if (bytes > limit) {
        bytes = Math.max(0, limit);
        reason = why;
      }
    };
    if (this.level === PressureLevel.WARN) cut(this.policy.growStep, DenyReason.PRESSURE);
    if (this.policy.clientPinnedMax !== undefined)
      cut(this.policy.clientPinnedMax - c.pinned, DenyReason.CLIENT_LIMIT);
    cut(this.free, DenyReason.BUDGET);
    return { bytes, reason };
  }

  private add(c: ClientLease, bytes: number) {
    c.pinned += bytes;
    c.pinnedPeak = Math.max(c.pinnedPeak, c.pinned);
    this.pinnedLeased += bytes;
  }

  /** HELLO: registers the client and makes its initial grant (at most policy.initialGrant). */
  hello(id: number, pid: number, gpus: number, wanted: number, now: number): number {
    const c: ClientLease = {
      id,
      pid,
      gpus,
      pinned: 0,
      pinnedPeak: 0,
      vram: new Map(),
      grants: 0,
      denials: 0,
      since: now,
    };
    this.clients.set(id, c);
    const { bytes } = this.allow(c, Math.min(wanted, this.policy.initialGrant));
    this.add(c, bytes);
    if (bytes > 0) c.grants++;
    return bytes;
  }

  grow(id: number, extra: number): GrowResult {
    const c = this.clients.get(id);
    if (!c) return { granted: 0, total: 0, reason: DenyReason.BUDGET };
    const { bytes, reason } = this.allow(c, extra);
    this.add(c, bytes);
    if (bytes > 0) c.grants++;
    if (bytes < extra) c.denials++;
    return { granted: bytes, total: c.pinned, reason: bytes < extra ? reason : DenyReason.NONE };
  }

  giveBack(id: number, bytes: number): number {
    const c = this.clients.get(id);
    if (!c) return 0;
    const n = Math.min(Math.max(0, bytes), c.pinned);
    c.pinned -= n;
    this.pinnedLeased -= n;
    return n;
  }

  /** The client's VRAM budget on `device`: what it asks for, within the GPU's VRAM left by others. */
  vram(id: number, device: number, wanted: number, physical: number): number {
    const c = this.clients.get(id);
    if (!c) return 0;
    if (physical > 0)
      this.vramTotal.set(device, Math.max(this.vramTotal.get(device) ?? 0, physical));
    const total = this.vramTotal.get(device);
    let granted = wanted;
    if (total !== undefined) {
      let others = 0;
      for (const o of this.clients.values()) if (o.id !== id) others += o.vram.get(device) ?? 0;
      granted = Math.min(wanted, Math.max(0, total - others));
    }
    c.vram.set(device, granted);
    return granted;
  }

  /** The client is gone (BYE, socket closed, pid dead): everything it held returns. */
  release(id: number): { pinned: number; vram: number } | undefined {
    const c = this.clients.get(id);
    if (!c) return undefined;
    this.clients.delete(id);
    this.pinnedLeased -= c.pinned;
    let vram = 0;
    for (const v of c.vram.values()) vram += v;
    return { pinned: c.pinned, vram };
  }

  /** The cap pushed in LEASE_UPDATE: no growth past the current lease while CRITICAL. */
  cap(id: number): number {
    const c = this.clients.get(id);
    if (!c) return 0;
    if (this.level === PressureLevel.CRITICAL) return c.pinned;
    let cap = c.pinned + this.free;
    if (this.policy.clientPinnedMax !== undefined)
      cap = Math.min(cap, Math.max(c.pinned, this.policy.clientPinnedMax));
    return cap;
  }

  vramTotals(): ReadonlyMap<number, number> {
    return this.vramTotal;
  }
}

// The lease book: who holds how much pinned host memory (one machine-wide budget, and a quota per
// user where configured) and VRAM (one budget per GPU). Pure policy, no I/O: the socket server
// calls it, tests drive it directly. Invariants: no grant takes the sum of pinned leases past the
// pinned budget, nor a user's leases past that user's quota; the sum of VRAM grants on a GPU
// never exceeds that GPU's known VRAM. The budget may move (it follows the host's memory): when
// it shrinks below what is leased, nothing is taken away; growth stops until leases come back.

import { DenyReason, PressureLevel } from "../protocol/frame.js";
import type { Quotas } from "./quota.js";

export interface LeasePolicy {
  /** Machine-wide pinned host memory the broker may lease, bytes. */
  readonly pinnedBudget: number;
  /** Grow step told to clients; also the largest grant under WARN pressure. */
  readonly growStep: number;
  /** Largest initial grant at HELLO. */
  readonly initialGrant: number;
  /** Largest pinned lease one client may hold (undefined: the whole budget). */
  readonly clientPinnedMax?: number | undefined;
  /** Per-user quotas (undefined: none). */
  readonly quotas?: Quotas | undefined;
}

/** Who a lease belongs to: the kernel's credentials of the connecting process (SO_PEERCRED). */
export interface Owner {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

export interface ClientLease {
  readonly id: number;
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
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

export interface UserLease {
  readonly uid: number;
  readonly pinned: number;
  readonly clients: number;
  /** Requests cut short by the quota since the broker started. */
  readonly quotaDenials: number;
  readonly quota?: { readonly bytes: number; readonly source: string } | undefined;
}

export class LeaseBook {
  private readonly clients = new Map<number, ClientLease>();
  private readonly vramTotal = new Map<number, number>();
  private readonly quotaDenials = new Map<number, number>();
  private pinnedLeased = 0;
  private level: PressureLevel = PressureLevel.OK;
  private pinnedBudget: number;

  constructor(readonly policy: LeasePolicy) {
    this.pinnedBudget = policy.pinnedBudget;
  }

  /** The pinned budget now (policy.pinnedBudget at start; moves with setBudget). */
  get budget(): number {
    return this.pinnedBudget;
  }

  /** Returns true when the budget changed (the server then pushes LEASE_UPDATE: caps moved). */
  setBudget(bytes: number): boolean {
    const b = Math.max(0, Math.floor(bytes));
    if (b === this.pinnedBudget) return false;
    this.pinnedBudget = b;
    return true;
  }

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
    return Math.max(0, this.pinnedBudget - this.pinnedLeased);
  }

  /** Pinned bytes leased to all clients of `uid`. */
  userLeased(uid: number): number {
    let n = 0;
    for (const c of this.clients.values()) if (c.uid === uid) n += c.pinned;
    return n;
  }

  private quotaOf(c: ClientLease): { bytes: number; source: string } | undefined {
    return this.policy.quotas?.limit(c.uid, c.gid, this.pinnedBudget);
  }

  /** Per-user totals, for status and metrics (users with a client now, or refused before). */
  users(): UserLease[] {
    const uids = new Map<number, number>();
    for (const c of this.clients.values()) uids.set(c.uid, c.gid);
    for (const uid of this.quotaDenials.keys()) if (!uids.has(uid)) uids.set(uid, -1);
    return [...uids]
      .sort((a, b) => a[0] - b[0])
      .map(([uid, gid]) => ({
        uid,
        pinned: this.userLeased(uid),
        clients: [...this.clients.values()].filter((c) => c.uid === uid).length,
        quotaDenials: this.quotaDenials.get(uid) ?? 0,
        quota: this.policy.quotas?.limit(uid, gid, this.pinnedBudget),
      }));
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
    const quota = this.quotaOf(c);
    if (quota !== undefined) cut(quota.bytes - this.userLeased(c.uid), DenyReason.QUOTA);
    cut(this.free, DenyReason.BUDGET);
    if ((reason as DenyReason) === DenyReason.QUOTA)
      this.quotaDenials.set(c.uid, (this.quotaDenials.get(c.uid) ?? 0) + 1);
    return { bytes, reason };
  }

  private add(c: ClientLease, bytes: number) {
    c.pinned += bytes;
    c.pinnedPeak = Math.max(c.pinnedPeak, c.pinned);
    this.pinnedLeased += bytes;
  }

  /** HELLO: registers the client and makes its initial grant (at most policy.initialGrant). */
  hello(id: number, owner: Owner, gpus: number, wanted: number, now: number): number {
    const c: ClientLease = {
      id,
      pid: owner.pid,
      uid: owner.uid,
      gid: owner.gid,
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
    const quota = this.quotaOf(c);
    if (quota !== undefined)
      cap = Math.min(cap, c.pinned + Math.max(0, quota.bytes - this.userLeased(c.uid)));
    return cap;
  }

  vramTotals(): ReadonlyMap<number, number> {
    return this.vramTotal;
  }
}

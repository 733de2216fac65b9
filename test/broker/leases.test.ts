// The lease book's policy: budget invariant, pressure levels, client limits, VRAM shares, release.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LeaseBook } from "../../src/broker/leases.js";
import { DenyReason, PressureLevel } from "../../src/protocol/frame.js";
import { GiB, MiB } from "./helpers.js";

const policy = { pinnedBudget: 10 * GiB, growStep: 256 * MiB, initialGrant: GiB };

describe("LeaseBook", () => {
  it("caps the initial grant and refuses growth past the budget with DENY_BUDGET", () => {
    const b = new LeaseBook(policy);
    expect(b.hello(1, 100, 1, 4 * GiB, 0)).toBe(GiB);
    expect(b.grow(1, 8 * GiB)).toEqual({
      granted: 8 * GiB,
      total: 9 * GiB,
      reason: DenyReason.NONE,
    });
    expect(b.grow(1, 2 * GiB)).toEqual({
      granted: GiB,
      total: 10 * GiB,
      reason: DenyReason.BUDGET,
    });
    expect(b.grow(1, GiB)).toEqual({ granted: 0, total: 10 * GiB, reason: DenyReason.BUDGET });
    expect(b.release(1)).toEqual({ pinned: 10 * GiB, vram: 0 });
    expect(b.leased).toBe(0);
  });

  it("slows growth to the grow step under WARN and stops it under CRITICAL", () => {
    const b = new LeaseBook(policy);
    b.hello(1, 100, 1, 0, 0);
    expect(b.setPressure(PressureLevel.WARN)).toBe(true);
    expect(b.setPressure(PressureLevel.WARN)).toBe(false);
    expect(b.grow(1, GiB)).toEqual({
      granted: 256 * MiB,
      total: 256 * MiB,
      reason: DenyReason.PRESSURE,
    });
    b.setPressure(PressureLevel.CRITICAL);
    expect(b.grow(1, MiB)).toEqual({ granted: 0, total: 256 * MiB, reason: DenyReason.PRESSURE });
    expect(b.cap(1)).toBe(256 * MiB);
    b.setPressure(PressureLevel.OK);
    expect(b.cap(1)).toBe(10 * GiB);
    expect(b.hello(2, 101, 1, GiB, 0)).toBe(GiB);
  });

  it("applies the per-client limit with DENY_CLIENT_LIMIT", () => {
    const b = new LeaseBook({ ...policy, clientPinnedMax: 2 * GiB });
    b.hello(1, 100, 1, GiB, 0);
    expect(b.grow(1, 4 * GiB)).toEqual({
      granted: GiB,
      total: 2 * GiB,
      reason: DenyReason.CLIENT_LIMIT,
    });
  });

  it("returns bytes given back, never more than the lease", () => {
    const b = new LeaseBook(policy);
    b.hello(1, 100, 1, GiB, 0);
    expect(b.giveBack(1, 4 * GiB)).toBe(GiB);
    expect(b.leased).toBe(0);
  });

  it("shares a GPU's VRAM between clients", () => {
    const b = new LeaseBook(policy);
    b.hello(1, 100, 1, 0, 0);
    b.hello(2, 101, 1, 0, 0);
    expect(b.vram(1, 0, 60 * GiB, 80 * GiB)).toBe(60 * GiB);
    expect(b.vram(2, 0, 60 * GiB, 80 * GiB)).toBe(20 * GiB);
    expect(b.vram(2, 1, 60 * GiB, 0)).toBe(60 * GiB); // unknown card size: no basis to cut
    b.release(1);
    expect(b.vram(2, 0, 60 * GiB, 80 * GiB)).toBe(60 * GiB);
  });

  it("never leases more than the budget, whatever the sequence of requests", () => {
    const op = fc.oneof(
      fc.record({
        k: fc.constant("hello" as const),
        id: fc.integer({ min: 1, max: 6 }),
        n: fc.integer({ min: 0, max: 4 * GiB }),
      }),
      fc.record({
        k: fc.constant("grow" as const),
        id: fc.integer({ min: 1, max: 6 }),
        n: fc.integer({ min: 0, max: 8 * GiB }),
      }),
      fc.record({
        k: fc.constant("back" as const),
        id: fc.integer({ min: 1, max: 6 }),
        n: fc.integer({ min: 0, max: 8 * GiB }),
      }),
      fc.record({
        k: fc.constant("release" as const),
        id: fc.integer({ min: 1, max: 6 }),
        n: fc.constant(0),
      }),
      fc.record({
        k: fc.constant("pressure" as const),
        id: fc.constant(0),
        n: fc.integer({ min: 0, max: 2 }),
      }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const b = new LeaseBook(policy);
        for (const o of ops) {
          if (o.k === "hello" && !b.get(o.id)) b.hello(o.id, o.id, 1, o.n, 0);
          if (o.k === "grow") b.grow(o.id, o.n);
          if (o.k === "back") b.giveBack(o.id, o.n);
          if (o.k === "release") b.release(o.id);
          if (o.k === "pressure") b.setPressure(o.n as PressureLevel);
          const sum = b.list().reduce((s, c) => s + c.pinned, 0);
          expect(sum).toBe(b.leased);
          expect(sum).toBeLessThanOrEqual(policy.pinnedBudget);
        }
      }),
    );
  });
});

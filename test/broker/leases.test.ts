// The lease book's policy: budget invariant, pressure levels, client limits, VRAM shares, release.

import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { LeaseBook } from "../../src/broker/leases.js";
import { buildQuotas, parseGroups, parsePasswd } from "../../src/broker/quota.js";
import { DenyReason, PressureLevel } from "../../src/protocol/frame.js";
import { GiB, MiB } from "./helpers.js";

const policy = { pinnedBudget: 10 * GiB, growStep: 256 * MiB, initialGrant: GiB };
/** A client process of uid 1000 (the pure tests' one user). */
const who = (pid: number, uid = 1000) => ({ pid, uid, gid: uid });

describe("LeaseBook", () => {
  it("caps the initial grant and refuses growth past the budget with DENY_BUDGET", () => {
    const b = new LeaseBook(policy);
    expect(b.hello(1, who(100), 1, 4 * GiB, 0)).toBe(GiB);
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
    b.hello(1, who(100), 1, 0, 0);
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
    expect(b.hello(2, who(101), 1, GiB, 0)).toBe(GiB);
  });

  it("applies the per-client limit with DENY_CLIENT_LIMIT", () => {
    const b = new LeaseBook({ ...policy, clientPinnedMax: 2 * GiB });
    b.hello(1, who(100), 1, GiB, 0);
    expect(b.grow(1, 4 * GiB)).toEqual({
      granted: GiB,
      total: 2 * GiB,
      reason: DenyReason.CLIENT_LIMIT,
    });
  });

  it("returns bytes given back, never more than the lease", () => {
    const b = new LeaseBook(policy);
    b.hello(1, who(100), 1, GiB, 0);
    expect(b.giveBack(1, 4 * GiB)).toBe(GiB);
    expect(b.leased).toBe(0);
  });

  it("shares a GPU's VRAM between clients", () => {
    const b = new LeaseBook(policy);
    b.hello(1, who(100), 1, 0, 0);
    b.hello(2, who(101), 1, 0, 0);
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
          if (o.k === "hello" && !b.get(o.id)) b.hello(o.id, who(o.id), 1, o.n, 0);
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

const PASSWD =
  "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\ncarol:x:1002:1002::/home/carol:/bin/sh\n";
const GROUP =
  "root:x:0:\nalice:x:1000:\nbob:x:1001:\ncarol:x:1002:\nml:x:2000:bob,carol\nbig:x:2001:carol\n";

describe("per-user quota", () => {
  const quotas = (cfg: Parameters<typeof buildQuotas>[0]) =>
    buildQuotas(cfg, parsePasswd(PASSWD), parseGroups(GROUP));

  it("per-user quota: two users against a 25% share, each held to it with DENY_QUOTA while the machine has room", () => {
    const { quotas: q, problems } = quotas({ default: { percent: 25 } });
    expect(problems).toEqual([]);
    const b = new LeaseBook({ ...policy, quotas: q }); // 10 GiB budget: 2.5 GiB each
    expect(b.hello(1, who(100, 1000), 1, GiB, 0)).toBe(GiB);
    expect(b.hello(2, who(101, 1000), 1, GiB, 0)).toBe(GiB); // same user, second process
    expect(b.hello(3, who(200, 1001), 1, GiB, 0)).toBe(GiB);
    expect(b.grow(1, 4 * GiB)).toEqual({
      granted: GiB / 2,
      total: 1.5 * GiB,
      reason: DenyReason.QUOTA,
    });
    expect(b.grow(2, MiB)).toEqual({ granted: 0, total: GiB, reason: DenyReason.QUOTA });
    expect(b.cap(2)).toBe(GiB);
    expect(b.grow(3, 4 * GiB)).toMatchObject({ granted: 1.5 * GiB, reason: DenyReason.QUOTA });
    expect(b.userLeased(1000)).toBe(2.5 * GiB);
    expect(b.userLeased(1001)).toBe(2.5 * GiB);
    expect(b.free).toBe(5 * GiB); // the machine is not full: the quota, not the budget, refused
    expect(b.users()).toEqual([
      {
        uid: 1000,
        pinned: 2.5 * GiB,
        clients: 2,
        quotaDenials: 2,
        quota: { bytes: 2.5 * GiB, source: "default" },
      },
      {
        uid: 1001,
        pinned: 2.5 * GiB,
        clients: 1,
        quotaDenials: 1,
        quota: { bytes: 2.5 * GiB, source: "default" },
      },
    ]);
    b.release(1);
    expect(b.grow(2, 2 * GiB)).toMatchObject({ granted: 1.5 * GiB, reason: DenyReason.QUOTA });
  });

  it("per-user quota: a user's own entry wins, else the largest of their groups, else the default", () => {
    const { quotas: q } = quotas({
      default: { bytes: GiB },
      users: { alice: { bytes: 3 * GiB }, "1500": { percent: 50 } },
      groups: { ml: { bytes: 2 * GiB }, big: { percent: 40 } },
    });
    const at = (uid: number, gid = uid) => q.limit(uid, gid, 10 * GiB);
    expect(at(1000)).toEqual({ bytes: 3 * GiB, source: "user alice" });
    expect(at(1001)).toEqual({ bytes: 2 * GiB, source: "group ml" }); // member of ml
    expect(at(1002)).toEqual({ bytes: 4 * GiB, source: "group big" }); // ml and big: the larger
    expect(at(1500)).toEqual({ bytes: 5 * GiB, source: "user 1500" }); // numeric uid, no passwd entry
    expect(at(1600, 2000)).toEqual({ bytes: 2 * GiB, source: "group ml" }); // kernel gid
    expect(at(0)).toEqual({ bytes: GiB, source: "default" });
    expect(q.name(1001)).toBe("bob");
    expect(buildQuotas({ users: { alice: { bytes: 1 } } }, [], []).quotas.limit(0, 0, GiB)).toBe(
      undefined,
    );
  });

  it("per-user quota: names that match no account are reported, one line each", () => {
    const { problems } = quotas({
      users: { mallory: { bytes: GiB } },
      groups: { nogroup: { bytes: GiB } },
    });
    expect(problems).toEqual([
      "broker.quota.users.mallory: no such user in /etc/passwd; use a user name or a numeric uid",
      "broker.quota.groups.nogroup: no such group in /etc/group; use a group name or a numeric gid",
    ]);
  });

  it("per-user quota: no grant takes a user past their quota or the book past its budget, as the budget moves", () => {
    const { quotas: q } = quotas({
      default: { percent: 30 },
      users: { alice: { bytes: 2 * GiB } },
    });
    const op = fc.record({
      k: fc.constantFrom("hello", "grow", "back", "release", "budget"),
      id: fc.integer({ min: 1, max: 6 }),
      n: fc.integer({ min: 0, max: 12 * GiB }),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 80 }), (ops) => {
        const b = new LeaseBook({ ...policy, quotas: q });
        for (const o of ops) {
          const uid = 1000 + (o.id % 3);
          if (o.k === "hello" && !b.get(o.id)) b.hello(o.id, who(o.id, uid), 1, o.n, 0);
          if (o.k === "back") b.giveBack(o.id, o.n);
          if (o.k === "release") b.release(o.id);
          if (o.k === "budget") b.setBudget(o.n);
          if (o.k === "grow" && b.get(o.id)) {
            const r = b.grow(o.id, o.n);
            const quota = q.limit(uid, uid, b.budget)?.bytes ?? Number.POSITIVE_INFINITY;
            if (r.granted > 0) {
              expect(b.leased).toBeLessThanOrEqual(b.budget);
              expect(b.userLeased(uid)).toBeLessThanOrEqual(quota);
            }
            // refused for the quota: the user is at it (whether or not the machine has room)
            if (r.reason === DenyReason.QUOTA)
              expect(b.userLeased(uid)).toBeGreaterThanOrEqual(quota);
          }
        }
      }),
    );
  });
});

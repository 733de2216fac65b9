// The host budget follows the machine: the pure budget functions on recorded-like samples, the
// cgroup reader on a simulated /sys/fs/cgroup tree, and the broker's watchdog moving the budget
// (and pushing LEASE_UPDATE) as a simulated MemAvailable grows and a cgroup limit binds.

import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { budgetTarget, followBudget, hostRoom, hysteresisBand } from "../../src/broker/budget.js";
import {
  type MemorySample,
  parseCgroupSelf,
  parseLimit,
  sampleMemory,
} from "../../src/broker/pressure.js";
import type { BrokerStatus } from "../../src/broker/status.js";
import { frame, MsgType } from "../../src/protocol/frame.js";
import {
  GiB,
  MiB,
  RawClient,
  SIM_CGROUP,
  simulatedHost,
  startTestBroker,
  type TestBroker,
  waitFor,
} from "./helpers.js";

let broker: TestBroker | undefined;

afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

const sample = (total: number, avail: number, cgroup?: { max: number; headroom: number }) =>
  ({
    t: 0,
    mem: { memTotal: total, memAvailable: avail, swapTotal: 0, swapFree: 0 },
    cgroup: cgroup ? { path: "/x", ...cgroup } : undefined,
  }) satisfies MemorySample;

describe("host budget follows the machine (pure)", () => {
  it("host budget follows a VM whose memory grows as it is used (MemTotal 31 GiB at start, 255 GiB later)", () => {
    // The two-GPU H200 VM: 31 GiB at start; after 192 GiB were filled MemTotal read 255 GiB.
    const start = sample(31 * GiB, 29 * GiB);
    const b0 = budgetTarget(start, 0);
    expect(b0).toBe(25 * GiB); // 29 GiB available minus the 4 GiB reserve
    // Leases pinned 24 GiB; the machine grew meanwhile: MemAvailable counts what is left.
    const grown = sample(255 * GiB, 60 * GiB);
    const t1 = budgetTarget(grown, 24 * GiB);
    expect(t1).toBe(24 * GiB + 60 * GiB - Math.floor((255 * GiB) / 10));
    expect(followBudget(b0, t1, hysteresisBand(255 * GiB, 256 * MiB), false)).toBe(t1);
  });

  it("host budget follows: leasing alone does not move it, other memory use shrinks it", () => {
    const before = budgetTarget(sample(64 * GiB, 48 * GiB), 0);
    // 8 GiB leased and pinned: MemAvailable fell by as much, the target stays
    expect(budgetTarget(sample(64 * GiB, 40 * GiB), 8 * GiB)).toBe(before);
    // something else took 10 GiB
    expect(budgetTarget(sample(64 * GiB, 30 * GiB), 8 * GiB)).toBe(before - 10 * GiB);
    expect(budgetTarget(sample(64 * GiB, 2 * GiB), 0)).toBe(0); // never negative
  });

  it("host budget follows the cgroup limit where it is lower (the reserve scales with it)", () => {
    const s = sample(64 * GiB, 48 * GiB, { max: 16 * GiB, headroom: 12 * GiB });
    expect(hostRoom(s)).toEqual({ total: 16 * GiB, available: 12 * GiB, limitedBy: "cgroup" });
    expect(budgetTarget(s, 0)).toBe(8 * GiB); // 12 GiB under the limit minus 4 GiB
    expect(budgetTarget(s, 0, GiB)).toBe(11 * GiB); // a configured host reserve
    const loose = sample(64 * GiB, 8 * GiB, { max: 512 * GiB, headroom: 400 * GiB });
    expect(hostRoom(loose)).toMatchObject({ available: 8 * GiB, limitedBy: "host" });
  });

  it("host budget follows with hysteresis: small moves are ignored, growth waits out pressure", () => {
    const band = hysteresisBand(64 * GiB, 256 * MiB);
    expect(band).toBe(GiB);
    expect(followBudget(40 * GiB, 40.5 * GiB, band, false)).toBe(40 * GiB);
    expect(followBudget(40 * GiB, 39.5 * GiB, band, false)).toBe(40 * GiB);
    expect(followBudget(40 * GiB, 41 * GiB, band, false)).toBe(41 * GiB);
    expect(followBudget(40 * GiB, 45 * GiB, band, true)).toBe(40 * GiB); // under pressure
    expect(followBudget(40 * GiB, 30 * GiB, band, true)).toBe(30 * GiB); // shrinking never waits
    expect(hysteresisBand(4 * GiB, 256 * MiB)).toBe(256 * MiB);
  });

  it("host budget follows: /proc/self/cgroup and memory.max parse for cgroup v2 and v1", () => {
    expect(parseCgroupSelf("0::/user.slice/user-1000.slice/session-3.scope\n")).toEqual({
      v2: true,
      path: "/user.slice/user-1000.slice/session-3.scope",
    });
    expect(parseCgroupSelf("5:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n")).toEqual({
      v2: false,
      path: "/docker/abc",
    });
    expect(parseCgroupSelf("garbage")).toBeUndefined();
    expect(parseLimit("max\n")).toBeUndefined();
    expect(parseLimit("9223372036854771712\n")).toBeUndefined(); // v1's "no limit"
    expect(parseLimit("17179869184\n")).toBe(16 * GiB);
  });

  it("host budget follows: the tightest limit on the way to the root cgroup wins", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spillover-cg-"));
    const sim = simulatedHost(dir);
    expect((await sampleMemory(sim.host))?.cgroup).toBeUndefined(); // "max" everywhere
    sim.setCgroup(32 * GiB, 10 * GiB);
    const parent = join(sim.host.cgroupRoot, "spillover.slice");
    writeFileSync(join(parent, "memory.max"), `${24 * GiB}\n`);
    writeFileSync(join(parent, "memory.current"), `${20 * GiB}\n`);
    expect((await sampleMemory(sim.host))?.cgroup).toEqual({
      path: SIM_CGROUP,
      max: 24 * GiB,
      headroom: 4 * GiB, // the parent's room: its other children use memory too
    });
    // cgroup v1: the memory controller's own hierarchy
    const v1 = join(dir, "v1");
    mkdirSync(join(v1, "proc/self"), { recursive: true });
    mkdirSync(join(v1, "cg/memory/docker/abc"), { recursive: true });
    writeFileSync(join(v1, "proc/meminfo"), "MemTotal: 67108864 kB\nMemAvailable: 50331648 kB\n");
    writeFileSync(join(v1, "proc/self/cgroup"), "4:memory:/docker/abc\n0::/\n");
    writeFileSync(join(v1, "cg/memory/docker/abc/memory.limit_in_bytes"), `${8 * GiB}\n`);
    writeFileSync(join(v1, "cg/memory/docker/abc/memory.usage_in_bytes"), `${3 * GiB}\n`);
    const s = await sampleMemory({ procRoot: join(v1, "proc"), cgroupRoot: join(v1, "cg") });
    expect(s?.cgroup).toEqual({ path: "/docker/abc", max: 8 * GiB, headroom: 5 * GiB });
    expect(s?.psi).toBeUndefined();
  });
});

async function status(b: TestBroker): Promise<BrokerStatus> {
  return JSON.parse((await b.get("/api/v1/status")).body) as BrokerStatus;
}

describe("host budget follows the machine (broker)", () => {
  it("host budget follows a cgroup-limited run and a growing MemAvailable, pushing LEASE_UPDATE", async () => {
    broker = await startTestBroker(
      { initial_grant: GiB, grow_step: 256 * MiB },
      { before: (sim) => sim.setCgroup(16 * GiB, 4 * GiB) },
    );
    const b = broker;
    // 48 GiB available on the host, but 12 GiB under the cgroup's 16 GiB: 12 - 4 GiB reserve
    expect(b.handle.book.budget).toBe(8 * GiB);
    let s = await status(b);
    expect(s.budgets).toMatchObject({ follows: true, limitedBy: "cgroup", pinnedBudget: 8 * GiB });
    expect(s.pressure).toMatchObject({ cgroupMax: 16 * GiB, cgroupHeadroom: 12 * GiB });
    const c = await RawClient.connect(b.socket);
    c.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1n, BigInt(GiB)));
    expect(await c.read()).toMatchObject({ type: MsgType.WELCOME, a: BigInt(GiB) });
    c.send(frame(MsgType.PINNED_GROW, 2n, BigInt(16 * GiB)));
    expect(await c.read()).toMatchObject({ a: BigInt(7 * GiB), b: BigInt(8 * GiB) });

    // The limit is lifted and the VM grows: MemAvailable 48 -> 200 GiB of 256 GiB (8 GiB leased
    // are pinned already). The budget grows to 8 + 200 - 25.6 GiB and the client hears of it.
    b.setCgroup(undefined, 12 * GiB);
    b.setMem(200 * GiB, 256 * GiB);
    const grown = 8 * GiB + 200 * GiB - Math.floor((256 * GiB) / 10);
    // (the watchdog may sample between the two files' updates: one push each time it moves)
    let upd = await c.read();
    while (upd?.type === MsgType.LEASE_UPDATE && upd.a !== BigInt(grown)) upd = await c.read();
    expect(upd).toMatchObject({ type: MsgType.LEASE_UPDATE, a: BigInt(grown) });
    expect(b.handle.book.budget).toBe(grown);
    s = await status(b);
    expect(s.budgets).toMatchObject({ limitedBy: "host", pinnedBudget: grown, target: grown });
    c.send(frame(MsgType.PINNED_GROW, 3n, BigInt(100 * GiB)));
    expect(await c.read()).toMatchObject({ a: BigInt(100 * GiB) });

    // A small wobble of MemAvailable moves nothing (hysteresis) ...
    const before = b.handle.book.budget;
    b.setMem(100 * GiB - 512 * MiB, 256 * GiB); // 100 GiB more pinned by the lease, 0.5 GiB noise
    await new Promise((r) => setTimeout(r, 300));
    expect(b.handle.book.budget).toBe(before);
    // ... a cgroup limit lowered under the leases shrinks it at once, and growth stops.
    b.setCgroup(120 * GiB, 112 * GiB);
    await waitFor(
      () => b.handle.book.budget,
      (v) => v < before,
    );
    // room 8 GiB under 120 GiB, reserve 12 GiB: the target is below what is leased
    expect(b.handle.book.budget).toBe(108 * GiB + 8 * GiB - 12 * GiB);
    c.send(frame(MsgType.PINNED_GROW, 4n, BigInt(GiB)));
    let f = await c.read();
    while (f?.type === MsgType.LEASE_UPDATE) f = await c.read();
    expect(f).toMatchObject({ type: MsgType.PINNED_GRANT, a: 0n, b: BigInt(108 * GiB) });
    expect(
      b.log.lines
        .filter((l) => l.msg === "pinned budget follows the host")
        .map((l) => l.fields?.limited_by),
    ).toEqual(expect.arrayContaining(["host", "cgroup"]));
    c.close();
  });

  it("host budget follows nothing when broker.pinned_budget fixes it", async () => {
    broker = await startTestBroker({ pinned_budget: 4 * GiB });
    const b = broker;
    b.setMem(200 * GiB, 256 * GiB);
    await new Promise((r) => setTimeout(r, 200));
    expect(b.handle.book.budget).toBe(4 * GiB);
    expect((await status(b)).budgets).toMatchObject({ follows: false, pinnedBudget: 4 * GiB });
  });
});

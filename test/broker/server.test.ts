// The broker over its real socket, with the interposer's real C client (t_broker_client) and a
// raw TS client: leases, the ten-process storm, kill -9 reclaim, pid polling, pressure pushes.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import type { BrokerStatus } from "../../src/broker/status.js";
import { DenyReason, ErrorCode, frame, MsgType, PressureLevel } from "../../src/protocol/frame.js";
import {
  brokerClientBinary,
  GiB,
  MiB,
  parseClientLines,
  RawClient,
  startTestBroker,
  type TestBroker,
  waitFor,
} from "./helpers.js";

let bin: string;
let broker: TestBroker | undefined;
const children: ChildProcess[] = [];

beforeAll(() => {
  bin = brokerClientBinary();
});

afterEach(async () => {
  for (const c of children.splice(0)) c.kill("SIGKILL");
  await broker?.close();
  broker = undefined;
});

function runClient(
  socket: string,
  steps: string[],
): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(bin, steps, { env: { ...process.env, SPILLOVER_SOCKET: socket } }, (e, out, err) => {
      resolve({ code: e ? ((e as { code?: number }).code ?? 1) : 0, out, err });
    });
  });
}

async function status(b: TestBroker): Promise<BrokerStatus> {
  const r = await b.get("/api/v1/status");
  expect(r.status).toBe(200);
  return JSON.parse(r.body) as BrokerStatus;
}

describe("broker socket protocol with the C client", () => {
  it("grants at HELLO, grows, shares VRAM, takes bytes back and reclaims at BYE", async () => {
    broker = await startTestBroker({
      pinned_budget: 4 * GiB,
      grow_step: 128 * MiB,
      initial_grant: GiB,
    });
    const r = await runClient(broker.socket, [
      `hello 1 ${2 * GiB}`,
      `grow ${GiB}`,
      `vram 0 ${60 * GiB} ${80 * GiB}`,
      `return ${512 * MiB}`,
      `grow ${4 * GiB}`,
      "cap",
      "bye",
    ]);
    expect(r.err).toBe("");
    const lines = parseClientLines(r.out);
    expect(lines[0]).toEqual({
      op: "hello",
      connected: "1",
      lease: String(GiB),
      step: String(128 * MiB),
      refused: "0",
    });
    expect(lines[1]).toMatchObject({
      op: "grow",
      granted: String(GiB),
      total: String(2 * GiB),
      reason: "0",
    });
    expect(lines[2]).toEqual({ op: "vram", granted: String(60 * GiB) });
    expect(lines[4]).toMatchObject({
      op: "grow",
      granted: String(2.5 * GiB),
      total: String(4 * GiB),
      reason: String(DenyReason.BUDGET),
      connected: "1",
    });
    expect(lines[5]).toMatchObject({ op: "cap", connected: "1" });
    const s = await waitFor(
      () => status(broker as TestBroker),
      (x) => x.clients.length === 0,
    );
    expect(s.budgets.pinnedLeased).toBe(0);
    expect(s.events.map((e) => e.kind)).toEqual(
      expect.arrayContaining(["hello", "grow", "vram", "return", "deny", "release"]),
    );
  });

  it("without a broker the C client answers as standalone", async () => {
    const r = await runClient("/nonexistent/broker.sock", ["hello 1 100", "grow 5", "vram 0 7 9"]);
    expect(parseClientLines(r.out)).toEqual([
      { op: "hello", connected: "0", lease: "0", step: "0", refused: "0" },
      { op: "grow", granted: "5", total: "0", reason: "0", connected: "0" },
      { op: "vram", granted: "7" },
    ]);
  });

  it("ten processes asking together for twice the budget: grants never exceed it, refusals are clean, the API answers", async () => {
    const budget = 2 * GiB;
    broker = await startTestBroker({
      pinned_budget: budget,
      grow_step: 16 * MiB,
      initial_grant: 0,
    });
    const b = broker;
    const each = (2 * budget) / 10;
    const chunk = 16 * MiB;
    let polls = 0;
    let maxLeased = 0;
    let storming = true;
    const poller = (async () => {
      while (storming) {
        const s = await status(b);
        polls++;
        maxLeased = Math.max(maxLeased, s.budgets.pinnedLeased);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const results = await Promise.all(
      Array.from({ length: 10 }, () =>
        runClient(b.socket, ["hello 1 0", `growloop ${chunk} ${each}`, "sleep 300", "bye"]),
      ),
    );
    storming = false;
    await poller;
    const loops = results.map((r) => parseClientLines(r.out).find((l) => l.op === "growloop"));
    const granted = loops.map((l) => Number(l?.granted));
    expect(granted.reduce((a, x) => a + x, 0)).toBe(budget); // demand is 2x: all of it, no more
    expect(maxLeased).toBeLessThanOrEqual(budget);
    expect(polls).toBeGreaterThan(0);
    for (const l of loops) {
      expect(l?.connected).toBe("1"); // a refusal is an answer, not a dropped connection
      if (Number(l?.granted) < each) {
        expect(Number(l?.refused)).toBeGreaterThan(0);
        expect(l?.reason).toBe(String(DenyReason.BUDGET));
      }
    }
    expect(loops.filter((l) => Number(l?.granted) < each).length).toBeGreaterThan(0);
    const s = await waitFor(
      () => status(b),
      (x) => x.clients.length === 0,
    );
    expect(s.budgets.pinnedLeased).toBe(0);
  });

  it("kill -9 of a client returns its lease within 1 s", async () => {
    broker = await startTestBroker({ pinned_budget: 8 * GiB, initial_grant: GiB });
    const b = broker;
    const child = spawn(bin, ["hello 1 1073741824", `grow ${2 * GiB}`, "hold"], {
      env: { ...process.env, SPILLOVER_SOCKET: b.socket },
      stdio: ["pipe", "pipe", "inherit"],
    });
    children.push(child);
    await new Promise<void>((resolve) => {
      child.stdout?.on("data", (d: Buffer) => {
        if (d.toString().includes("holding")) resolve();
      });
    });
    const before = await status(b);
    expect(before.clients.map((c) => [c.pid, c.pinnedLease])).toEqual([[child.pid, 3 * GiB]]);
    const t0 = Date.now();
    child.kill("SIGKILL");
    const after = await waitFor(
      () => status(b),
      (s) => s.budgets.pinnedLeased === 0,
      1000,
    );
    expect(after.budgets.pinnedLeased).toBe(0);
    expect(after.clients).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("reclaims the lease of a client whose process died while its socket stays open (pid poll)", async () => {
    broker = await startTestBroker({ pinned_budget: 8 * GiB, initial_grant: GiB });
    const b = broker;
    // A client connects, says HELLO with its own pid, hands the socket to a child that outlives
    // it, and exits: the socket stays open, the kernel's pid (the one that connected) is gone.
    const script = `
      const net = require("node:net");
      const { spawn } = require("node:child_process");
      const s = net.connect(process.argv[1], () => {
        const f = Buffer.alloc(64);
        f.writeUInt32LE(0x564c5053, 0); f.writeUInt16LE(1, 4); f.writeUInt16LE(1, 6);
        f.writeBigUInt64LE(1n, 8); f.writeBigUInt64LE(BigInt(process.pid), 16);
        f.writeBigUInt64LE(1n, 24); f.writeBigUInt64LE(${GiB}n, 32);
        s.write(f);
      });
      s.once("data", () => {
        const child = spawn("sleep", ["30"], { stdio: ["ignore", s, "ignore"], detached: true });
        console.error("child " + child.pid);
        child.unref();
        process.exit(0);
      });`;
    const client = spawn(process.execPath, ["-e", script, b.socket], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let err = "";
    client.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    await new Promise((r) => client.once("exit", r));
    const sleeper = Number(/child (\d+)/.exec(err)?.[1]);
    expect(sleeper).toBeGreaterThan(0);
    const t0 = Date.now();
    try {
      await waitFor(
        () => b.handle.book.leased,
        (v) => v === 0,
        1000,
      );
      expect(b.handle.book.leased).toBe(0);
      expect(Date.now() - t0).toBeLessThan(1000);
      expect(
        b.log.lines.some(
          (l) =>
            l.msg === "client disconnected" &&
            String(l.fields?.reason) === `pid ${client.pid} has exited`,
        ),
      ).toBe(true);
    } finally {
      process.kill(sleeper, "SIGKILL");
    }
  });

  it("pushes LEASE_UPDATE when pressure changes, and refuses growth under CRITICAL", async () => {
    broker = await startTestBroker({
      pinned_budget: 8 * GiB,
      initial_grant: GiB,
      warn_available: { bytes: 8 * GiB },
      critical_available: { bytes: 4 * GiB },
    });
    const b = broker;
    const c = await RawClient.connect(b.socket);
    c.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1n, BigInt(GiB)));
    expect(await c.read()).toMatchObject({ type: MsgType.WELCOME });
    b.setMem(2 * GiB);
    const upd = await c.read();
    expect(upd).toMatchObject({
      type: MsgType.LEASE_UPDATE,
      seq: 0n,
      a: BigInt(GiB),
      b: BigInt(PressureLevel.CRITICAL),
    });
    c.send(frame(MsgType.PINNED_GROW, 2n, BigInt(MiB)));
    expect(await c.read()).toMatchObject({
      type: MsgType.PINNED_GRANT,
      seq: 2n,
      a: 0n,
      b: BigInt(GiB),
      c: BigInt(DenyReason.PRESSURE),
    });
    b.setMem(6 * GiB);
    expect(await c.read()).toMatchObject({
      type: MsgType.LEASE_UPDATE,
      b: BigInt(PressureLevel.WARN),
    });
    c.send(frame(MsgType.PINNED_GROW, 3n, BigInt(GiB)));
    expect(await c.read()).toMatchObject({
      type: MsgType.PINNED_GRANT,
      a: BigInt(256 * MiB),
      c: BigInt(DenyReason.PRESSURE),
    });
    b.setMem(40 * GiB);
    b.setPsi(50, 40); // PSI alone: full avg10 40% >= 30% -> critical
    expect(await c.read()).toMatchObject({
      type: MsgType.LEASE_UPDATE,
      b: BigInt(PressureLevel.CRITICAL),
    });
    b.setPsi(0, 0);
    expect(await c.read()).toMatchObject({
      type: MsgType.LEASE_UPDATE,
      b: BigInt(PressureLevel.OK),
      a: BigInt(8 * GiB),
    });
    expect((await status(b)).pressure.level).toBe("ok");
    c.close();
  });

  it("the C client applies a pushed LEASE_UPDATE", async () => {
    broker = await startTestBroker({
      pinned_budget: 8 * GiB,
      initial_grant: GiB,
      critical_available: { bytes: 4 * GiB },
    });
    const b = broker;
    const child = spawn(bin, [`hello 1 ${GiB}`, "cap", "sleep 600", "cap", "grow 4096"], {
      env: { ...process.env, SPILLOVER_SOCKET: b.socket },
    });
    children.push(child);
    let out = "";
    child.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await waitFor(
      () => out,
      (o) => o.includes("cap cap="),
    );
    b.setMem(GiB);
    await new Promise((r) => child.once("exit", r));
    const lines = parseClientLines(out);
    expect(lines[1]).toMatchObject({ op: "cap", cap: "18446744073709551615" });
    expect(lines[2]).toMatchObject({ op: "cap", cap: String(GiB), connected: "1" });
    expect(lines[3]).toMatchObject({
      op: "grow",
      granted: "0",
      reason: String(DenyReason.PRESSURE),
    });
  });
});

describe("bad clients", () => {
  const cases: [string, (c: RawClient) => void, number][] = [
    [
      "a request before HELLO",
      (c) => c.send(frame(MsgType.PINNED_GROW, 1n, 1n)),
      ErrorCode.OUT_OF_ORDER,
    ],
    [
      "a second HELLO",
      (c) => {
        c.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1n, 0n));
        c.send(frame(MsgType.HELLO, 2n, BigInt(process.pid), 1n, 0n));
      },
      ErrorCode.OUT_OF_ORDER,
    ],
    [
      "a seq that goes backwards",
      (c) => {
        c.send(frame(MsgType.HELLO, 5n, BigInt(process.pid), 1n, 0n));
        c.send(frame(MsgType.PINNED_GROW, 5n, 1n));
      },
      ErrorCode.OUT_OF_ORDER,
    ],
    ["a broker-to-client message", (c) => c.send(frame(MsgType.WELCOME, 1n)), ErrorCode.BAD_TYPE],
    [
      "HELLO naming a pid that is not the caller's",
      (c) => c.send(frame(MsgType.HELLO, 1n, 4_000_000n, 1n, 0n)),
      ErrorCode.PEER_MISMATCH,
    ],
    [
      "HELLO with 1000 GPUs",
      (c) => c.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1000n, 0n)),
      ErrorCode.BAD_VALUE,
    ],
    ["garbage", (c) => c.send(Buffer.alloc(64, 0x41)), ErrorCode.BAD_MAGIC],
    [
      "an oversized burst (1 MiB of frames at once)",
      (c) => c.send(Buffer.alloc(MiB, 0)),
      ErrorCode.BAD_VALUE,
    ],
  ];

  it.each(cases)(
    "%s: ERROR frame, connection closed, reason logged, others unaffected",
    async (_name, act, code) => {
      broker = await startTestBroker({ pinned_budget: 8 * GiB, initial_grant: GiB });
      const good = await RawClient.connect(broker.socket);
      good.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1n, BigInt(GiB)));
      expect(await good.read()).toMatchObject({ type: MsgType.WELCOME });
      const bad = await RawClient.connect(broker.socket);
      act(bad);
      let f = await bad.read();
      while (f && f.type !== MsgType.ERROR) f = await bad.read();
      expect(f).toMatchObject({ type: MsgType.ERROR, a: BigInt(code) });
      expect(await bad.waitClosed()).toBe(true);
      const warn = broker.log.lines.find(
        (l) => l.level === "warn" && l.msg === "client disconnected",
      );
      expect(warn?.fields?.reason).toEqual(expect.any(String));
      expect(warn?.fields?.error_code).toBe(code);
      good.send(frame(MsgType.PINNED_GROW, 2n, BigInt(GiB)));
      expect(await good.read()).toMatchObject({
        type: MsgType.PINNED_GRANT,
        a: BigInt(GiB),
        b: BigInt(2 * GiB),
      });
      expect(broker.handle.book.leased).toBe(2 * GiB);
      good.close();
      bad.close();
    },
  );

  it("a client that closes mid-frame is logged and reclaimed", async () => {
    broker = await startTestBroker({ pinned_budget: 8 * GiB, initial_grant: GiB });
    const c = await RawClient.connect(broker.socket);
    c.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1n, BigInt(GiB)));
    await c.read();
    c.sock.end(Buffer.alloc(10, 1));
    const b = broker;
    await waitFor(
      () => b.handle.book.leased,
      (v) => v === 0,
    );
    expect(b.log.lines.some((l) => String(l.fields?.reason).includes("partial frame"))).toBe(true);
  });
});

describe("C client robustness", () => {
  it("after fork the child opens its own connection and the parent's keeps working", async () => {
    broker = await startTestBroker({ pinned_budget: 8 * GiB, initial_grant: GiB });
    const b = broker;
    const r = await runClient(b.socket, [`hello 1 ${GiB}`, `fork ${GiB}`, `grow ${GiB}`, "bye"]);
    const lines = parseClientLines(r.out);
    const child = lines.find((l) => l.op === "child");
    expect(child).toMatchObject({ before: "0", connected: "1", lease: String(GiB) });
    expect(lines.find((l) => l.op === "grow")).toMatchObject({
      granted: String(GiB),
      total: String(2 * GiB),
      connected: "1",
    });
    const hellos = b.log.lines
      .filter((l) => l.msg === "client connected")
      .map((l) => l.fields?.pid);
    expect(hellos).toHaveLength(2);
    expect(new Set(hellos).size).toBe(2);
    await waitFor(
      () => b.handle.book.leased,
      (v) => v === 0,
    );
    expect(b.handle.book.leased).toBe(0);
  });

  it("a broker that never answers: HELLO times out and the client runs standalone", async () => {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const net = await import("node:net");
    const path = join(mkdtempSync(join(tmpdir(), "spillover-mute-")), "mute.sock");
    const socks: import("node:net").Socket[] = [];
    const mute = net.createServer((s) => socks.push(s)); // accepts, reads nothing, says nothing
    await new Promise<void>((r) => mute.listen(path, r));
    try {
      const t0 = Date.now();
      const r = await runClient(path, ["hello 1 100", "grow 7"]);
      expect(parseClientLines(r.out)).toEqual([
        { op: "hello", connected: "0", lease: "0", step: "0", refused: "0" },
        { op: "grow", granted: "7", total: "0", reason: "0", connected: "0" },
      ]);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(1900); // the 2 s deadline, not a hang
    } finally {
      for (const s of socks) s.destroy();
      mute.close();
    }
  });

  it("a broker that answers garbage: the client drops it and runs standalone", async () => {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const net = await import("node:net");
    const path = join(mkdtempSync(join(tmpdir(), "spillover-bad-")), "bad.sock");
    const bad = net.createServer((s) => s.on("data", () => s.write(Buffer.alloc(64, 0x5a))));
    await new Promise<void>((r) => bad.listen(path, r));
    try {
      const r = await runClient(path, ["hello 1 100", "vram 0 9 10"]);
      expect(parseClientLines(r.out)).toEqual([
        { op: "hello", connected: "0", lease: "0", step: "0", refused: "0" },
        { op: "vram", granted: "9" },
      ]);
    } finally {
      bad.close();
    }
  });
});

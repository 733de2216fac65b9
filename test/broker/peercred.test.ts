// Peer credentials: the broker takes a client's pid and uid from the kernel (SO_PEERCRED through
// native/build/peercred.node), not from HELLO. Real Unix sockets throughout; where a test needs
// another user than the one running it, the credential reader stands in for the kernel.

import { execFile, spawn } from "node:child_process";
import net from "node:net";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { kernelPeerCred } from "../../src/broker/peercred.js";
import type { BrokerStatus } from "../../src/broker/status.js";
import { ErrorCode, frame, MsgType } from "../../src/protocol/frame.js";
import {
  brokerClientBinary,
  GiB,
  HAVE_NATIVE,
  interposedEnv,
  parseClientLines,
  RawClient,
  startTestBroker,
  type TestBroker,
  workloadBinary,
} from "./helpers.js";

let bin: string;
let broker: TestBroker | undefined;

beforeAll(() => {
  bin = brokerClientBinary();
});

afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

async function refusal(c: RawClient) {
  let f = await c.read();
  while (f && f.type !== MsgType.ERROR) f = await c.read();
  return f;
}

describe("peer credentials", () => {
  it("peer credentials: the addon reads the kernel's pid, uid and gid of a connected Unix socket", async () => {
    const read = kernelPeerCred();
    const srv = net.createServer();
    const path = `${(await import("node:os")).tmpdir()}/spillover-peercred-${process.pid}.sock`;
    await new Promise<void>((r) => srv.listen(path, r));
    try {
      const accepted = new Promise<net.Socket>((r) => srv.once("connection", r));
      const client = net.connect(path);
      const sock = await accepted;
      expect(read(sock)).toEqual({
        pid: process.pid,
        uid: process.getuid?.(),
        gid: process.getgid?.(),
      });
      client.destroy();
      sock.destroy();
      expect(() => read(new net.Socket())).toThrow(/no file descriptor/);
    } finally {
      await new Promise((r) => srv.close(r));
    }
  });

  it("peer credentials: a client that lies about its pid is refused with PEER_MISMATCH, logged, and leases nothing", async () => {
    broker = await startTestBroker({ pinned_budget: 8 * GiB, initial_grant: GiB });
    const other = spawn("sleep", ["30"]); // a live process of the same user: the pid is real
    try {
      const liar = await RawClient.connect(broker.socket);
      liar.send(frame(MsgType.HELLO, 1n, BigInt(other.pid ?? 0), 1n, BigInt(GiB)));
      expect(await refusal(liar)).toMatchObject({
        type: MsgType.ERROR,
        a: BigInt(ErrorCode.PEER_MISMATCH),
      });
      expect(await liar.waitClosed()).toBe(true);
      expect(broker.handle.book.leased).toBe(0);
      const line = broker.log.lines.find(
        (l) => l.msg === "client disconnected" && l.fields?.error_code === ErrorCode.PEER_MISMATCH,
      );
      expect(line?.level).toBe("warn");
      expect(line?.fields).toMatchObject({
        reason: `peer credentials: HELLO names pid ${other.pid}, the kernel says pid ${process.pid} (uid ${process.getuid?.()}) connected`,
        peer_pid: process.pid,
      });
      // the honest client right after is served, and its lease is the kernel's pid and uid
      const honest = await RawClient.connect(broker.socket);
      honest.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1n, BigInt(GiB)));
      expect(await honest.read()).toMatchObject({ type: MsgType.WELCOME, a: BigInt(GiB) });
      const s = JSON.parse((await broker.get("/api/v1/status")).body) as BrokerStatus;
      expect(s.clients).toEqual([
        expect.objectContaining({ pid: process.pid, uid: process.getuid?.(), pinnedLease: GiB }),
      ]);
      honest.close();
    } finally {
      other.kill("SIGKILL");
    }
  });

  it("peer credentials: a per-user broker refuses a connection the kernel says is another uid's", async () => {
    broker = await startTestBroker(
      { pinned_budget: 8 * GiB },
      { peerCred: () => ({ pid: process.pid, uid: 4242, gid: 4242 }) },
    );
    const c = await RawClient.connect(broker.socket);
    c.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1n, BigInt(GiB)));
    expect(await refusal(c)).toMatchObject({ a: BigInt(ErrorCode.PEER_MISMATCH) });
    expect(
      broker.log.lines.some((l) =>
        String(l.fields?.reason).includes(`uid 4242 may not use the broker of uid`),
      ),
    ).toBe(true);
    expect(broker.handle.book.leased).toBe(0);
  });

  it("peer credentials: the C client reports the refusal in one log line and runs standalone", async () => {
    // The real C client always says its own pid: a reader that names another stands in for a
    // PID namespace between client and broker.
    broker = await startTestBroker(
      { pinned_budget: 8 * GiB },
      { peerCred: () => ({ pid: 1, uid: process.getuid?.() ?? 0, gid: 0 }) },
    );
    const b = broker;
    const r = await new Promise<{ out: string; err: string }>((resolve) =>
      execFile(
        bin,
        ["hello 1 1048576", "grow 4096"],
        { env: { ...process.env, SPILLOVER_SOCKET: b.socket } },
        (_e, out, err) => resolve({ out, err }),
      ),
    );
    expect(parseClientLines(r.out)).toEqual([
      {
        op: "hello",
        connected: "0",
        lease: "0",
        step: "0",
        refused: String(ErrorCode.PEER_MISMATCH),
      },
      { op: "grow", granted: "4096", total: "0", reason: "0", connected: "0" },
    ]);
    const lines = r.err.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toBe(
      `spillover: broker at ${b.socket} refused this process: error 6 PEER_MISMATCH (the kernel reports another pid or uid for this connection than HELLO names: a PID namespace between program and broker, or a per-user broker of another user)`,
    );
  });

  it.skipIf(!HAVE_NATIVE)(
    "peer credentials: a CUDA program refused by the broker says so in one log line and runs on its own budgets",
    async () => {
      broker = await startTestBroker(
        { pinned_budget: 8 * GiB },
        { peerCred: () => ({ pid: 1, uid: process.getuid?.() ?? 0, gid: 0 }) },
      );
      const b = broker;
      const r = await new Promise<{ out: string; err: string; code: number | null }>((resolve) =>
        execFile(
          workloadBinary(),
          ["2", "4", "0"],
          { env: interposedEnv(b.socket, b.statsDir) },
          (e, out, err) =>
            resolve({ out, err, code: e ? ((e as { code?: number }).code ?? 1) : 0 }),
        ),
      );
      expect(r.code).toBe(0);
      expect(r.out).toContain("done ok=2 oom=0"); // standalone budgets: SPILLOVER_PINNED_LIMIT=1G
      const refusals = r.err.split("\n").filter((l) => l.includes("refused this process"));
      expect(refusals).toHaveLength(1);
      expect(refusals[0]).toMatch(
        new RegExp(
          `^spillover\\[\\d+\\]: broker at ${b.socket} refused this process: error 6 PEER_MISMATCH `,
        ),
      );
      expect(b.handle.book.leased).toBe(0);
    },
  );
});

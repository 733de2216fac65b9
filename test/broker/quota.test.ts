// Per-user quotas on the broker's real socket: two users against a quota, each held to it, the
// refusal's own reason (QUOTA, not BUDGET), and the quota in status and /metrics. Users are
// stood in for by the credential reader, and, where the tests run as root, by a real second uid.

import { execFile } from "node:child_process";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { PeerCred } from "../../src/broker/peercred.js";
import type { BrokerStatus } from "../../src/broker/status.js";
import { renderStatus } from "../../src/cli/commands/status.js";
import { loadConfig } from "../../src/config/load.js";
import { DenyReason, frame, MsgType } from "../../src/protocol/frame.js";
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

let broker: TestBroker | undefined;

afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

const ACCOUNTS = {
  passwd:
    "root:x:0:0::/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n",
  group: "root:x:0:\nalice:x:1000:\nbob:x:1001:\nml:x:2000:bob\n",
};

async function status(b: TestBroker): Promise<BrokerStatus> {
  return JSON.parse((await b.get("/api/v1/status")).body) as BrokerStatus;
}

describe("per-user quota on the broker socket", () => {
  it("per-user quota: two users against a quota, each held to it and refused with QUOTA while the machine has room", async () => {
    // Connections are accepted in order: alice, bob, alice again.
    const who: PeerCred[] = [
      { pid: process.pid, uid: 1000, gid: 1000 },
      { pid: process.pid, uid: 1001, gid: 1001 },
      { pid: process.pid, uid: 1000, gid: 1000 },
    ];
    let next = 0;
    broker = await startTestBroker(
      {
        system: true,
        pinned_budget: 16 * GiB,
        initial_grant: GiB,
        quota: { default: { bytes: 2 * GiB }, groups: { ml: { percent: 25 } } },
      },
      { peerCred: () => who[next++] as PeerCred, accounts: ACCOUNTS },
    );
    const b = broker;
    const hello = async () => {
      const c = await RawClient.connect(b.socket);
      c.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1n, BigInt(GiB)));
      expect(await c.read()).toMatchObject({ type: MsgType.WELCOME, a: BigInt(GiB) });
      return c;
    };
    const alice = await hello();
    const bob = await hello();
    const alice2 = await hello();
    alice.send(frame(MsgType.PINNED_GROW, 2n, BigInt(4 * GiB)));
    expect(await alice.read()).toMatchObject({
      a: 0n,
      b: BigInt(GiB),
      c: BigInt(DenyReason.QUOTA),
    });
    bob.send(frame(MsgType.PINNED_GROW, 2n, BigInt(8 * GiB)));
    // bob is in ml: 25% of 16 GiB
    expect(await bob.read()).toMatchObject({
      a: BigInt(3 * GiB),
      b: BigInt(4 * GiB),
      c: BigInt(DenyReason.QUOTA),
    });
    alice2.send(frame(MsgType.PINNED_RETURN, 2n, BigInt(GiB)));
    alice.send(frame(MsgType.PINNED_GROW, 3n, BigInt(2 * GiB)));
    expect(await alice.read()).toMatchObject({
      a: BigInt(GiB),
      b: BigInt(2 * GiB),
      c: BigInt(DenyReason.QUOTA),
    });
    expect(b.handle.book.free).toBe(10 * GiB); // the machine had room all along

    const s = await status(b);
    expect(s.users).toEqual([
      {
        uid: 1000,
        user: "alice",
        clients: 2,
        pinnedLeased: 2 * GiB,
        quota: 2 * GiB,
        quotaSource: "default",
        quotaDenials: 2,
      },
      {
        uid: 1001,
        user: "bob",
        clients: 1,
        pinnedLeased: 4 * GiB,
        quota: 4 * GiB,
        quotaSource: "group ml",
        quotaDenials: 1,
      },
    ]);
    expect(s.clients.map((c) => c.user).sort()).toEqual(["alice", "alice", "bob"]);
    expect(renderStatus(s).split("\n").slice(1, 3)).toEqual([
      "user alice (uid 1000): pinned leased 2.0GiB of quota 2.0GiB (default), 2 refused",
      "user bob (uid 1001): pinned leased 4.0GiB of quota 4.0GiB (group ml), 1 refused",
    ]);
    expect(s.events.filter((e) => e.kind === "deny").map((e) => e.detail)).toEqual([
      "quota",
      "quota",
      "quota",
    ]);
    const m = (await b.get("/metrics")).body;
    expect(m).toContain(`spillover_user_pinned_quota_bytes{uid="1000",user="alice"} ${2 * GiB}`);
    expect(m).toContain(`spillover_user_pinned_leased_bytes{uid="1001",user="bob"} ${4 * GiB}`);
    expect(m).toContain('spillover_user_quota_denials_total{uid="1000",user="alice"} 2');
    for (const c of [alice, bob, alice2]) c.close();
  });

  it("per-user quota: a quota naming no account stops the broker with one line per name", async () => {
    await expect(
      startTestBroker(
        { quota: { users: { mallory: { bytes: GiB } } } },
        { accounts: ACCOUNTS, http: false },
      ),
    ).rejects.toThrow(
      "broker.quota.users.mallory: no such user in /etc/passwd; use a user name or a numeric uid",
    );
  });

  it("per-user quota: [broker.quota] in TOML, with one line per bad value", async () => {
    const dir = (await import("node:fs")).mkdtempSync(
      join((await import("node:os")).tmpdir(), "spillover-quota-"),
    );
    const file = join(dir, "config.toml");
    writeFileSync(
      file,
      '[broker.quota]\ndefault = "25%"\nusers = { alice = "64G", "1001" = "10%" }\ngroups = { ml = "50%" }\n',
    );
    const c = await loadConfig({ env: {}, configFile: file, userFile: null, systemFile: null });
    expect(c.broker.quota).toEqual({
      default: { percent: 25 },
      users: { alice: { bytes: 64 * GiB }, "1001": { percent: 10 } },
      groups: { ml: { percent: 50 } },
    });
    writeFileSync(file, '[broker.quota]\nusers = { alice = "lots" }\nshare = 3\n');
    await expect(
      loadConfig({ env: {}, configFile: file, userFile: null, systemFile: null }),
    ).rejects.toThrow(
      new RegExp(
        `${file}: broker.quota.users.alice = "lots": expected a size[^\\n]*\\nspillover: ${file}: broker.quota.share: unknown key`,
      ),
    );
  });

  it.skipIf(!HAVE_NATIVE)(
    "per-user quota: a CUDA program past its user's quota gets CUDA_ERROR_OUT_OF_MEMORY and one line saying why",
    async () => {
      broker = await startTestBroker({
        pinned_budget: GiB,
        grow_step: 4 * 2 ** 20,
        initial_grant: 0,
        quota: { default: { bytes: 16 * 2 ** 20 } },
      });
      const b = broker;
      const r = await new Promise<{ out: string; err: string }>((resolve) =>
        execFile(
          workloadBinary(),
          ["6", "4", "0"],
          { env: interposedEnv(b.socket, b.statsDir) },
          (_e, out, err) => resolve({ out, err }),
        ),
      );
      // 2 MiB of VRAM, then 16 MiB of pinned lease: 4 x 4 MiB fit, the rest is refused
      expect(r.out).toContain("done ok=4 oom=2");
      const lines = r.err.split("\n").filter((l) => l.includes("quota"));
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        /^spillover\[\d+\]: the broker refused more pinned memory: this user is at its quota \(lease 16 MiB\)/,
      );
      expect(b.log.lines.filter((l) => l.fields?.reason === "quota").length).toBeGreaterThan(0);
    },
  );

  const root = process.getuid?.() === 0;
  it.skipIf(!root)(
    "per-user quota: a real second user (uid 54321, run as root) is held to its quota by the kernel's uid",
    async () => {
      const bin = brokerClientBinary();
      broker = await startTestBroker(
        {
          system: true,
          pinned_budget: 16 * GiB,
          initial_grant: GiB,
          quota: { users: { "54321": { bytes: 3 * GiB } }, default: { bytes: 5 * GiB } },
        },
        { accounts: ACCOUNTS },
      );
      const b = broker;
      chmodSync(b.dir, 0o750); // the system socket's directory is group-readable; so is its parent here
      const run = (uid: number) =>
        new Promise<{ out: string; err: string }>((resolve) =>
          execFile(
            bin,
            ["hello 1 1073741824", `grow ${8 * GiB}`, "sleep 200", "bye"],
            { env: { PATH: process.env.PATH, SPILLOVER_SOCKET: b.socket }, uid, gid: 0 },
            (_e, out, err) => resolve({ out, err }),
          ),
        );
      const [other, me] = await Promise.all([run(54321), run(0)]);
      expect(other.err).toBe("");
      expect(parseClientLines(other.out)[1]).toMatchObject({
        op: "grow",
        granted: String(2 * GiB),
        total: String(3 * GiB),
        reason: String(DenyReason.QUOTA),
        connected: "1",
      });
      expect(parseClientLines(me.out)[1]).toMatchObject({
        granted: String(4 * GiB),
        total: String(5 * GiB),
        reason: String(DenyReason.QUOTA),
      });
      const users = b.log.lines
        .filter((l) => l.msg === "client connected")
        .map((l) => l.fields?.uid)
        .sort();
      expect(users).toEqual([0, 54321]);
    },
  );
});

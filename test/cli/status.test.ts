// `spillover status` from the stats records (the shared C fixture, patched to a live pid) and from a
// broker's API over its Unix socket; stale records of dead processes are skipped.

import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { BrokerStatus } from "../../src/broker/status.js";
import { collectStatus, renderStatus } from "../../src/cli/commands/status.js";
import { readStatsFile } from "../../src/protocol/stats.js";
import { ROOT, startTestBroker } from "../broker/helpers.js";
import { runCli } from "../helpers/cli.js";

const FIXTURE = join(ROOT, "test/fixtures/protocol/stats.bin");
const uid = process.getuid?.() ?? 0;

/** The fixture record, rewritten for `pid`. */
function record(pid: number): Buffer {
  const b = Buffer.from(readFileSync(FIXTURE));
  b.writeInt32LE(pid, 24);
  return b;
}

function statsDir(): string {
  const d = mkdtempSync(join(tmpdir(), "spillover-shm-"));
  writeFileSync(join(d, `spillover-${uid}-${process.pid}.stats`), record(process.pid));
  writeFileSync(join(d, `spillover-${uid}-4000000.stats`), record(4000000)); // stale: no such pid
  writeFileSync(join(d, `spillover-${uid + 1}-${process.pid}.stats`), record(process.pid)); // another user's
  writeFileSync(join(d, "unrelated.txt"), "x");
  return d;
}

function cli(argv: string[], env: NodeJS.ProcessEnv) {
  return runCli(argv, env);
}

describe("spillover status", () => {
  it("reads the stats records when no broker runs, skipping dead pids and other users", async () => {
    const d = statsDir();
    const r = await cli(["status", "--json"], {
      SPILLOVER_STATS_DIR: d,
      SPILLOVER_SOCKET: join(d, "none.sock"),
    });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const s = JSON.parse(r.out) as BrokerStatus;
    expect(s.source).toBe("stats-files");
    expect(s.broker).toBeNull();
    expect(s.processes).toHaveLength(1);
    const p = s.processes[0];
    expect(p).toMatchObject({
      pid: process.pid,
      command: "python3 train.py --epochs 3",
      mode: "broker",
      ooms: 3,
      pinnedLease: 8 * 2 ** 30,
    });
    expect(p?.stream).toEqual({
      stagedBytes: 48 * 2 ** 30,
      stagedRanges: 640,
      stageHits: 12800,
      lateStages: 7,
      writebackPages: 96,
      inplaceLaunches: 320,
      copyBusyNs: 2_750_000_000,
      budgetBytes: 10 * 2 ** 30,
      fallbacks: 2,
    });
    expect(p?.gpus[0]).not.toHaveProperty("swap");
    expect(p?.gpus[0]).toMatchObject({
      gpu: 0,
      vram: 62 * 2 ** 30,
      pinned: 5.5 * 2 ** 30,
      vramPeak: 65 * 2 ** 30,
      passthrough: 100 * 2 ** 20,
    });
  });

  it("prints a table with one row per process and GPU", async () => {
    const d = statsDir();
    const r = await cli(["status"], {
      SPILLOVER_STATS_DIR: d,
      SPILLOVER_SOCKET: join(d, "none.sock"),
    });
    const lines = r.out.trim().split("\n");
    expect(lines[0]).toBe("no broker running: read from the stats records");
    expect(lines[1]).toMatch(
      /^PID\s+GPU\s+VRAM\s+VRAM-PEAK\s+PINNED\s+PINNED-PEAK\s+OTHER\s+LEASE\s+MODE\s+OOMS\s+COMMAND$/,
    );
    // VRAM and VRAM-PEAK both count spillover's VRAM pages (60 GiB now, 65 GiB at most); the
    // 100 MiB passed to the driver and the program's own 2 GiB + 512 MiB cuMemCreate are OTHER.
    expect(lines[2]).toMatch(
      new RegExp(
        `^${process.pid}\\s+0\\s+60\\.0GiB\\s+65\\.0GiB\\s+5\\.0GiB\\s+7\\.0GiB\\s+2\\.6GiB\\s+8\\.0GiB\\s+broker\\s+3\\s+python3 train\\.py --epochs 3$`,
      ),
    );
    expect(lines[3]).toMatch(/^\s+1\s+30\.0GiB\s+31\.0GiB\s+0B\s+0B\s+2\.6GiB$/);
    expect(lines[4]).toMatch(
      /^VRAM, PINNED: spillover's pages in each tier now, with their peaks; OTHER:/,
    );
    // the fixture's streaming block: one row for the process, then the legend
    expect(lines[5]).toBe("");
    expect(lines[6]).toMatch(
      /^PID\s+STAGED\s+RANGES\s+HITS\s+LATE\s+IN-PLACE\s+COPY-BUSY\s+WRITE-BACK\s+FALLBACKS\s+BUDGET$/,
    );
    expect(lines[7]).toMatch(
      new RegExp(
        `^${process.pid}\\s+48\\.0GiB\\s+640\\s+12800\\s+7\\s+320\\s+2\\.75 s\\s+96\\s+2\\s+10\\.0GiB$`,
      ),
    );
    expect(lines[8]).toMatch(/^STAGED: bytes copied into VRAM ahead of the kernels/);
    expect(lines).toHaveLength(9);
  });

  it("says in one line that nothing was staged when the streaming block is zero (older records too)", async () => {
    const d = mkdtempSync(join(tmpdir(), "spillover-shm-"));
    const old = record(process.pid);
    old.fill(0, 2456); // the streaming block and the padding after it
    writeFileSync(join(d, `spillover-${uid}-${process.pid}.stats`), old);
    const r = await cli(["status"], {
      SPILLOVER_STATS_DIR: d,
      SPILLOVER_SOCKET: join(d, "none.sock"),
    });
    const lines = r.out.trim().split("\n");
    expect(lines.at(-1)).toBe(
      "streaming: nothing staged (streaming off, or no kernel has read host memory)",
    );
    expect(lines).toHaveLength(6);
    const j = await cli(["status", "--json"], {
      SPILLOVER_STATS_DIR: d,
      SPILLOVER_SOCKET: join(d, "none.sock"),
    });
    expect((JSON.parse(j.out) as BrokerStatus).processes[0]?.stream.stagedBytes).toBe(0);
  });

  it("does not check SPILLOVER_* budgets it does not use (a bad SPILLOVER_VRAM_LIMIT is run's problem)", async () => {
    const d = statsDir();
    const r = await cli(["status"], {
      SPILLOVER_STATS_DIR: d,
      SPILLOVER_SOCKET: join(d, "none.sock"),
      SPILLOVER_VRAM_LIMIT: "12X",
      SPILLOVER_MIGRATE: "maybe",
    });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
  });

  it("reads a broker started before the streaming counters existed as having staged nothing", async () => {
    const d = mkdtempSync(join(tmpdir(), "spillover-oldbroker-"));
    const sock = join(d, "broker.sock");
    const listener = net.createServer((c) => c.end());
    // what such a broker sends: a process view without `stream`
    const old = {
      pid: 7,
      command: "old",
      mode: "broker",
      exited: false,
      gpus: [],
      vram: 0,
      pinned: 0,
      pinnedLease: 0,
      ooms: 0,
      top: [],
    };
    const api = http.createServer((_req, res) => {
      res.end(
        JSON.stringify({
          version: 1,
          source: "broker",
          broker: { pid: 1, socket: sock, system: false, startedMs: 0, nowMs: 0 },
          budgets: { pinnedBudget: 0, pinnedLeased: 0, pinnedFree: 0, growStep: 0, vramTotal: {} },
          pressure: { level: "ok", memAvailable: 0 },
          clients: [],
          processes: [old],
          events: [],
          eventCounts: {},
        }),
      );
    });
    await new Promise<void>((r) => listener.listen(sock, r));
    await new Promise<void>((r) => api.listen(join(d, "http.sock"), r));
    try {
      const s = await collectStatus({ env: {}, socket: sock, statsDir: "/nonexistent" });
      expect(s.processes[0]?.stream.stagedBytes).toBe(0);
      expect(renderStatus(s).split("\n").at(-1)).toBe(
        "streaming: nothing staged (streaming off, or no kernel has read host memory)",
      );
    } finally {
      listener.close();
      api.close();
    }
  });

  it("asks the broker's API when a broker runs", async () => {
    const b = await startTestBroker({}, { http: false });
    try {
      copyFileSync(
        join(statsDir(), `spillover-${uid}-${process.pid}.stats`),
        join(b.statsDir, `spillover-${uid}-${process.pid}.stats`),
      );
      await new Promise((r) => setTimeout(r, 300)); // a telemetry tick (100 ms in tests)
      const s = await collectStatus({ env: {}, socket: b.socket, statsDir: "/nonexistent" });
      expect(s.source).toBe("broker");
      expect(s.broker?.socket).toBe(b.socket);
      expect(s.processes.map((p) => p.pid)).toEqual([process.pid]);
      expect(renderStatus(s).split("\n")[0]).toMatch(
        /^broker pid \d+ at .*: pinned leased 0B of 41\.6GiB, RAM pressure ok/,
      );
    } finally {
      await b.close();
    }
  });

  it("says so when nothing uses spillover", () => {
    const s = { processes: [], broker: null, clients: [] } as unknown as BrokerStatus;
    expect(renderStatus(s)).toBe(
      "no broker running: read from the stats records\nno processes are using spillover",
    );
  });
});

describe("stats seqlock", () => {
  it("waits for the writer to leave (odd seq) and then reads the record", async () => {
    const d = mkdtempSync(join(tmpdir(), "spillover-seq-"));
    const p = join(d, "r.stats");
    const b = record(1234);
    b.writeBigUInt64LE(43n, 16);
    writeFileSync(p, b);
    setTimeout(() => {
      b.writeBigUInt64LE(44n, 16);
      writeFileSync(p, b);
    }, 5);
    const r = await readStatsFile(p, 1000);
    expect(r.ok && r.record.seq).toBe(44);
  });

  it("gives up on a writer that never leaves", async () => {
    const d = mkdtempSync(join(tmpdir(), "spillover-seq-"));
    const p = join(d, "r.stats");
    const b = record(1234);
    b.writeBigUInt64LE(43n, 16);
    writeFileSync(p, b);
    expect(await readStatsFile(p, 3)).toMatchObject({ ok: false, busy: true });
  });
});

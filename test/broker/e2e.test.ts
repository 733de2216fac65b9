// End to end through the real interposer (libspillover.so) and the fake driver: CUDA programs whose
// allocations spill to pinned pages leased from the broker. Over the budget they must get
// CUDA_ERROR_OUT_OF_MEMORY; a killed program's lease must come back within 1 s.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { BrokerStatus } from "../../src/broker/status.js";
import {
  HAVE_NATIVE,
  INTERPOSER,
  interposedEnv,
  MiB,
  ROOT,
  startTestBroker,
  type TestBroker,
  waitFor,
  workloadBinary,
} from "./helpers.js";

let broker: TestBroker | undefined;
const procs: ChildProcess[] = [];

afterEach(async () => {
  for (const p of procs.splice(0)) p.kill("SIGKILL");
  await broker?.close();
  broker = undefined;
});

interface Workload {
  readonly proc: ChildProcess;
  out: string;
  readonly exited: Promise<number | null>;
}

function workload(b: TestBroker, args: string[]): Workload {
  const proc = spawn(workloadBinary(), args, {
    env: interposedEnv(b.socket, b.statsDir),
    stdio: ["pipe", "pipe", "pipe"],
  });
  procs.push(proc);
  const w: Workload = {
    proc,
    out: "",
    exited: new Promise((r) => proc.once("exit", (code) => r(code))),
  };
  proc.stdout?.on("data", (d: Buffer) => {
    w.out += d.toString();
  });
  proc.stderr?.on("data", (d: Buffer) => {
    w.out += d.toString();
  });
  return w;
}

async function status(b: TestBroker): Promise<BrokerStatus> {
  const r = await b.get("/api/v1/status");
  expect(r.status).toBe(200);
  return JSON.parse(r.body) as BrokerStatus;
}

describe.skipIf(!HAVE_NATIVE)("broker + interposer + fake driver", () => {
  it("ten CUDA programs asking for twice the pinned budget: grants stay within it, over-askers get CUDA_ERROR_OUT_OF_MEMORY", async () => {
    const budget = 160 * MiB;
    broker = await startTestBroker({
      pinned_budget: budget,
      grow_step: 16 * MiB,
      initial_grant: 0,
    });
    const b = broker;
    // each: 2 x 16 MiB, all spilled to pinned pages (VRAM limit 2M) -> 320 MiB asked in all
    const ws = Array.from({ length: 10 }, () => workload(b, ["2", "16", "0", "hold"]));
    let polls = 0;
    let maxLeased = 0;
    const done = () => ws.every((w) => w.out.includes("done"));
    while (!done()) {
      const s = await status(b); // the broker keeps answering during the storm
      polls++;
      maxLeased = Math.max(maxLeased, s.budgets.pinnedLeased);
      await new Promise((r) => setTimeout(r, 10));
    }
    const s = await status(b);
    maxLeased = Math.max(maxLeased, s.budgets.pinnedLeased);
    expect(polls).toBeGreaterThan(0);
    expect(maxLeased).toBeLessThanOrEqual(budget);
    expect(s.clients.reduce((a, c) => a + c.pinnedLease, 0)).toBeLessThanOrEqual(budget);
    const results = ws.map((w) => {
      const m = /done ok=(\d+) oom=(\d+)/.exec(w.out);
      return { ok: Number(m?.[1]), oom: Number(m?.[2]), out: w.out };
    });
    const ok = results.reduce((a, r) => a + r.ok, 0);
    const oom = results.reduce((a, r) => a + r.oom, 0);
    expect(ok + oom).toBe(20);
    expect(ok * 16 * MiB).toBeLessThanOrEqual(budget);
    expect(oom).toBeGreaterThanOrEqual(10); // twice the budget asked for: at least half refused
    for (const r of results) {
      // every failed allocation is a clean CUDA_ERROR_OUT_OF_MEMORY (2), never another error
      for (const m of r.out.matchAll(/alloc \d+ rc=(\d+)/g)) expect(["0", "2"]).toContain(m[1]);
    }
    for (const w of ws) w.proc.stdin?.end();
    await Promise.all(ws.map((w) => w.exited));
    const after = await waitFor(
      () => status(b),
      (x) => x.budgets.pinnedLeased === 0 && x.clients.length === 0,
    );
    expect(after.budgets.pinnedLeased).toBe(0);
  });

  it("kill -9 of a CUDA program returns its lease within 1 s", async () => {
    broker = await startTestBroker({
      pinned_budget: 256 * MiB,
      grow_step: 16 * MiB,
      initial_grant: 16 * MiB,
    });
    const b = broker;
    const w = workload(b, ["4", "16", "0", "hold"]);
    await waitFor(
      () => w.out,
      (o) => o.includes("done"),
      10_000,
    );
    expect(w.out).toContain("done ok=4 oom=0");
    const before = await status(b);
    expect(before.clients.find((c) => c.pid === w.proc.pid)?.pinnedLease).toBeGreaterThanOrEqual(
      64 * MiB,
    );
    // the broker also sees the process's own stats record
    const seen = await waitFor(
      () => status(b),
      (s) => s.processes.some((p) => p.pid === w.proc.pid && p.vram + p.pinned >= 64 * MiB),
    );
    expect(seen.processes.find((p) => p.pid === w.proc.pid)?.mode).toBe("broker");
    const t0 = Date.now();
    w.proc.kill("SIGKILL");
    const after = await waitFor(
      () => status(b),
      (s) => s.budgets.pinnedLeased === 0,
      1000,
    );
    expect(after.budgets.pinnedLeased).toBe(0);
    expect(Date.now() - t0).toBeLessThan(1000);
  });

  it("spillover run under a broker, with spillover status --json captured mid-run (item 4 on the CPU)", async () => {
    broker = await startTestBroker({
      pinned_budget: 256 * MiB,
      grow_step: 16 * MiB,
      initial_grant: 16 * MiB,
    });
    const b = broker;
    const env = interposedEnv(b.socket, b.statsDir, {
      SPILLOVER_LIB: INTERPOSER,
      HOME: "/nonexistent",
    });
    delete env.LD_PRELOAD; // `run` sets it
    delete env.SPILLOVER_VRAM_LIMIT; // and the budget, from its flag
    const cli = [process.execPath, "--import", "tsx", join(ROOT, "src/cli/bin.ts")];
    const run = spawn(
      cli[0] as string,
      [
        ...cli.slice(1),
        "run",
        "--vram-limit",
        "2M",
        "--socket",
        b.socket,
        "--",
        workloadBinary(),
        "6",
        "8",
        "50",
        "hold",
      ],
      { env, stdio: ["pipe", "pipe", "pipe"] },
    );
    procs.push(run);
    let out = "";
    run.stdout?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    run.stderr?.on("data", (d: Buffer) => {
      out += d.toString();
    });
    await waitFor(
      () => out,
      (o) => o.includes("done"),
      20_000,
    );
    expect(out).toContain("done ok=6 oom=0");
    await new Promise((r) => setTimeout(r, 300)); // a telemetry tick
    const json = await new Promise<string>((resolve, reject) =>
      execFile(
        cli[0] as string,
        [...cli.slice(1), "status", "--json", "--socket", b.socket],
        { env },
        (e, o) => (e ? reject(e) : resolve(o)),
      ),
    );
    const s = JSON.parse(json) as BrokerStatus;
    expect(s.source).toBe("broker");
    const p = s.processes.find((x) => x.command.includes("t_broker_workload"));
    expect(p?.mode).toBe("broker");
    expect((p?.vram ?? 0) + (p?.pinned ?? 0)).toBe(48 * MiB);
    expect(p?.gpus[0]?.vramLimit).toBe(2 * MiB);
    expect(s.clients.map((c) => c.pid)).toContain(p?.pid);
    run.stdin?.end();
    const code = await new Promise((r) => run.once("exit", r));
    expect(code).toBe(0);
  }, 60_000);
});

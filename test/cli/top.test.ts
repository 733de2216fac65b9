// `spillover top`: the pure frame renderer, and one end-to-end run inside tmux (alternate screen,
// live rows, q quits and restores the terminal).

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { BrokerStatus } from "../../src/broker/status.js";
import type { ProcessView } from "../../src/broker/view.js";
import { renderFrame } from "../../src/cli/commands/top-frame.js";
import { ROOT } from "../broker/helpers.js";

const GiB = 2 ** 30;
const noStream: ProcessView["stream"] = {
  stagedBytes: 0,
  stagedRanges: 0,
  stageHits: 0,
  lateStages: 0,
  writebackPages: 0,
  inplaceLaunches: 0,
  copyBusyNs: 0,
  budgetBytes: 0,
  fallbacks: 0,
};
const proc = (
  pid: number,
  vram: number,
  pinned: number,
  cmd: string,
  stream: ProcessView["stream"] = noStream,
): ProcessView =>
  ({
    pid,
    command: cmd,
    mode: "broker",
    exited: false,
    gpus: [],
    vram,
    pinned,
    vramPeak: vram,
    pinnedPeak: pinned,
    pinnedLimit: 0,
    pinnedLease: pinned,
    pinnedPool: pinned,
    ooms: pid === 2 ? 4 : 0,
    leaseDenials: 0,
    largestAlloc: 0,
    migrations: 0,
    updatedMs: 0,
    top: [],
    stream,
  }) as ProcessView;

const status: BrokerStatus = {
  version: 1,
  source: "broker",
  broker: { pid: 99, socket: "/s", system: false, startedMs: 0, nowMs: 0 },
  budgets: {
    pinnedBudget: 100 * GiB,
    pinnedLeased: 25 * GiB,
    pinnedFree: 75 * GiB,
    growStep: GiB,
    vramTotal: {},
  },
  pressure: {
    level: "warn",
    levelCode: 1,
    why: "x",
    memTotal: 128 * GiB,
    memAvailable: 32 * GiB,
    swapTotal: 0,
    swapFree: 0,
    psiSome: 12.5,
    psiFull: 0,
  },
  clients: [
    {
      pid: 1,
      gpus: 1,
      pinnedLease: 20 * GiB,
      pinnedPeak: 0,
      vram: {},
      grants: 1,
      denials: 0,
      sinceMs: 0,
    },
  ],
  processes: [
    proc(1, 70 * GiB, 10 * GiB, "python3 serve.py", {
      stagedBytes: 12 * GiB,
      stagedRanges: 160,
      stageHits: 3200,
      lateStages: 5,
      writebackPages: 64,
      inplaceLaunches: 40,
      copyBusyNs: 1_500_000_000,
      budgetBytes: 4 * GiB,
      fallbacks: 1,
    }),
    proc(2, 8 * GiB, 15 * GiB, "llama-server -m big.gguf --ctx-size 32768"),
  ],
  events: [],
  eventCounts: {},
};
const now = new Date("2026-11-27T12:34:56Z");

describe("renderFrame", () => {
  it("draws header, RAM, pressure, lease, streaming and one row per process (GPU '-' without a record), largest first", () => {
    const f = renderFrame({ now, status }, 100, 12);
    expect(f).toEqual([
      "spillover top  12:34:56  broker pid 99                                                       q: quit",
      "RAM    [#######################.......] 96.0GiB used of 128GiB, available 32.0GiB  pressure WARN",
      "PSI    some avg10 12.50%  full avg10 0.00%",
      "LEASE  [########......................] pinned 25.0GiB leased of 100GiB, 1 client(s)",
      "TIERS  VRAM 78.0GiB   pinned 25.0GiB   OOMs 4",
      "STREAM staged 12.0GiB in 160 ranges   budget 4.0GiB   copy engine busy 1.50 s",
      "       hits 3200   late 5   in place 40   write-back 64 pages   fallbacks 1",
      "",
      "PID     GPU     VRAM   PINNED PEAK-PIN    LEASE   STAGED OOMS MODE       COMMAND",
      "1         -  70.0GiB  10.0GiB  10.0GiB  20.0GiB  12.0GiB    0 broker     python3 serve.py",
      "2         -   8.0GiB  15.0GiB  15.0GiB  15.0GiB       0B    4 broker     llama-server -m big.gguf --",
      "",
    ]);
  });

  it("sums the streaming counters of every process, and says so in a line when nothing was staged", () => {
    const a = status.processes[0] as ProcessView;
    const twice = { ...status, processes: [a, { ...a, pid: 3 }] };
    expect(renderFrame({ now, status: twice }, 100, 8).slice(5, 7)).toEqual([
      "STREAM staged 24.0GiB in 320 ranges   budget 8.0GiB   copy engine busy 3.00 s",
      "       hits 6400   late 10   in place 80   write-back 128 pages   fallbacks 2",
    ]);
    const idle = { ...status, processes: [status.processes[1] as ProcessView] };
    expect(renderFrame({ now, status: idle }, 100, 8)[5]).toBe(
      "STREAM nothing staged (streaming off, or no kernel has read host memory)",
    );
  });

  it("a process on two GPUs gets one row per GPU, its own columns on the first", () => {
    const gpu = (i: number, vram: number, pinned: number, passthrough: number) =>
      ({ gpu: i, vram, pinned, passthrough }) as ProcessView["gpus"][number];
    const two = {
      ...proc(7, 30 * GiB, 6 * GiB, "torchrun train.py"),
      gpus: [gpu(0, 20 * GiB, 4 * GiB, GiB), gpu(1, 8 * GiB, 2 * GiB, GiB)],
    };
    const f = renderFrame({ now, status: { ...status, processes: [two] } }, 100, 10);
    expect(f.slice(7, 10)).toEqual([
      "PID     GPU     VRAM   PINNED PEAK-PIN    LEASE   STAGED OOMS MODE       COMMAND",
      "7         0  21.0GiB   4.0GiB   6.0GiB   6.0GiB       0B    0 broker     torchrun train.py",
      "          1   9.0GiB   2.0GiB",
    ]);
  });

  it("never draws wider than the terminal or more rows than it has", () => {
    for (const [cols, rows] of [
      [40, 5],
      [20, 3],
      [100, 8],
      [1, 1],
    ] as const) {
      const f = renderFrame({ now, status }, cols, rows);
      expect(f).toHaveLength(rows);
      for (const l of f) expect(l.length).toBeLessThanOrEqual(cols);
    }
    expect(renderFrame({ now, status }, 100, 10).at(-1)).toBe("... 2 more");
  });

  it("without a broker shows RAM from its own sample", () => {
    const f = renderFrame(
      {
        now,
        status: { ...status, broker: null, clients: [], processes: [] },
        memory: {
          t: 0,
          mem: { memTotal: 16 * GiB, memAvailable: 12 * GiB, swapTotal: 0, swapFree: 0 },
        },
      },
      90,
      9,
    );
    expect(f[0]).toContain("no broker (stats records)");
    expect(f[1]).toContain("4.0GiB used of 16.0GiB, available 12.0GiB");
    expect(f[2]).toBe("PSI    some avg10 n/a%  full avg10 n/a%");
    expect(f[8]).toBe("  no processes are using spillover");
  });
});

function hasTmux(): boolean {
  try {
    execFileSync("tmux", ["-V"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

describe.skipIf(!hasTmux())("spillover top in tmux", () => {
  it("shows live processes, quits on q and restores the screen", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spillover-top-"));
    const sleeper = spawn("sleep", ["60"]);
    try {
      const rec = Buffer.from(readFileSync(join(ROOT, "test/fixtures/protocol/stats.bin")));
      rec.writeInt32LE(sleeper.pid ?? 0, 24);
      writeFileSync(join(dir, `spillover-${process.getuid?.() ?? 0}-${sleeper.pid}.stats`), rec);
      const sock = `spillover-test-${process.pid}`;
      const tmux = (...a: string[]) =>
        execFileSync("tmux", ["-L", sock, ...a], { encoding: "utf8" });
      const cmd = `echo BEFORE-TOP; SPILLOVER_STATS_DIR=${dir} SPILLOVER_SOCKET=${dir}/none.sock HOME=/nonexistent ${process.execPath} --import tsx ${join(ROOT, "src/cli/bin.ts")} top; echo EXIT=$?; sleep 30`;
      tmux("new-session", "-d", "-s", "t", "-x", "120", "-y", "30", "-c", ROOT, cmd);
      try {
        const capture = () => tmux("capture-pane", "-p", "-t", "t");
        let screen = "";
        for (let i = 0; i < 100 && !screen.includes("python3 train.py"); i++) {
          await new Promise((r) => setTimeout(r, 100));
          screen = capture();
        }
        expect(screen).toContain("spillover top");
        expect(screen).toMatch(new RegExp(`${sleeper.pid}\\s+0\\s+62\\.1GiB\\s+5\\.5GiB`));
        expect(screen).toMatch(/\n\s+1\s+32\.1GiB\s+512MiB\s*\n/);
        expect(screen).toContain(
          "STREAM staged 48.0GiB in 640 ranges   budget 10.0GiB   copy engine busy 2.75 s",
        );
        expect(screen).toContain(
          "       hits 12800   late 7   in place 320   write-back 96 pages   fallbacks 2",
        );
        expect(screen).not.toContain("BEFORE-TOP"); // alternate screen
        tmux("send-keys", "-t", "t", "q");
        for (let i = 0; i < 50 && !screen.includes("EXIT="); i++) {
          await new Promise((r) => setTimeout(r, 100));
          screen = capture();
        }
        expect(screen).toContain("EXIT=0");
        expect(screen).toContain("BEFORE-TOP"); // the normal screen is back
        expect(screen).not.toContain("spillover top");
      } finally {
        tmux("kill-server");
      }
    } finally {
      sleeper.kill();
    }
  }, 30_000);
});

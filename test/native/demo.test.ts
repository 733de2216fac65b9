// demo.test.ts: runs `npm run demo` (scripts/demo.mjs) against the CPU test double of the driver and
// checks the proof it prints: every byte verified, and the interposer's stats show pages in pinned
// host memory (so the 3x-the-limit allocation really spilled). Also runs the demo program without
// the interposer, where the same request must fail with CUDA_ERROR_OUT_OF_MEMORY beyond the card.
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const fakeEnv = { SPILLOVER_DEMO_FAKE: "1", FAKE_CUDA_VRAM: "256M", SPILLOVER_VRAM_LIMIT: "64M" };

interface DemoReport {
  ok: boolean;
  mismatches_pass1: number;
  mismatches_pass2: number;
  requested_bytes: number;
  allocated_bytes: number;
  alloc_error: string | null;
  device: { simulated: boolean; vram_limit: number };
  allocations: { size: number; vram_bytes: number | null; pinned_bytes: number | null }[];
  spillover: {
    loaded: boolean;
    vram_limit?: number;
    tier_bytes?: { vram: number; pinned: number };
  };
}

function lastJsonLine(out: string): DemoReport {
  const line = out
    .trim()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .at(-1);
  if (line === undefined) throw new Error(`no JSON in demo output:\n${out}`);
  return JSON.parse(line) as DemoReport;
}

beforeAll(() => {
  execFileSync("make", ["-s", "-C", path.join(root, "native")], { stdio: "pipe" });
});

describe("npm run demo (simulated)", () => {
  it("says it is simulated, verifies every byte and shows host-tier pages", () => {
    const r = spawnSync("node", [path.join(root, "scripts/demo.mjs")], {
      encoding: "utf8",
      env: { ...process.env, ...fakeEnv },
      timeout: 120_000,
    });
    expect(r.stdout).toContain(
      "No NVIDIA GPU found: running against spillover's CPU test double (simulated)",
    );
    expect(r.stdout).toMatch(/pass 1: .*: 0 mismatched words/);
    expect(r.stdout).toMatch(/pass 2: .*: 0 mismatched words/);
    expect(r.stdout).toMatch(
      /tiers: VRAM \d+ MiB \| pinned host [1-9]\d* MiB \| passed to the driver \d+ MiB\n/,
    );
    expect(r.stdout).not.toMatch(/swap|GiB/);
    // Placement by use: every large allocation is a tiered range, and a fresh one is the
    // hottest thing there is, so the first left VRAM for the last ones.
    expect(r.stdout).toMatch(/alloc +0 .* VRAM +0\.0 MiB +host +16\.0 MiB/);
    expect(r.stdout).toMatch(/alloc +11 .* VRAM +16\.0 MiB +host +0\.0 MiB/);
    expect(r.stdout).toContain("PASS: every byte verified");
    expect(r.status).toBe(0);
  });

  it("SPILLOVER_VRAM_LIMIT=50% means half the card's physical VRAM, as in the interposer", () => {
    const r = spawnSync("node", [path.join(root, "scripts/demo.mjs"), "--json"], {
      encoding: "utf8",
      env: { ...process.env, ...fakeEnv, SPILLOVER_VRAM_LIMIT: "50%" },
      timeout: 120_000,
    });
    const rep = lastJsonLine(r.stdout);
    expect(rep.device.vram_limit).toBe(128 * 2 ** 20); // FAKE_CUDA_VRAM=256M
    expect(rep.spillover.vram_limit).toBe(128 * 2 ** 20);
    expect(rep.allocated_bytes).toBeGreaterThanOrEqual(2.9 * 128 * 2 ** 20);
    expect(rep.ok).toBe(true);
    expect(r.status).toBe(0);
  });

  it("with SPILLOVER_STATS_DIR missing: the interposer warns once and the demo does not call it unloaded", () => {
    const r = spawnSync("node", [path.join(root, "scripts/demo.mjs")], {
      encoding: "utf8",
      env: { ...process.env, ...fakeEnv, SPILLOVER_STATS_DIR: "/nonexistent/stats" },
      timeout: 120_000,
    });
    const warns = r.stderr.split("\n").filter((l) => l.includes("SPILLOVER_STATS_DIR"));
    expect(warns).toHaveLength(1);
    expect(warns[0]).toMatch(
      /cannot create \/nonexistent\/stats\/spillover-.*No such file or directory/,
    );
    expect(r.stdout).not.toContain("spillover not loaded");
    expect(r.stdout).toContain("spillover is loaded but wrote no stats record");
    expect(r.status).toBe(0);
  });

  it("--json: 3x the limit allocated, no mismatches, pinned host bytes > 0 in the stats and per allocation", () => {
    const r = spawnSync("node", [path.join(root, "scripts/demo.mjs"), "--json"], {
      encoding: "utf8",
      env: { ...process.env, ...fakeEnv },
      timeout: 120_000,
    });
    const rep = lastJsonLine(r.stdout);
    expect(rep.device.simulated).toBe(true);
    expect(rep.alloc_error).toBeNull();
    expect(rep.allocated_bytes).toBe(rep.requested_bytes);
    expect(rep.allocated_bytes).toBeGreaterThanOrEqual(2.9 * rep.device.vram_limit);
    expect(rep.mismatches_pass1).toBe(0);
    expect(rep.mismatches_pass2).toBe(0);
    expect(rep.spillover.loaded).toBe(true);
    expect(rep.spillover.tier_bytes?.pinned ?? 0).toBeGreaterThan(0);
    const hostBacked = rep.allocations.filter((a) => (a.pinned_bytes ?? 0) > 0);
    expect(hostBacked.length).toBeGreaterThan(0);
    expect(rep.ok).toBe(true);
    expect(r.status).toBe(0);
  });
});

describe("npm run demo -- --bandwidth (simulated)", () => {
  it("places the measured buffer entirely in pinned host pages and reads it back intact", () => {
    const r = spawnSync("node", [path.join(root, "scripts/demo.mjs"), "--bandwidth", "--json"], {
      encoding: "utf8",
      env: { ...process.env, ...fakeEnv },
      timeout: 120_000,
    });
    const line = r.stdout
      .trim()
      .split("\n")
      .filter((l) => l.startsWith("{"))
      .at(-1);
    const rep = JSON.parse(line ?? "null") as {
      placement: string;
      tiered_mismatches: number;
      measured: boolean;
      tiered_host_bytes_measured: number;
      tiered_bytes: number;
    };
    expect(rep.placement).toBe("all pinned host pages");
    expect(rep.tiered_host_bytes_measured).toBe(rep.tiered_bytes);
    expect(rep.tiered_mismatches).toBe(0);
    expect(rep.measured).toBe(true);
    expect(r.status).toBe(0);
  });
});

describe("spill_demo without the interposer", () => {
  it("fails with CUDA_ERROR_OUT_OF_MEMORY beyond the card and says why", () => {
    const r = spawnSync(path.join(root, "native/build/demo/spill_demo"), [], {
      encoding: "utf8",
      env: {
        ...process.env,
        LD_PRELOAD: "",
        LD_LIBRARY_PATH: path.join(root, "native/build/fake"),
        FAKE_CUDA_VRAM: "64M",
        SPILLOVER_VRAM_LIMIT: "64M",
      },
      timeout: 60_000,
    });
    expect(r.stdout).toMatch(/failed with CUDA_ERROR_OUT_OF_MEMORY .*without spillover/);
    expect(r.stdout).toContain("spillover not loaded");
    expect(r.stdout).toContain("FAIL: not every allocation succeeded");
    expect(r.status).toBe(1);
  });

  it("rejects a malformed SPILLOVER_VRAM_LIMIT with one line and exit 2", () => {
    const r = spawnSync(path.join(root, "native/build/demo/spill_demo"), [], {
      encoding: "utf8",
      env: {
        ...process.env,
        LD_PRELOAD: "",
        LD_LIBRARY_PATH: path.join(root, "native/build/fake"),
        SPILLOVER_VRAM_LIMIT: "big",
      },
      timeout: 60_000,
    });
    expect(r.stderr).toContain("SPILLOVER_VRAM_LIMIT=big is not a size");
    expect(r.status).toBe(2);
  });
});

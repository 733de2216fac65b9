// The benchmark workloads (Python, bench/workloads/common.py) decode the interposer's stats record
// by hand-written byte offsets. This checks every offset against the C header itself: a C program
// prints offsetof() for each field and the Python module prints its table.

import { execFileSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const root = join(import.meta.dirname, "..", "..");

function have(cmd: string): boolean {
  try {
    execFileSync(cmd, ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

const C_FIELDS: Record<string, string> = {
  version: "version",
  seq: "seq",
  pid: "pid",
  gpu_count: "gpu_count",
  mode: "mode",
  exited: "exited",
  pinned_limit: "pinned_limit",
  pinned_lease: "pinned_lease",
  pinned_pool_bytes: "pinned_pool_bytes",
  pinned_used_bytes: "pinned_used_bytes",
  pinned_peak_bytes: "pinned_peak_bytes",
  alloc_calls: "alloc_calls",
  free_calls: "free_calls",
  tiered_allocs: "tiered_allocs",
  passthrough_allocs: "passthrough_allocs",
  oom_returned: "oom_returned",
  pages_vram: "pages_vram",
  pages_pinned: "pages_pinned",
  migrations: "migrations",
  pool_grows: "pool_grows",
  lease_denials: "lease_denials",
  bad_args: "bad_args",
  largest_alloc: "largest_alloc",
  stream_staged_bytes: "stream.staged_bytes",
  stream_staged_ranges: "stream.staged_ranges",
  stream_stage_hits: "stream.stage_hits",
  stream_late_stages: "stream.late_stages",
  stream_writeback_pages: "stream.writeback_pages",
  stream_inplace_launches: "stream.inplace_launches",
  stream_copy_busy_ns: "stream.copy_busy_ns",
  stream_budget_bytes: "stream.budget_bytes",
  stream_fallbacks: "stream.fallbacks",
};
const C_GPU_FIELDS: Record<string, string> = {
  vram_physical: "vram_physical",
  vram_limit: "vram_limit",
  vram_reserve: "vram_reserve",
  tier_vram_bytes: "tier_bytes[0]",
  tier_pinned_bytes: "tier_bytes[1]",
  tier_vram_peak: "tier_peak[0]",
  tier_pinned_peak: "tier_peak[1]",
  passthrough_bytes: "passthrough_bytes",
  passthrough_peak: "passthrough_peak",
  program_vmm_bytes: "program_vmm_bytes",
  program_vmm_host_bytes: "program_vmm_host_bytes",
  reported_total: "reported_total",
  reported_free: "reported_free",
};

// the streaming engine's block (struct sp_stats_stream), in the order common.STREAM_FIELDS reads it
const STREAM_FIELDS = [
  "staged_bytes",
  "staged_ranges",
  "stage_hits",
  "late_stages",
  "writeback_pages",
  "inplace_launches",
  "copy_busy_ns",
  "budget_bytes",
  "fallbacks",
];

describe.skipIf(!have("gcc") || !have("python3"))(
  "stats record layout used by the bench workloads",
  () => {
    it("matches offsetof() in native/include/spillover_protocol.h for every field", () => {
      const dir = mkdtempSync(join(tmpdir(), "spill-layout-"));
      const lines = [
        "#include <stdio.h>",
        "#include <stddef.h>",
        '#include "spillover_protocol.h"',
        "int main(void) {",
        '  printf("{\\"gpu0\\": %zu", offsetof(sp_stats, gpu));',
        ...Object.entries(C_FIELDS).map(
          ([k, f]) => `  printf(", \\"${k}\\": %zu", offsetof(sp_stats, ${f}));`,
        ),
        ...Object.entries(C_GPU_FIELDS).map(
          ([k, f]) => `  printf(", \\"gpu.${k}\\": %zu", offsetof(sp_stats_gpu, ${f}));`,
        ),
        ...STREAM_FIELDS.map(
          (k) =>
            `  printf(", \\"stream.${k}\\": %zu", offsetof(sp_stats, stream) + offsetof(sp_stats_stream, ${k}));`,
        ),
        '  printf("}\\n");',
        "  return 0;",
        "}",
      ];
      writeFileSync(join(dir, "layout.c"), lines.join("\n"));
      execFileSync("gcc", [
        "-std=c11",
        "-I",
        join(root, "native/include"),
        "-o",
        join(dir, "layout"),
        join(dir, "layout.c"),
      ]);
      const fromC = JSON.parse(
        execFileSync(join(dir, "layout"), {
          encoding: "utf8",
          env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
        }),
      ) as Record<string, number>;

      const py = [
        "import json, sys",
        `sys.path.insert(0, ${JSON.stringify(join(root, "bench/workloads"))})`,
        "import common",
        "d = {'gpu0': common._GPU0}",
        "d.update({k: v for k, v in common._OFF.items()})",
        "d.update({'gpu.' + k: v for k, v in common._GPU_OFF.items()})",
        "d.update({'stream.' + k: common._STREAM + 8 * i for i, k in enumerate(common.STREAM_FIELDS)})",
        "print(json.dumps(d))",
      ].join("\n");
      const fromPy = JSON.parse(
        execFileSync("python3", ["-c", py], {
          encoding: "utf8",
          env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
        }),
      ) as Record<string, number>;
      expect(fromPy).toEqual(fromC);
    });

    it("decodes a record written at those offsets, and rejects a torn or foreign file", () => {
      const dir = mkdtempSync(join(tmpdir(), "spill-stats-"));
      const buf = Buffer.alloc(4096);
      buf.writeBigUInt64LE(0x3153544154535053n, 0);
      buf.writeUInt32LE(1, 8);
      buf.writeBigUInt64LE(42n, 16); // even seq: a complete write
      buf.writeInt32LE(4242, 24);
      buf.writeUInt32LE(1, 28);
      buf.writeUInt32LE(1, 48);
      buf.writeBigUInt64LE(6n << 30n, 96); // pinned_peak_bytes
      buf.writeBigUInt64LE(3n << 30n, 528 + 32); // gpu[0].tier_bytes[1]
      buf.writeBigUInt64LE(5n << 30n, 2456); // stream.staged_bytes
      buf.writeBigUInt64LE(1_250_000_000n, 2504); // stream.copy_busy_ns
      buf.writeBigUInt64LE(7n, 2456 + 3 * 8); // stream.late_stages
      buf.writeBigUInt64LE(2n << 30n, 2456 + 7 * 8); // stream.budget_bytes
      writeFileSync(join(dir, "spillover-1000-4242.stats"), buf);
      const odd = Buffer.from(buf);
      odd.writeBigUInt64LE(43n, 16); // a writer inside the seqlock, forever
      writeFileSync(join(dir, "spillover-1000-4243.stats"), odd);
      const foreign = Buffer.from(buf);
      foreign.writeBigUInt64LE(1n, 0);
      writeFileSync(join(dir, "spillover-1000-4244.stats"), foreign);
      const py = [
        "import json, os, sys",
        `sys.path.insert(0, ${JSON.stringify(join(root, "bench/workloads"))})`,
        "import common",
        `os.environ['SPILLOVER_STATS_DIR'] = ${JSON.stringify(dir)}`,
        "os.getuid = lambda: 1000",
        "print(json.dumps([common.read_stats(4242), common.read_stats(4243), common.read_stats(4244), common.read_stats(1)]))",
      ].join("\n");
      const [ok, torn, bad, missing] = JSON.parse(
        execFileSync("python3", ["-c", py], {
          encoding: "utf8",
          env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" },
        }),
      );
      expect(ok.pinned_peak_bytes).toBe(6 * 2 ** 30);
      expect(ok.tier_pinned_bytes).toBe(3 * 2 ** 30);
      expect(ok.stream.staged_bytes).toBe(5 * 2 ** 30);
      expect(ok.stream.late_stages).toBe(7);
      expect(ok.stream.budget_bytes).toBe(2 * 2 ** 30);
      expect(ok.stream.fallbacks).toBe(0);
      expect(ok.mode_name).toBe("standalone");
      expect(ok.pid).toBe(4242);
      expect(ok.stream_staged_bytes).toBe(5 * 2 ** 30);
      expect(ok.stream_copy_busy_ns).toBe(1_250_000_000);
      expect(ok.stream_late_stages).toBe(7);
      expect(torn).toBeNull();
      expect(bad).toBeNull();
      expect(missing).toBeNull();
    });
  },
);

// The shared fixtures in test/fixtures/protocol/ hold the C and TS sides to the same bytes: the C
// program (native/test/t_protocol_fixture.c) writes and checks them from spillover_protocol.h; these
// tests decode them in TS, re-encode the frames byte for byte, and compare the struct layouts.

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  DenyReason,
  decodeFrame,
  ErrorCode,
  encodeFrame,
  FRAME_SIZE,
  frame,
  MsgType,
  PressureLevel,
  U64_MAX,
} from "../../src/protocol/frame.js";
import { decodeStats, STATS_SIZE } from "../../src/protocol/stats.js";
import { compileC, GiB, MiB, ROOT } from "../broker/helpers.js";

const FIX = join(ROOT, "test/fixtures/protocol");
const tool = () => compileC("t_protocol_fixture", ["native/test/t_protocol_fixture.c"]);

const EXPECTED_FRAMES = [
  frame(MsgType.HELLO, 1n, 4242n, 2n, BigInt(GiB)),
  frame(MsgType.WELCOME, 1n, BigInt(GiB), BigInt(256 * MiB), 777n),
  frame(MsgType.VRAM_REQUEST, 2n, 1n, BigInt(8 * GiB), BigInt(80 * GiB)),
  frame(MsgType.VRAM_GRANT, 2n, 1n, BigInt(6 * GiB)),
  frame(MsgType.PINNED_GROW, 3n, BigInt(512 * MiB)),
  frame(MsgType.PINNED_GRANT, 3n, 0n, BigInt(GiB), BigInt(DenyReason.PRESSURE)),
  frame(MsgType.PINNED_RETURN, 4n, BigInt(256 * MiB)),
  frame(MsgType.LEASE_UPDATE, 0n, U64_MAX, BigInt(PressureLevel.CRITICAL)),
  frame(MsgType.BYE, 5n),
  frame(MsgType.ERROR, 0n, BigInt(ErrorCode.OUT_OF_ORDER)),
];

describe("shared protocol fixtures", () => {
  it("the C enums of deny reasons and error codes have the TS values", () => {
    const header = readFileSync(join(ROOT, "native/include/spillover_protocol.h"), "utf8");
    const enumOf = (prefix: string) =>
      Object.fromEntries(
        [...header.matchAll(new RegExp(`^\\s*${prefix}([A-Z_]+)\\s*=\\s*(\\d+)`, "gm"))].map(
          (m) => [m[1], Number(m[2])],
        ),
      );
    expect(enumOf("SP_DENY_")).toEqual(DenyReason);
    expect(enumOf("SP_ERR_")).toEqual(ErrorCode);
  });

  it("the committed fixtures are what the C definitions produce", () => {
    // exits non-zero (and names the first differing byte) if the header and fixtures disagree
    execFileSync(tool(), ["check", FIX], { stdio: "pipe" });
    const dir = mkdtempSync(join(tmpdir(), "spillover-fix-"));
    execFileSync(tool(), ["write", dir]);
    expect(
      readFileSync(join(dir, "frames.bin")).equals(readFileSync(join(FIX, "frames.bin"))),
    ).toBe(true);
    expect(readFileSync(join(dir, "stats.bin")).equals(readFileSync(join(FIX, "stats.bin")))).toBe(
      true,
    );
  });

  it("TS decodes every C frame, and encodes the same bytes", () => {
    const bin = readFileSync(join(FIX, "frames.bin"));
    expect(bin.length).toBe(EXPECTED_FRAMES.length * FRAME_SIZE);
    EXPECTED_FRAMES.forEach((want, i) => {
      const raw = bin.subarray(i * FRAME_SIZE, (i + 1) * FRAME_SIZE);
      const d = decodeFrame(raw);
      expect(d).toEqual({ ok: true, frame: want });
      expect(encodeFrame(want).equals(raw)).toBe(true);
    });
  });

  it("TS decodes the C stats record field by field", () => {
    const d = decodeStats(readFileSync(join(FIX, "stats.bin")));
    if (!d.ok) throw new Error(d.reason);
    const r = d.record;
    expect(r.pid).toBe(4242);
    expect(r.seq).toBe(42);
    expect(r.mode).toBe("broker");
    expect(r.exited).toBe(false);
    expect(r.cmdline).toBe("python3 train.py --epochs 3");
    expect(r.startUnixMs).toBe(1790000000000);
    expect(r.updateUnixMs).toBe(1790000001500);
    expect(r.pinned).toEqual({
      limit: 16 * GiB,
      lease: 8 * GiB,
      poolBytes: 6 * GiB,
      usedBytes: 5 * GiB,
      peakBytes: 7 * GiB,
    });
    expect(r.counters).toEqual({
      allocCalls: 1000,
      freeCalls: 900,
      tieredAllocs: 50,
      passthroughAllocs: 950,
      oomReturned: 3,
      pagesVram: 4096,
      pagesPinned: 2560,
      migrations: 12,
      poolGrows: 6,
      leaseDenials: 1,
      badArgs: 2,
      largestAlloc: 4 * GiB,
    });
    expect(r.gpus).toHaveLength(2);
    expect(r.gpus[0]).toEqual({
      vramPhysical: 80 * GiB,
      vramLimit: 70 * GiB,
      vramReserve: GiB,
      tierBytes: { vram: 60 * GiB, pinned: 5 * GiB, swap: 0 },
      tierPeak: { vram: 65 * GiB, pinned: 7 * GiB, swap: 0 },
      passthroughBytes: 100 * MiB,
      passthroughPeak: 200 * MiB,
      programVmmBytes: 2 * GiB,
      programVmmHostBytes: 512 * MiB,
      reportedTotal: 70 * GiB,
      reportedFree: 3 * GiB,
    });
    expect(r.gpus[1]?.passthroughBytes).toBe(100 * MiB + 1);
    expect(r.gpus[1]?.vramLimit).toBe(40 * GiB);
    expect(r.top).toEqual([
      {
        dptr: "0x7f1234500000",
        size: 4 * GiB,
        vramBytes: 3 * GiB,
        pinnedBytes: GiB,
        device: 0,
        kind: "tiered",
      },
      {
        dptr: "0x7f2000000000",
        size: 2 * GiB,
        vramBytes: 2 * GiB,
        pinnedBytes: 0,
        device: 1,
        kind: "program_vmm",
      },
    ]);
    expect(r.stream).toEqual({
      stagedBytes: 48 * GiB,
      stagedRanges: 640,
      stageHits: 12800,
      lateStages: 7,
      writebackPages: 96,
      inplaceLaunches: 320,
      copyBusyNs: 2_750_000_000,
      budgetBytes: 10 * GiB,
      fallbacks: 2,
    });
  });

  it("a record written before the streaming block (zeros in the former padding) reads as all zeros", () => {
    const old = Buffer.from(readFileSync(join(FIX, "stats.bin")));
    old.fill(0, 2456, STATS_SIZE);
    const d = decodeStats(old);
    if (!d.ok) throw new Error(d.reason);
    expect(Object.values(d.record.stream)).toEqual(Array(9).fill(0));
    expect(d.record.pid).toBe(4242);
  });

  it("the C struct layout matches the offsets the TS decoder uses", () => {
    const layout = JSON.parse(execFileSync(tool(), ["offsets"], { encoding: "utf8" })) as Record<
      string,
      number
    >;
    expect(layout).toMatchObject({
      "sp_frame.magic": 0,
      "sp_frame.version": 4,
      "sp_frame.type": 6,
      "sp_frame.seq": 8,
      "sp_frame.a": 16,
      "sp_frame.d": 40,
      "sp_frame.reserved": 48,
      "sp_stats.seq": 16,
      "sp_stats.pid": 24,
      "sp_stats.mode": 48,
      "sp_stats.pinned_limit": 64,
      "sp_stats.alloc_calls": 144,
      "sp_stats.oom_returned": 176,
      "sp_stats.cmdline": 272,
      "sp_stats.gpu": 528,
      "sp_stats.top_count": 1680,
      "sp_stats.top": 1688,
      "sp_stats_gpu.tier_bytes": 24,
      "sp_stats_gpu.tier_peak": 48,
      "sp_stats_gpu.passthrough_bytes": 72,
      "sp_stats_gpu.reported_free": 112,
      "sp_stats_alloc.device": 32,
      "sp_stats_alloc.kind": 36,
      "sp_stats.stream": 2456,
      "sp_stats.padding": 2584,
      "sp_stats_stream.staged_bytes": 0,
      "sp_stats_stream.staged_ranges": 8,
      "sp_stats_stream.stage_hits": 16,
      "sp_stats_stream.late_stages": 24,
      "sp_stats_stream.writeback_pages": 32,
      "sp_stats_stream.inplace_launches": 40,
      "sp_stats_stream.copy_busy_ns": 48,
      "sp_stats_stream.budget_bytes": 56,
      "sp_stats_stream.fallbacks": 64,
      "sp_stats_stream.reserved": 72,
      "sizeof.sp_stats_stream": 128,
      "sizeof.sp_stats": STATS_SIZE,
    });
  });
});

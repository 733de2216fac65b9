// TypeScript mirror of the stats record in native/include/spillover_protocol.h: the 4096-byte
// file /dev/shm/spillover-<uid>-<pid>.stats that the interposer writes under a seqlock.
// decodeStats is pure; readStatsFile does the seqlock-checked read; listStatsFiles finds records.

import { open, readdir } from "node:fs/promises";
import { join } from "node:path";

export const STATS_MAGIC = 0x3153544154535053n; // "SPSTATS1" read as little-endian bytes
export const STATS_VERSION = 1;
export const STATS_SIZE = 4096;
export const STATS_MAX_GPUS = 8;
export const STATS_TOP_ALLOCS = 16;
export const TIER_NAMES = ["vram", "pinned", "swap"] as const;
export type TierName = (typeof TIER_NAMES)[number];
export const MODE_NAMES = ["passthrough", "standalone", "broker"] as const;

// Byte offsets, matching the C struct (static-asserted there; checked against fixtures here).
const OFF = {
  magic: 0,
  version: 8,
  size: 12,
  seq: 16,
  pid: 24,
  gpuCount: 28,
  startNs: 32,
  updateNs: 40,
  mode: 48,
  exited: 52,
  pinned: 64,
  counters: 144,
  cmdline: 272,
  gpu: 528,
  topCount: 1680,
  top: 1688,
  stream: 2456,
} as const;
const GPU_SIZE = 144;
const ALLOC_SIZE = 48;

export interface GpuStats {
  readonly vramPhysical: number;
  readonly vramLimit: number;
  readonly vramReserve: number;
  readonly tierBytes: Readonly<Record<TierName, number>>;
  readonly tierPeak: Readonly<Record<TierName, number>>;
  readonly passthroughBytes: number;
  readonly passthroughPeak: number;
  readonly programVmmBytes: number;
  readonly programVmmHostBytes: number;
  readonly reportedTotal: number;
  readonly reportedFree: number;
}

export interface AllocStats {
  readonly dptr: string; // hex: device pointers exceed 2^53
  readonly size: number;
  readonly vramBytes: number;
  readonly pinnedBytes: number;
  readonly device: number;
  readonly kind: "tiered" | "program_vmm" | "unknown";
}

/** The streaming engine's block (sp_stats_stream); all zeros while it is off, and in records
 *  written before it existed (it was padding). */
export interface StreamStats {
  readonly stagedBytes: number;
  readonly stagedRanges: number;
  readonly stageHits: number;
  readonly lateStages: number;
  readonly writebackPages: number;
  readonly inplaceLaunches: number;
  readonly copyBusyNs: number;
  readonly budgetBytes: number;
  readonly fallbacks: number;
}

export interface StatsRecord {
  readonly seq: number;
  readonly pid: number;
  readonly startUnixMs: number;
  readonly updateUnixMs: number;
  readonly mode: (typeof MODE_NAMES)[number] | "unknown";
  readonly exited: boolean;
  readonly pinned: {
    readonly limit: number;
    readonly lease: number;
    readonly poolBytes: number;
    readonly usedBytes: number;
    readonly peakBytes: number;
  };
  readonly counters: {
    readonly allocCalls: number;
    readonly freeCalls: number;
    readonly tieredAllocs: number;
    readonly passthroughAllocs: number;
    readonly oomReturned: number;
    readonly pagesVram: number;
    readonly pagesPinned: number;
    readonly migrations: number;
    readonly poolGrows: number;
    readonly leaseDenials: number;
    readonly badArgs: number;
    readonly largestAlloc: number;
  };
  readonly cmdline: string;
  readonly gpus: readonly GpuStats[];
  readonly top: readonly AllocStats[];
  readonly stream: StreamStats;
}

export type StatsDecode =
  | { readonly ok: true; readonly record: StatsRecord }
  | { readonly ok: false; readonly reason: string; readonly busy?: boolean };

// Byte counts fit a double exactly up to 8 PiB; beyond that a small rounding is harmless for display.
function u64(b: Buffer, off: number): number {
  return Number(b.readBigUInt64LE(off));
}

function tiers(b: Buffer, off: number): Record<TierName, number> {
  return { vram: u64(b, off), pinned: u64(b, off + 8), swap: u64(b, off + 16) };
}

/** Decodes one snapshot. Rejects a wrong magic/version/size, an odd seq (writer inside) and bad counts. */
export function decodeStats(buf: Uint8Array): StatsDecode {
  if (buf.length < STATS_SIZE)
    return { ok: false, reason: `record of ${buf.length} bytes, expected ${STATS_SIZE}` };
  const b = Buffer.from(buf.buffer, buf.byteOffset, STATS_SIZE);
  if (b.readBigUInt64LE(OFF.magic) !== STATS_MAGIC)
    return { ok: false, reason: "bad magic (not a spillover stats record)" };
  const version = b.readUInt32LE(OFF.version);
  if (version !== STATS_VERSION)
    return { ok: false, reason: `stats version ${version}, expected ${STATS_VERSION}` };
  const size = b.readUInt32LE(OFF.size);
  if (size !== STATS_SIZE)
    return { ok: false, reason: `stats size field ${size}, expected ${STATS_SIZE}` };
  const seq = b.readBigUInt64LE(OFF.seq);
  if (seq % 2n === 1n) return { ok: false, reason: "writer inside (odd seq)", busy: true };
  const gpuCount = b.readUInt32LE(OFF.gpuCount);
  if (gpuCount > STATS_MAX_GPUS)
    return { ok: false, reason: `gpu_count ${gpuCount} > ${STATS_MAX_GPUS}` };
  const topCount = b.readUInt32LE(OFF.topCount);
  if (topCount > STATS_TOP_ALLOCS)
    return { ok: false, reason: `top_count ${topCount} > ${STATS_TOP_ALLOCS}` };

  const gpus: GpuStats[] = [];
  for (let i = 0; i < gpuCount; i++) {
    const o = OFF.gpu + i * GPU_SIZE;
    gpus.push({
      vramPhysical: u64(b, o),
      vramLimit: u64(b, o + 8),
      vramReserve: u64(b, o + 16),
      tierBytes: tiers(b, o + 24),
      tierPeak: tiers(b, o + 48),
      passthroughBytes: u64(b, o + 72),
      passthroughPeak: u64(b, o + 80),
      programVmmBytes: u64(b, o + 88),
      programVmmHostBytes: u64(b, o + 96),
      reportedTotal: u64(b, o + 104),
      reportedFree: u64(b, o + 112),
    });
  }
  const top: AllocStats[] = [];
  for (let i = 0; i < topCount; i++) {
    const o = OFF.top + i * ALLOC_SIZE;
    const kind = b.readUInt32LE(o + 36);
    top.push({
      dptr: `0x${b.readBigUInt64LE(o).toString(16)}`,
      size: u64(b, o + 8),
      vramBytes: u64(b, o + 16),
      pinnedBytes: u64(b, o + 24),
      device: b.readUInt32LE(o + 32),
      kind: kind === 0 ? "tiered" : kind === 1 ? "program_vmm" : "unknown",
    });
  }
  const cmdRaw = b.subarray(OFF.cmdline, OFF.cmdline + 256);
  const nul = cmdRaw.indexOf(0);
  const mode = b.readUInt32LE(OFF.mode);
  const c = OFF.counters;
  const st = OFF.stream;
  return {
    ok: true,
    record: {
      seq: Number(seq),
      pid: b.readInt32LE(OFF.pid),
      startUnixMs: u64(b, OFF.startNs) / 1e6,
      updateUnixMs: u64(b, OFF.updateNs) / 1e6,
      mode: MODE_NAMES[mode] ?? "unknown",
      exited: b.readUInt32LE(OFF.exited) !== 0,
      pinned: {
        limit: u64(b, OFF.pinned),
        lease: u64(b, OFF.pinned + 8),
        poolBytes: u64(b, OFF.pinned + 16),
        usedBytes: u64(b, OFF.pinned + 24),
        peakBytes: u64(b, OFF.pinned + 32),
      },
      counters: {
        allocCalls: u64(b, c),
        freeCalls: u64(b, c + 8),
        tieredAllocs: u64(b, c + 16),
        passthroughAllocs: u64(b, c + 24),
        oomReturned: u64(b, c + 32),
        pagesVram: u64(b, c + 40),
        pagesPinned: u64(b, c + 48),
        migrations: u64(b, c + 56),
        poolGrows: u64(b, c + 64),
        leaseDenials: u64(b, c + 72),
        badArgs: u64(b, c + 80),
        largestAlloc: u64(b, c + 88),
      },
      cmdline: cmdRaw.subarray(0, nul < 0 ? 256 : nul).toString("utf8"),
      gpus,
      top,
      stream: {
        stagedBytes: u64(b, st),
        stagedRanges: u64(b, st + 8),
        stageHits: u64(b, st + 16),
        lateStages: u64(b, st + 24),
        writebackPages: u64(b, st + 32),
        inplaceLaunches: u64(b, st + 40),
        copyBusyNs: u64(b, st + 48),
        budgetBytes: u64(b, st + 56),
        fallbacks: u64(b, st + 64),
      },
    },
  };
}

/**
 * Reads a stats file under the seqlock: seq, then the record, then seq again; a snapshot counts
 * only if all three agree and are even. Retries a few times while the writer is inside.
 */
export async function readStatsFile(path: string, retries = 20): Promise<StatsDecode> {
  let fh: Awaited<ReturnType<typeof open>>;
  try {
    fh = await open(path, "r");
  } catch (e) {
    return {
      ok: false,
      reason: `cannot open ${path}: ${(e as NodeJS.ErrnoException).code ?? String(e)}`,
    };
  }
  try {
    const seqBuf = Buffer.alloc(8);
    const buf = Buffer.alloc(STATS_SIZE);
    let last: StatsDecode = { ok: false, reason: "no read" };
    for (let i = 0; i <= retries; i++) {
      await fh.read(seqBuf, 0, 8, OFF.seq);
      const before = seqBuf.readBigUInt64LE(0);
      const { bytesRead } = await fh.read(buf, 0, STATS_SIZE, 0);
      if (bytesRead < STATS_SIZE)
        return { ok: false, reason: `${path}: ${bytesRead} bytes, expected ${STATS_SIZE}` };
      await fh.read(seqBuf, 0, 8, OFF.seq);
      const after = seqBuf.readBigUInt64LE(0);
      last = decodeStats(buf);
      if (before === after && before === buf.readBigUInt64LE(OFF.seq)) {
        if (last.ok || !last.busy) return last;
      } else {
        last = { ok: false, reason: "record changed while reading", busy: true };
      }
      await new Promise((r) => setTimeout(r, 1));
    }
    return last;
  } finally {
    await fh.close();
  }
}

export interface StatsFileName {
  readonly path: string;
  readonly uid: number;
  readonly pid: number;
}

const STATS_NAME = /^spillover-(\d+)-(\d+)\.stats$/;

/** Lists spillover-<uid>-<pid>.stats files in `dir` (all uids, or one). */
export async function listStatsFiles(dir: string, uid?: number): Promise<StatsFileName[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return [];
  }
  const out: StatsFileName[] = [];
  for (const name of names) {
    const m = STATS_NAME.exec(name);
    if (!m) continue;
    const fileUid = Number(m[1]);
    if (uid !== undefined && fileUid !== uid) continue;
    out.push({ path: join(dir, name), uid: fileUid, pid: Number(m[2]) });
  }
  return out.sort((x, y) => x.pid - y.pid);
}

export function statsFilePath(dir: string, uid: number, pid: number): string {
  return join(dir, `spillover-${uid}-${pid}.stats`);
}

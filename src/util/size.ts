// Byte sizes on the TypeScript side: the one parser of "512M", "8G", "1.5GiB", "NN%" (config,
// flags, env) and the one formatter of byte counts (CLI tables, the dashboard). Binary units
// throughout (1G = 2^30), as the interposer's SPILLOVER_* variables use. Pure; no Node imports,
// so web/ bundles it too.

const UNITS: Readonly<Record<string, number>> = {
  "": 1,
  b: 1,
  k: 2 ** 10,
  kb: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mb: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gb: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tb: 2 ** 40,
  tib: 2 ** 40,
};

export const SIZE_HINT = "a size such as 512M, 8G or 1.5GiB (bytes if no unit)";
export const PERCENT_HINT = "a percentage from 1% to 100%";

/** "512M" -> 536870912; undefined when it is not a size. */
export function parseSize(raw: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  if (!m) return undefined;
  const unit = UNITS[(m[2] ?? "").toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export type SizeOrPercent = { readonly bytes: number } | { readonly percent: number };

/** "NN%" of something the consumer knows (the card's physical VRAM, MemTotal), or a size. */
export function parseSizeOrPercent(v: unknown): SizeOrPercent | undefined {
  if (typeof v === "string") {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(v);
    if (m) {
      const p = Number(m[1]);
      return p > 0 && p <= 100 ? { percent: p } : undefined;
    }
    const bytes = parseSize(v);
    return bytes === undefined ? undefined : { bytes };
  }
  if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0) return { bytes: v };
  return undefined;
}

/** The form SPILLOVER_* variables accept: exact bytes, or "NN%". */
export function sizeEnv(v: SizeOrPercent): string {
  return "percent" in v ? `${v.percent}%` : String(v.bytes);
}

/** Ordinals a per-GPU list may name: the interposer keeps 8 GPUs (SP_STATS_MAX_GPUS). */
export const MAX_GPUS = 8;

/** A budget per GPU ("0:8G,1:12G"); GPUs not listed keep the default. */
export type PerGpuSizes = { readonly perGpu: readonly (readonly [number, SizeOrPercent])[] };

/**
 * "0:8G,1:12G" -> the list; a string without ":" -> undefined (not a list). A bad entry comes
 * back as { bad } naming it.
 */
export function parsePerGpuList(
  v: string,
  positive: boolean,
): PerGpuSizes | { readonly bad: string } | undefined {
  if (!v.includes(":")) return undefined;
  const seen = new Set<number>();
  const out: (readonly [number, SizeOrPercent])[] = [];
  for (const entry of v.split(",")) {
    const m = /^\s*(\d+)\s*:(.*)$/.exec(entry);
    const gpu = m ? Number(m[1]) : -1;
    const size = m ? parseSizeOrPercent(m[2]) : undefined;
    if (
      !m ||
      gpu >= MAX_GPUS ||
      seen.has(gpu) ||
      size === undefined ||
      (positive && "bytes" in size && size.bytes === 0)
    )
      return { bad: entry };
    seen.add(gpu);
    out.push([gpu, size]);
  }
  return { perGpu: out };
}

/** What SPILLOVER_VRAM_LIMIT / SPILLOVER_VRAM_RESERVE accept: one value, or "0:8589934592,1:50%". */
export function sizeOrListEnv(v: SizeOrPercent | PerGpuSizes): string {
  return "perGpu" in v ? v.perGpu.map(([g, s]) => `${g}:${sizeEnv(s)}`).join(",") : sizeEnv(v);
}

const NAMES = ["B", "KiB", "MiB", "GiB", "TiB"];

/** 1536 -> "1.5KiB". */
export function formatBytes(n: number): string {
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < NAMES.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v}B` : `${v >= 100 ? v.toFixed(0) : v.toFixed(1)}${NAMES[u]}`;
}

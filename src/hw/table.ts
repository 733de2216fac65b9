// Common GPUs, PCIe generations and DRAM configurations, for planning a machine that is not this
// one (`spillover plan --gpu 4090 --link gen4 --ram-bw ddr4-3200x8`). Every number has a source:
// - GPU memory size and bandwidth: /work/shared/reference/peers.md section 1.3, which cites
//   https://cputronic.com/gpu/compare/nvidia-geforce-rtx-3060-vs-nvidia-geforce-rtx-4070 (3060,
//   4070), https://pcmasters.de/news/133712067-geforce-rtx-4060-spezifikationen-des-ad107-chips-werden-konkreter.html
//   (4060/4060 Ti), https://uvation.com/articles/h200-gpu-memory-bandwidth-unlocking-the-4-8-tb-s-advantage-for-ai-at-scale
//   (H200); the other cards are NVIDIA's product-page / architecture-whitepaper values
//   (https://www.nvidia.com/en-us/geforce/graphics-cards/compare/ ,
//   https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf ,
//   https://www.nvidia.com/en-us/data-center/h100/ , https://www.nvidia.com/en-us/data-center/a100/).
// - fp16 tensor TFLOPS (dense): NVIDIA's "AI TOPS" divided down to dense fp16 (Ada: FP8 sparse / 4;
//   Blackwell GeForce: FP4 sparse / 16), data-center cards from their datasheets. Used only for
//   prefill (compute-bound) estimates.
// - PCIe: spec and practical pinned-copy bandwidth from peers.md section 1.1 (BaM issue
//   https://github.com/ZaidQureshi/bam/issues/54 for Gen3/Gen4, tinygrad
//   https://github.com/tinygrad/open-gpu-kernel-modules/issues/29 and our H100 machine for Gen5).
// - DRAM: theoretical per-channel bandwidth from peers.md section 1.2
//   (https://bottleneckcalculator.to/en/blog/ddr5-vs-ddr4-real-world-performance-differences/).

import { SpilloverError } from "../util/errors.js";

const GiB = 2 ** 30;

export interface GpuSpec {
  readonly id: string;
  readonly name: string;
  readonly vramBytes: number;
  /** Vendor spec memory bandwidth, GB/s (10^9). */
  readonly vramGBs: number;
  readonly fp16Tflops: number;
  readonly pcieGen: 3 | 4 | 5;
  readonly pcieWidth: number;
}

export const GPUS: readonly GpuSpec[] = [
  {
    id: "t4",
    name: "Tesla T4",
    vramBytes: 16 * GiB,
    vramGBs: 320,
    fp16Tflops: 65,
    pcieGen: 3,
    pcieWidth: 16,
  },
  {
    id: "rtx2080",
    name: "RTX 2080",
    vramBytes: 8 * GiB,
    vramGBs: 448,
    fp16Tflops: 80.5,
    pcieGen: 3,
    pcieWidth: 16,
  },
  {
    id: "rtx2080ti",
    name: "RTX 2080 Ti",
    vramBytes: 11 * GiB,
    vramGBs: 616,
    fp16Tflops: 107.6,
    pcieGen: 3,
    pcieWidth: 16,
  },
  {
    id: "rtx3060",
    name: "RTX 3060 12GB",
    vramBytes: 12 * GiB,
    vramGBs: 360,
    fp16Tflops: 51.2,
    pcieGen: 4,
    pcieWidth: 16,
  },
  {
    id: "rtx3090",
    name: "RTX 3090",
    vramBytes: 24 * GiB,
    vramGBs: 936,
    fp16Tflops: 142,
    pcieGen: 4,
    pcieWidth: 16,
  },
  {
    id: "rtx4060",
    name: "RTX 4060",
    vramBytes: 8 * GiB,
    vramGBs: 272,
    fp16Tflops: 60.5,
    pcieGen: 4,
    pcieWidth: 8,
  },
  {
    id: "rtx4060ti",
    name: "RTX 4060 Ti 16GB",
    vramBytes: 16 * GiB,
    vramGBs: 288,
    fp16Tflops: 88.3,
    pcieGen: 4,
    pcieWidth: 8,
  },
  {
    id: "rtx4070",
    name: "RTX 4070",
    vramBytes: 12 * GiB,
    vramGBs: 504,
    fp16Tflops: 116.6,
    pcieGen: 4,
    pcieWidth: 16,
  },
  {
    id: "rtx4080",
    name: "RTX 4080",
    vramBytes: 16 * GiB,
    vramGBs: 716.8,
    fp16Tflops: 195,
    pcieGen: 4,
    pcieWidth: 16,
  },
  {
    id: "rtx4090",
    name: "RTX 4090",
    vramBytes: 24 * GiB,
    vramGBs: 1008,
    fp16Tflops: 330,
    pcieGen: 4,
    pcieWidth: 16,
  },
  {
    id: "rtx5070",
    name: "RTX 5070",
    vramBytes: 12 * GiB,
    vramGBs: 672,
    fp16Tflops: 61.8,
    pcieGen: 5,
    pcieWidth: 16,
  },
  {
    id: "rtx5070ti",
    name: "RTX 5070 Ti",
    vramBytes: 16 * GiB,
    vramGBs: 896,
    fp16Tflops: 87.9,
    pcieGen: 5,
    pcieWidth: 16,
  },
  {
    id: "rtx5080",
    name: "RTX 5080",
    vramBytes: 16 * GiB,
    vramGBs: 960,
    fp16Tflops: 112.6,
    pcieGen: 5,
    pcieWidth: 16,
  },
  {
    id: "rtx5090",
    name: "RTX 5090",
    vramBytes: 32 * GiB,
    vramGBs: 1792,
    fp16Tflops: 209.5,
    pcieGen: 5,
    pcieWidth: 16,
  },
  {
    id: "a6000",
    name: "RTX A6000",
    vramBytes: 48 * GiB,
    vramGBs: 768,
    fp16Tflops: 154.8,
    pcieGen: 4,
    pcieWidth: 16,
  },
  {
    id: "l40s",
    name: "L40S",
    vramBytes: 48 * GiB,
    vramGBs: 864,
    fp16Tflops: 362,
    pcieGen: 4,
    pcieWidth: 16,
  },
  {
    id: "a100-40",
    name: "A100 40GB",
    vramBytes: 40 * GiB,
    vramGBs: 1555,
    fp16Tflops: 312,
    pcieGen: 4,
    pcieWidth: 16,
  },
  {
    id: "a100-80",
    name: "A100 80GB SXM",
    vramBytes: 80 * GiB,
    vramGBs: 2039,
    fp16Tflops: 312,
    pcieGen: 4,
    pcieWidth: 16,
  },
  {
    id: "h100-pcie",
    name: "H100 PCIe",
    vramBytes: 80 * GiB,
    vramGBs: 2000,
    fp16Tflops: 756,
    pcieGen: 5,
    pcieWidth: 16,
  },
  {
    id: "h100",
    name: "H100 80GB HBM3 (SXM)",
    vramBytes: 80 * GiB,
    vramGBs: 3350,
    fp16Tflops: 989,
    pcieGen: 5,
    pcieWidth: 16,
  },
  {
    id: "h200",
    name: "H200",
    vramBytes: 141 * GiB,
    vramGBs: 4800,
    fp16Tflops: 989,
    pcieGen: 5,
    pcieWidth: 16,
  },
];

export interface LinkSpec {
  readonly gen: 3 | 4 | 5;
  /** One direction, x16, GB/s. */
  readonly specGBs: number;
  /** Pinned copy-engine H2D bandwidth seen in practice, x16, GB/s. */
  readonly practicalGBs: number;
}

export const PCIE: Readonly<Record<3 | 4 | 5, LinkSpec>> = {
  3: { gen: 3, specGBs: 15.75, practicalGBs: 12 },
  4: { gen: 4, specGBs: 31.5, practicalGBs: 25 },
  5: { gen: 5, specGBs: 63, practicalGBs: 54.5 },
};

/** Zero-copy kernel reads of pinned host memory reach 93% of the copy engine (H100: 50.8 / 54.5 GB/s,
 * gpu-machine-facts.md); applied to links we have not measured. */
export const ZERO_COPY_OF_COPY = 50.8 / 54.5;

/** Theoretical GB/s per 64-bit channel. */
/** The host a plan assumes when it has neither a profile nor --ram-bw: a typical desktop that
 *  would hold a consumer GPU (dual-channel DDR5-5600, 8 threads), named as assumed in the output. */
export const DEFAULT_HOST = {
  ram: "ddr5-5600x2",
  cpuThreads: 8,
  what: "a typical desktop: dual-channel DDR5-5600, 8 CPU threads",
} as const;

export const DRAM_CHANNEL_GBS: Readonly<Record<string, number>> = {
  "ddr4-2133": 17.0,
  "ddr4-2400": 19.2,
  "ddr4-2666": 21.3,
  "ddr4-2933": 23.5,
  "ddr4-3200": 25.6,
  "ddr5-4800": 38.4,
  "ddr5-5200": 41.6,
  "ddr5-5600": 44.8,
  "ddr5-6000": 48.0,
  "ddr5-6400": 51.2,
};

export function normalizeGpuName(s: string): string {
  return s.toLowerCase().replace(/nvidia|geforce|tesla|\s|-|_/g, "");
}

/** Finds a GPU by id or by (part of) its name: "4090", "rtx 4090", "NVIDIA H100 80GB HBM3". */
export function findGpu(query: string): GpuSpec | undefined {
  const q = normalizeGpuName(query);
  if (!q) return undefined;
  const exact = GPUS.find((g) => normalizeGpuName(g.id) === q || normalizeGpuName(g.name) === q);
  if (exact) return exact;
  // Longest id that the query contains ("NVIDIA H100 80GB HBM3" -> h100), then the reverse.
  const contained = GPUS.filter((g) => q.includes(normalizeGpuName(g.id).replace(/^rtx/, ""))).sort(
    (a, b) => b.id.length - a.id.length,
  );
  if (contained[0]) return contained[0];
  return GPUS.find((g) => normalizeGpuName(g.id).includes(q));
}

export function gpuOrThrow(query: string): GpuSpec {
  const g = findGpu(query);
  if (!g) {
    throw new SpilloverError(
      "ERR_USAGE",
      `--gpu ${JSON.stringify(query)}: unknown GPU (known: ${GPUS.map((x) => x.id).join(", ")}; or give --vram and --vram-bw)`,
    );
  }
  return g;
}

/** "gen4" / "4" / "gen5x8" -> practical GB/s and generation; a plain number is GB/s. */
export function parseLink(
  raw: string,
): { gen?: 3 | 4 | 5; width?: number; copyGBs: number } | undefined {
  const m = /^\s*(?:gen|pcie)?\s*([345])(?:\s*x\s*(\d+))?\s*$/i.exec(raw);
  if (m) {
    const gen = Number(m[1]) as 3 | 4 | 5;
    const width = m[2] ? Number(m[2]) : 16;
    if (![1, 2, 4, 8, 16].includes(width)) return undefined;
    return { gen, width, copyGBs: (PCIE[gen].practicalGBs * width) / 16 };
  }
  const n = Number(raw);
  if (raw.trim() !== "" && Number.isFinite(n) && n > 0 && n <= 2000) return { copyGBs: n };
  return undefined;
}

/** "76" (GB/s, measured or known) or "ddr4-3200x8" (theoretical). */
export function parseRamBw(raw: string): { gbs: number; theoretical: boolean } | undefined {
  const m = /^\s*(ddr[45]-\d{4})\s*x\s*(\d{1,2})\s*$/i.exec(raw);
  if (m) {
    const per = DRAM_CHANNEL_GBS[(m[1] ?? "").toLowerCase()];
    const ch = Number(m[2]);
    if (per === undefined || ch < 1 || ch > 24) return undefined;
    return { gbs: per * ch, theoretical: true };
  }
  const n = Number(raw);
  if (raw.trim() !== "" && Number.isFinite(n) && n > 0 && n <= 5000)
    return { gbs: n, theoretical: false };
  return undefined;
}

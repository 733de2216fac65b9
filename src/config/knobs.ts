// The interposer's knobs, one row each: config key, SPILLOVER_* variable, `spillover run` flag,
// value type, default and doc line. The config schema (schema.ts), the env layer and its error
// lines (load.ts), the run flags (cli/flags.ts), the child's environment (child-env.ts), the
// tables in README.md and docs/cli.md (knobsMarkdown, checked by test/cli/knobs.test.ts) and the
// test that native/src/config.c accepts every variable all come from this table.

import type { z } from "zod";
import { sizeEnv, sizeOrListEnv } from "../util/size.js";
import {
  enumField,
  numberField,
  sizeField,
  sizeOrPercentField,
  sizeOrPercentPerGpuField,
  stringField,
  switchField,
} from "./fields.js";

export const LOG_LEVELS = ["off", "error", "warn", "info", "debug"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

interface KnobFlag {
  /** Name in FLAGS (src/cli/flags.ts) and in a command's `flags` list. */
  readonly name: string;
  readonly spelling: string;
  readonly description: string;
  /** A "--no-x" switch: given means this config value. */
  readonly sets?: string;
}

export interface KnobDef {
  readonly key: string;
  readonly env: `SPILLOVER_${string}`;
  readonly flag?: KnobFlag;
  readonly field: z.ZodType;
  /** The value as the child's SPILLOVER_* variable (exactly what config.c parses). */
  readonly toEnv: (v: never) => string;
  /** Shown in the docs' default column. */
  readonly default: string;
  readonly doc: string;
  /** A value config.c accepts and one it rejects (test/native/knobs.test.ts runs both). */
  readonly accepted: string;
  readonly rejected?: string;
  /** Set but empty is an error, not "unset" (a failed shell expansion must not mean "all VRAM"). */
  readonly emptyIsError?: true;
}

const bytes = (v: number) => String(v);
const same = (v: string) => v;
const bit = (v: boolean) => (v ? "1" : "0");

export const KNOBS = [
  {
    key: "vram_limit",
    env: "SPILLOVER_VRAM_LIMIT",
    flag: {
      name: "vramLimit",
      spelling: "--vram-limit <size|NN%|list>",
      description:
        "VRAM budget per GPU (e.g. 8G, or 90% of the card's physical VRAM, or per GPU: 0:8G,1:12G); the rest spills to pinned RAM",
    },
    field: sizeOrPercentPerGpuField(true),
    toEnv: sizeOrListEnv,
    default: "free VRAM when the device is first used",
    doc: "VRAM this process may use, per GPU: a size (`8G`, `512M`, bytes) or `NN%` of the card's physical VRAM for every GPU, or a list per GPU (`0:8G,1:12G`; GPUs not listed get the default); above the card it is lowered to the card (one warning)",
    accepted: "50%",
    rejected: "12X",
    emptyIsError: true,
  },
  {
    key: "vram_reserve",
    env: "SPILLOVER_VRAM_RESERVE",
    flag: {
      name: "vramReserve",
      spelling: "--vram-reserve <size|NN%|list>",
      description:
        "VRAM kept free for late allocations (activations, KV cache); NN% of the limit; per GPU: 0:1G,1:2G",
    },
    field: sizeOrPercentPerGpuField(),
    toEnv: sizeOrListEnv,
    default: "min(1 GiB, 10% of the limit)",
    doc: "VRAM kept for requests up to the threshold (activations, short KV caches): a size or `NN%` of the limit, or a list per GPU (`0:1G,1:2G`)",
    accepted: "8M",
    rejected: "lots",
  },
  {
    key: "pinned_limit",
    env: "SPILLOVER_PINNED_LIMIT",
    flag: {
      name: "pinnedLimit",
      spelling: "--pinned-limit <size|NN%>",
      description: "pinned host memory this program may use (NN% of MemTotal)",
    },
    field: sizeOrPercentField(),
    toEnv: sizeEnv,
    default:
      "MemAvailable (or the room under a lower cgroup limit) minus the host reserve, re-read when the pool would grow past it",
    doc: "pinned host memory this process may use: a size or `NN%` of MemTotal, capped at what the host has room for; an explicit value is never exceeded",
    accepted: "128M",
    rejected: "12Q",
  },
  {
    key: "host_reserve",
    env: "SPILLOVER_HOST_RESERVE",
    flag: {
      name: "hostReserve",
      spelling: "--host-reserve <size>",
      description: "host RAM never pinned (default max(4G, 10% of RAM))",
    },
    field: sizeField(),
    toEnv: bytes,
    default: "max(4 GiB, 10% of MemTotal or of a lower cgroup limit)",
    doc: "host RAM never pinned (the broker reads it too)",
    accepted: "0",
    rejected: "-1G",
  },
  {
    key: "threshold",
    env: "SPILLOVER_THRESHOLD",
    field: sizeField(),
    toEnv: bytes,
    default: "`2M`",
    doc: "requests up to this size pass to the driver while they fit and may use the reserve; larger ones are tiered ranges (movable) when `migrate` is on",
    accepted: "2M",
    rejected: "10%",
  },
  {
    key: "migrate",
    env: "SPILLOVER_MIGRATE",
    field: switchField(),
    toEnv: bit,
    default: "`1`",
    doc: "`1`: VRAM is a cache over host memory: large allocations stay movable, a fresh one evicts the coldest pages, hot host pages move in, much colder ones out; `0`: first-come placement, nothing moves",
    accepted: "0",
    rejected: "maybe",
  },
  {
    key: "stream",
    env: "SPILLOVER_STREAM",
    flag: {
      name: "noStream",
      spelling: "--no-stream",
      description:
        "turn the streaming engine off: kernels read host-resident memory in place across the link",
      sets: "0",
    },
    field: switchField(),
    toEnv: bit,
    default: "`1`",
    doc: "`1`: the streaming engine copies host-resident ranges into VRAM staging on a copy stream ahead of the kernels that re-read them, and maps them back after; `0`: kernels read host pages in place (and `migrate` alone moves pages)",
    accepted: "0",
    rejected: "on",
  },
  {
    key: "stream_budget",
    env: "SPILLOVER_STREAM_BUDGET",
    flag: {
      name: "streamBudget",
      spelling: "--stream-budget <size|NN%>",
      description:
        "VRAM for the streaming engine's staging copies, inside the VRAM limit (NN% of the limit)",
    },
    field: sizeOrPercentField(true),
    toEnv: sizeEnv,
    default: "`25%` of the VRAM limit",
    doc: "VRAM the streaming engine holds for staging copies, taken from inside the VRAM limit when it first stages (colder pages leave to make room, as for any fresh allocation): a positive size or `NN%` of the limit, at most half of it",
    accepted: "2G",
    rejected: "lots",
  },
  {
    key: "stream_copy",
    env: "SPILLOVER_STREAM_COPY",
    flag: {
      name: "streamCopy",
      spelling: "--stream-copy <engine|kernel>",
      description:
        "how the streaming engine copies host pages into VRAM: a copy engine, or a kernel on the SMs",
    },
    field: enumField(["engine", "kernel"] as const),
    toEnv: same,
    default: "`engine`",
    doc: "`engine`: staging copies on a copy engine (the SMs stay free; measured on the H200 at the link's speed from host VMM pages); `kernel`: a kernel on the SMs copies and hashes in one pass (kernels read host VMM pages at about 51 GB/s; it takes SMs from the program while it runs; not yet measured end to end)",
    accepted: "kernel",
    rejected: "dma",
  },
  {
    key: "stream_ratio",
    env: "SPILLOVER_STREAM_RATIO",
    flag: {
      name: "streamRatio",
      spelling: "--stream-ratio <x>",
      description:
        "stage a kernel's inputs when it read them in place in at least x times the link time of their bytes (it re-reads)",
    },
    field: numberField(0, 1_000_000),
    toEnv: (v: number) => String(v),
    default: "`1.5`",
    doc: "the streaming engine times each function's first launches that read host pages in place; at or above this many times the link time of the bytes they name (kernels that re-read), its launches stage; below (read-once kernels such as decode GEMVs, about 1.0x), they keep reading in place",
    accepted: "3",
    rejected: "fast",
  },
  {
    key: "log",
    env: "SPILLOVER_LOG",
    flag: {
      name: "log",
      spelling: "--log <level>",
      description: "interposer log level: off, error, warn, info, debug",
    },
    field: enumField(LOG_LEVELS),
    toEnv: same,
    default: "`warn`",
    doc: "`off`, `error`, `warn`, `info` (one summary line per process at exit), `debug`",
    accepted: "error",
    rejected: "loud",
  },
  {
    key: "disable",
    env: "SPILLOVER_DISABLE",
    field: switchField(),
    toEnv: bit,
    default: "`0`",
    doc: "`1` passes every call through untouched",
    accepted: "0",
    rejected: "yes",
  },
  {
    key: "use_broker",
    env: "SPILLOVER_BROKER",
    flag: {
      name: "noBroker",
      spelling: "--no-broker",
      description: "do not use a broker even if one runs (standalone budgets)",
      sets: "off",
    },
    field: enumField(["auto", "off"] as const),
    toEnv: same,
    default: "`auto`",
    doc: "`auto`: use the broker if its socket answers; `off`: standalone budgets",
    accepted: "off",
    rejected: "maybe",
  },
  {
    key: "socket",
    env: "SPILLOVER_SOCKET",
    flag: { name: "socket", spelling: "--socket <path>", description: "broker socket path" },
    field: stringField("a socket path"),
    toEnv: same,
    default: "the per-user socket (docs/cli.md)",
    doc: "the broker's socket",
    accepted: "/nonexistent/broker.sock",
  },
  {
    key: "stats_dir",
    env: "SPILLOVER_STATS_DIR",
    field: stringField("a directory"),
    toEnv: same,
    default: "`/dev/shm`",
    doc: "where `spillover-<uid>-<pid>.stats` is written (a missing or read-only directory: one warning, no stats)",
    accepted: "/tmp",
  },
  {
    key: "keep_stats",
    env: "SPILLOVER_KEEP_STATS",
    field: switchField(),
    toEnv: bit,
    default: "`0`",
    doc: "`1` keeps the stats file after exit (it is removed otherwise)",
    accepted: "1",
    rejected: "yes",
  },
  {
    key: "libcuda",
    env: "SPILLOVER_LIBCUDA",
    field: stringField("a library path"),
    toEnv: same,
    default: "`libcuda.so.1`",
    doc: "the real driver library (one warning if it cannot be opened)",
    accepted: "libcuda.so.1",
  },
  {
    key: "libnvml",
    env: "SPILLOVER_LIBNVML",
    field: stringField("a library path"),
    toEnv: same,
    default: "`libnvidia-ml.so.1`",
    doc: "the real NVML library",
    accepted: "libnvidia-ml.so.1",
  },
] as const satisfies readonly KnobDef[];

export type Knob = (typeof KNOBS)[number];
export type KnobKey = Knob["key"];

/** The merged value of each knob, as its field parses it. */
export type KnobValues = { readonly [K in KnobKey]?: z.output<Extract<Knob, { key: K }>["field"]> };

type FlaggedKnob = Extract<Knob, { flag: KnobFlag }>;
export type KnobFlagName = FlaggedKnob["flag"]["name"];

/** The knob's child-environment value (exactly what config.c parses). */
export function knobEnv(k: Knob, v: unknown): string {
  return (k.toEnv as (x: unknown) => string)(v);
}

/** Markdown table of the knobs for README.md and docs/cli.md (between the knobs markers). */
export function knobsMarkdown(): string {
  const rows = KNOBS.map((k) => {
    const flag = "flag" in k ? `\`${k.flag.spelling.split(" ")[0]}\`` : "";
    return `| \`${k.env}\` | \`${k.key}\` | ${flag} | ${k.doc} | ${k.default} |`;
  });
  return [
    "| variable | config key | `run` flag | meaning | default |",
    "|---|---|---|---|---|",
    ...rows,
  ].join("\n");
}

export const KNOBS_BEGIN =
  "<!-- knobs: generated from src/config/knobs.ts (npm run docs:knobs) -->";
export const KNOBS_END = "<!-- /knobs -->";

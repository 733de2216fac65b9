// Every CLI flag, defined once: its spelling, help text and parser. Commands name the flags they
// take; main.ts builds commander options, help and validation from this table. A parser throws
// SpilloverError("ERR_USAGE" | "ERR_CONFIG") with one line naming the flag, the value and what is
// accepted.

import { KNOBS, type KnobDef, type KnobFlagName } from "../config/knobs.js";
import { parseLink, parseRamBw } from "../hw/table.js";
import { KV_TYPE_NAMES, type KvType } from "../models/ggml-types.js";
import { SpilloverError } from "../util/errors.js";
import { parseSize, SIZE_HINT } from "../util/size.js";

export interface FlagSpec<T> {
  /** commander spelling, e.g. "--vram <size>" or "--json". */
  readonly spelling: string;
  readonly description: string;
  readonly parse?: (raw: string, flag: string) => T;
  readonly defaultValue?: T;
}

export function parseIntFlag(min: number, max: number) {
  return (raw: string, flag: string): number => {
    const n = Number(raw);
    if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new SpilloverError(
        "ERR_USAGE",
        `${flag} ${JSON.stringify(raw)}: expected a whole number from ${min} to ${max}`,
      );
    }
    return n;
  };
}

export function parseNumberFlag(min: number, max: number) {
  return (raw: string, flag: string): number => {
    const n = Number(raw);
    if (raw.trim() === "" || !Number.isFinite(n) || n < min || n > max) {
      throw new SpilloverError(
        "ERR_USAGE",
        `${flag} ${JSON.stringify(raw)}: expected a number from ${min} to ${max}`,
      );
    }
    return n;
  };
}

/** Sizes such as 512M, 8G, 1.5GiB, 1073741824 (bytes). Returns bytes. */
export function parseSizeFlag(raw: string, flag: string): number {
  const bytes = parseSize(raw);
  if (bytes === undefined) {
    throw new SpilloverError("ERR_USAGE", `${flag} ${JSON.stringify(raw)}: expected ${SIZE_HINT}`);
  }
  return bytes;
}

type KnobFlagSpec<N extends KnobFlagName> = Extract<
  (typeof KNOBS)[number],
  { flag: { name: N } }
>["flag"] extends { sets: string }
  ? { readonly spelling: string; readonly description: string }
  : {
      readonly spelling: string;
      readonly description: string;
      readonly parse: (raw: string, flag: string) => string;
    };

/** The interposer knobs' flags (src/config/knobs.ts): the value is checked with the knob's own
 *  field, and handed to loadConfig as written. */
const KNOB_FLAGS = Object.fromEntries(
  (KNOBS as readonly KnobDef[]).flatMap((k): [string, FlagSpec<string>][] => {
    const f = k.flag;
    if (f === undefined) return [];
    if ("sets" in f) return [[f.name, { spelling: f.spelling, description: f.description }]];
    const parse = (raw: string, flag: string): string => {
      const r = k.field.safeParse(raw);
      if (!r.success)
        throw new SpilloverError(
          "ERR_USAGE",
          `${flag} ${JSON.stringify(raw)}: ${r.error.issues[0]?.message ?? "invalid value"}`,
        );
      return raw.trim();
    };
    return [[f.name, { spelling: f.spelling, description: f.description, parse }]];
  }),
) as { [N in KnobFlagName]: KnobFlagSpec<N> };

/** The config layer a command's knob flags make: {vram_limit: "8G", use_broker: "off", ...}. */
export function knobFlagLayer(flags: Partial<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of KNOBS as readonly KnobDef[]) {
    if (k.flag === undefined) continue;
    const v = flags[k.flag.name];
    if (v === undefined) continue;
    out[k.key] = k.flag.sets !== undefined ? (v ? k.flag.sets : undefined) : v;
  }
  return out;
}

export const FLAGS = {
  ...KNOB_FLAGS,
  json: { spelling: "--json", description: "print machine-readable JSON" },
  verbose: { spelling: "-v, --verbose", description: "log what spillover does to stderr" },
  config: {
    spelling: "--config <file>",
    description: "read configuration from this TOML file",
    parse: (raw: string): string => raw,
  },
  system: {
    spelling: "--system",
    description: "system-wide broker (/run/spillover/broker.sock, group access)",
  },
  httpPort: {
    spelling: "--http-port <port>",
    description: "broker HTTP port on 127.0.0.1 (0: any free port)",
    parse: parseIntFlag(0, 65535),
  },
  httpHost: {
    spelling: "--http-host <host>",
    description:
      "broker HTTP address (default 127.0.0.1; anything else is reachable from the network)",
    parse: (raw: string): string => raw,
  },
  pinnedBudget: {
    spelling: "--pinned-budget <size>",
    description:
      "machine-wide pinned memory the broker leases (default MemAvailable minus the host reserve)",
    parse: parseSizeFlag,
  },
  once: { spelling: "--once", description: "print one frame and exit (top)" },
  // plan / bench hw (src/cli/commands/plan.ts, bench.ts)
  gpu: {
    spelling: "--gpu <name>",
    description: "plan for this GPU from the built-in table (e.g. 4090, rtx3060, h100)",
    parse: (raw: string): string => raw,
  },
  vram: {
    spelling: "--vram <size>",
    description: "plan for this much VRAM (e.g. 24G)",
    parse: parseSizeFlag,
  },
  vramBw: {
    spelling: "--vram-bw <GB/s>",
    description: "plan for this VRAM bandwidth (GB/s, spec sheet)",
    parse: parseNumberFlag(1, 100_000),
  },
  link: {
    spelling: "--link <gen3|gen4|gen5|GB/s>",
    description:
      "host-GPU link: a PCIe generation (optionally x8: gen4x8) or measured pinned copy GB/s",
    parse: (raw: string, flag: string) => {
      const v = parseLink(raw);
      if (!v)
        throw new SpilloverError(
          "ERR_USAGE",
          `${flag} ${JSON.stringify(raw)}: expected gen3, gen4, gen5 (optionally x1..x16, e.g. gen4x8) or GB/s such as 25`,
        );
      return v;
    },
  },
  ramBw: {
    spelling: "--ram-bw <GB/s|ddrN-SPEEDxCH>",
    description:
      "host RAM read bandwidth: measured GB/s (e.g. 76) or a DRAM setup (e.g. ddr5-6000x2, theoretical)",
    parse: (raw: string, flag: string) => {
      const v = parseRamBw(raw);
      if (!v)
        throw new SpilloverError(
          "ERR_USAGE",
          `${flag} ${JSON.stringify(raw)}: expected GB/s such as 76, or ddr4-3200x8 / ddr5-6000x2 (DDR type-speed x channels)`,
        );
      return v;
    },
  },
  cpuThreads: {
    spelling: "--cpu-threads <n>",
    description: "CPU threads computing offloaded layers",
    parse: parseIntFlag(1, 4096),
  },
  prompt: {
    spelling: "--prompt <tokens>",
    description: "prompt length per sequence (default 512)",
    parse: parseIntFlag(1, 10_000_000),
  },
  gen: {
    spelling: "--gen <tokens>",
    description: "tokens generated per sequence (default 128)",
    parse: parseIntFlag(1, 10_000_000),
  },
  batch: {
    spelling: "--batch <n>",
    description: "sequences decoded together (default 1)",
    parse: parseIntFlag(1, 4096),
  },
  ctx: {
    spelling: "--ctx <tokens>",
    description: "context size per sequence (default prompt + gen)",
    parse: parseIntFlag(1, 10_000_000),
  },
  kvType: {
    spelling: "--kv-type <type>",
    description: `KV cache type: ${KV_TYPE_NAMES.join(", ")} (default f16)`,
    parse: (raw: string, flag: string): KvType => {
      if ((KV_TYPE_NAMES as readonly string[]).includes(raw)) return raw as KvType;
      throw new SpilloverError(
        "ERR_USAGE",
        `${flag} ${JSON.stringify(raw)}: expected one of ${KV_TYPE_NAMES.join(", ")}`,
      );
    },
  },
  ubatch: {
    spelling: "--ubatch <tokens>",
    description: "prompt tokens per forward pass (llama.cpp -ub; default 512)",
    parse: parseIntFlag(1, 1_000_000),
  },
  ngl: {
    spelling: "--ngl <n>",
    description: "evaluate this llama.cpp -ngl instead of the largest that fits",
    parse: parseIntFlag(0, 10_000),
  },
  nCpuMoe: {
    spelling: "--n-cpu-moe <n>",
    description: "evaluate this llama.cpp --n-cpu-moe instead of the smallest that fits",
    parse: parseIntFlag(0, 10_000),
  },
  dtype: {
    spelling: "--dtype <dtype>",
    description: "weight dtype for a config.json without weights (bf16, f16, f32, fp8, q8_0, q4_k)",
    parse: (raw: string): string => raw,
  },
  profile: {
    spelling: "--profile <file>",
    description: "hardware profile file (default $XDG_CONFIG_HOME/spillover/hw-profile.json)",
    parse: (raw: string): string => raw,
  },
  validate: {
    spelling: "--validate <results.json>",
    description: "compare predictions with a bench suite results file",
    parse: (raw: string): string => raw,
  },
  expertReads: {
    spelling: "--expert-reads <routed|all>",
    description:
      "with --validate: whether the benchmarked program's MoE kernels read only the routed experts or all of them (default routed)",
    parse: (raw: string, flag: string): "routed" | "all" => {
      if (raw === "routed" || raw === "all") return raw;
      throw new SpilloverError(
        "ERR_USAGE",
        `${flag} ${JSON.stringify(raw)}: expected routed or all`,
      );
    },
  },
  hwprobe: {
    spelling: "--hwprobe <path>",
    description: "hwprobe binary to run (default native/build/hwprobe)",
    parse: (raw: string): string => raw,
  },
} satisfies Record<string, FlagSpec<unknown>>;

type Parsed<S> = S extends { parse: (raw: string, flag: string) => infer T } ? T : boolean;
export type FlagName = keyof typeof FLAGS;
export type FlagValues = { [K in FlagName]: Parsed<(typeof FLAGS)[K]> | undefined };

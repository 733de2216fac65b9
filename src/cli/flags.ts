// Every CLI flag, defined once: its spelling, help text and parser. Commands name the flags they
// take; main.ts builds commander options, help and validation from this table. A parser throws
// SpilloverError("ERR_USAGE" | "ERR_CONFIG") with one line naming the flag, the value and what is
// accepted.

import { SpilloverError } from "../util/errors.js";

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
    throw new SpilloverError(
      "ERR_USAGE",
      `${flag} ${JSON.stringify(raw)}: expected a size such as 512M, 8G or 1.5GiB (bytes if no unit)`,
    );
  }
  return bytes;
}

const UNITS: Record<string, number> = {
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

/** Binary units throughout (1G = 2^30), as the interposer's SPILLOVER_* variables use. */
export function parseSize(raw: string): number | undefined {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(raw);
  if (!m) return undefined;
  const unit = UNITS[(m[2] ?? "").toLowerCase()];
  if (unit === undefined) return undefined;
  const bytes = Math.round(Number(m[1]) * unit);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

export const FLAGS = {
  json: { spelling: "--json", description: "print machine-readable JSON" },
  verbose: { spelling: "-v, --verbose", description: "log what spillover does to stderr" },
  config: { spelling: "--config <file>", description: "read configuration from this TOML file" },
} satisfies Record<string, FlagSpec<unknown>>;

type Parsed<S> = S extends { parse: (raw: string, flag: string) => infer T } ? T : boolean;
export type FlagName = keyof typeof FLAGS;
export type FlagValues = { [K in FlagName]: Parsed<(typeof FLAGS)[K]> | undefined };

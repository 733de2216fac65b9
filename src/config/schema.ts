// The one configuration schema for spillover (zod 4): every key a TOML file, a SPILLOVER_* env var
// or a flag can set, its accepted values and its default. Values from each source are validated
// with the same schema, so one bad value gives one line naming the key, the source, the value
// and what is accepted (see load.ts).

import { z } from "zod";
import { parseSize } from "../cli/flags.js";

const SIZE_HINT = "a size such as 512M, 8G or 1.5GiB (bytes if no unit)";

function sizeField() {
  return z.unknown().transform((v, ctx): number => {
    const bytes =
      typeof v === "number"
        ? Number.isSafeInteger(v) && v >= 0
          ? v
          : undefined
        : typeof v === "string"
          ? parseSize(v)
          : undefined;
    if (bytes === undefined) {
      ctx.addIssue({ code: "custom", message: `expected ${SIZE_HINT}` });
      return z.NEVER;
    }
    return bytes;
  });
}

export type SizeOrPercent = { readonly bytes: number } | { readonly percent: number };

/** "NN%" of something the consumer knows (VRAM of the card, MemTotal), or an absolute size. */
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

function sizeOrPercentField() {
  return z.unknown().transform((v, ctx): SizeOrPercent => {
    const r = parseSizeOrPercent(v);
    if (r === undefined) {
      ctx.addIssue({
        code: "custom",
        message: `expected ${SIZE_HINT}, or a percentage from 1% to 100%`,
      });
      return z.NEVER;
    }
    return r;
  });
}

function intField(min: number, max: number) {
  return z.unknown().transform((v, ctx): number => {
    const n =
      typeof v === "number"
        ? v
        : typeof v === "string" && /^\s*-?\d+\s*$/.test(v)
          ? Number(v)
          : Number.NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) {
      ctx.addIssue({ code: "custom", message: `expected a whole number from ${min} to ${max}` });
      return z.NEVER;
    }
    return n;
  });
}

function numberField(min: number, max: number) {
  return z.unknown().transform((v, ctx): number => {
    const n =
      typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : Number.NaN;
    if (!Number.isFinite(n) || n < min || n > max) {
      ctx.addIssue({ code: "custom", message: `expected a number from ${min} to ${max}` });
      return z.NEVER;
    }
    return n;
  });
}

function boolField() {
  return z.unknown().transform((v, ctx): boolean => {
    if (typeof v === "boolean") return v;
    if (typeof v === "string" && /^(1|true|yes|on)$/i.test(v.trim())) return true;
    if (typeof v === "string" && /^(0|false|no|off)$/i.test(v.trim())) return false;
    ctx.addIssue({ code: "custom", message: "expected true or false (1/0, yes/no)" });
    return z.NEVER;
  });
}

function enumField<T extends string>(values: readonly T[]) {
  return z.unknown().transform((v, ctx): T => {
    if (typeof v === "string" && (values as readonly string[]).includes(v)) return v as T;
    ctx.addIssue({ code: "custom", message: `expected one of ${values.join(", ")}` });
    return z.NEVER;
  });
}

function stringField(what: string) {
  return z.unknown().transform((v, ctx): string => {
    if (typeof v === "string" && v.length > 0) return v;
    ctx.addIssue({ code: "custom", message: `expected ${what}` });
    return z.NEVER;
  });
}

export const LOG_LEVELS = ["off", "error", "warn", "info", "debug"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** [broker.quota]: a share of the pinned budget ("25%") or a size per user, per group, a default. */
export const QuotaSchema = z.strictObject(
  {
    default: sizeOrPercentField().optional(),
    users: z
      .record(z.string(), sizeOrPercentField(), {
        error: 'expected a table of user = size or share, e.g. { alice = "64G", bob = "25%" }',
      })
      .optional(),
    groups: z
      .record(z.string(), sizeOrPercentField(), {
        error: 'expected a table of group = size or share, e.g. { ml = "50%" }',
      })
      .optional(),
  },
  { error: "expected a table ([broker.quota])" },
);

export const BrokerSchema = z.strictObject({
  system: boolField().optional(),
  group: stringField("a group name").optional(),
  http_port: intField(0, 65535).optional(),
  http_host: stringField("a host name or IP address").optional(),
  pinned_budget: sizeField().optional(),
  grow_step: sizeField().optional(),
  initial_grant: sizeField().optional(),
  client_pinned_max: sizeField().optional(),
  warn_available: sizeOrPercentField().optional(),
  critical_available: sizeOrPercentField().optional(),
  psi_warn: numberField(0, 100).optional(),
  psi_critical: numberField(0, 100).optional(),
  sample_ms: intField(50, 5000).optional(),
  telemetry_ms: intField(100, 10000).optional(),
  history_minutes: intField(1, 120).optional(),
  quota: QuotaSchema.optional(),
});

/** Every key optional: one layer (a file, the env, the flags) as the user wrote it. */
export const ConfigSchema = z.strictObject({
  vram_limit: sizeOrPercentField().optional(),
  vram_reserve: sizeField().optional(),
  pinned_limit: sizeField().optional(),
  host_reserve: sizeField().optional(),
  threshold: sizeField().optional(),
  log: enumField(LOG_LEVELS).optional(),
  use_broker: enumField(["auto", "off"] as const).optional(),
  socket: stringField("a socket path").optional(),
  stats_dir: stringField("a directory").optional(),
  broker: BrokerSchema.optional(),
});

export type ConfigLayer = z.output<typeof ConfigSchema>;
export type BrokerLayer = z.output<typeof BrokerSchema>;

/** The merged configuration; keys without a value fall back to defaults where they are used. */
export interface Config {
  readonly vram_limit?: SizeOrPercent;
  readonly vram_reserve?: number;
  readonly pinned_limit?: number;
  readonly host_reserve?: number;
  readonly threshold?: number;
  readonly log?: LogLevel;
  readonly use_broker: "auto" | "off";
  readonly socket?: string;
  readonly stats_dir: string;
  readonly broker: BrokerConfig;
}

export interface BrokerConfig {
  readonly system: boolean;
  readonly group?: string;
  readonly http_port: number;
  readonly http_host: string;
  readonly pinned_budget?: number;
  readonly grow_step: number;
  readonly initial_grant: number;
  readonly client_pinned_max?: number;
  readonly warn_available: SizeOrPercent;
  readonly critical_available: SizeOrPercent;
  readonly psi_warn: number;
  readonly psi_critical: number;
  readonly sample_ms: number;
  readonly telemetry_ms: number;
  readonly history_minutes: number;
  readonly quota?: z.output<typeof QuotaSchema>;
}

export const BROKER_DEFAULTS: BrokerConfig = {
  system: false,
  http_port: 7878,
  http_host: "127.0.0.1",
  grow_step: 256 * 2 ** 20,
  initial_grant: 2 ** 30,
  warn_available: { percent: 10 },
  critical_available: { percent: 5 },
  psi_warn: 10,
  psi_critical: 30,
  sample_ms: 250,
  telemetry_ms: 500,
  history_minutes: 10,
};

/** SPILLOVER_* variables the CLI reads, and the key each sets (the interposer reads more). */
export const ENV_KEYS: Readonly<Record<string, string>> = {
  SPILLOVER_VRAM_LIMIT: "vram_limit",
  SPILLOVER_VRAM_RESERVE: "vram_reserve",
  SPILLOVER_PINNED_LIMIT: "pinned_limit",
  SPILLOVER_HOST_RESERVE: "host_reserve",
  SPILLOVER_THRESHOLD: "threshold",
  SPILLOVER_LOG: "log",
  SPILLOVER_BROKER: "use_broker",
  SPILLOVER_SOCKET: "socket",
  SPILLOVER_STATS_DIR: "stats_dir",
  SPILLOVER_HTTP_PORT: "broker.http_port",
  SPILLOVER_HTTP_HOST: "broker.http_host",
  SPILLOVER_PINNED_BUDGET: "broker.pinned_budget",
  SPILLOVER_GROW_STEP: "broker.grow_step",
  SPILLOVER_BROKER_GROUP: "broker.group",
};

// The one configuration schema for spillover (zod 4): every key a TOML file, a SPILLOVER_* env var
// or a flag can set, its accepted values and its default. Values from each source are validated
// with the same schema, so one bad value gives one line naming the key, the source, the value
// and what is accepted (see load.ts).

import { z } from "zod";
import type { SizeOrPercent } from "../util/size.js";
import {
  boolField,
  intField,
  numberField,
  sizeField,
  sizeOrPercentField,
  stringField,
} from "./fields.js";
import { KNOBS, type KnobValues } from "./knobs.js";

export type { SizeOrPercent } from "../util/size.js";
export { LOG_LEVELS, type LogLevel } from "./knobs.js";

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
  ...(Object.fromEntries(KNOBS.map((k) => [k.key, k.field.optional()])) as unknown as Record<
    (typeof KNOBS)[number]["key"],
    z.ZodOptional<z.ZodType>
  >),
  broker: BrokerSchema.optional(),
});

export type ConfigLayer = z.output<typeof ConfigSchema>;
export type BrokerLayer = z.output<typeof BrokerSchema>;

/** The merged configuration; knobs without a value fall back to defaults where they are used. */
export type Config = KnobValues & {
  readonly use_broker: "auto" | "off";
  readonly stats_dir: string;
  readonly broker: BrokerConfig;
};

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

/** The broker's own SPILLOVER_* variables (the interposer's are in knobs.ts). */
export const BROKER_ENV_KEYS: Readonly<Record<string, string>> = {
  SPILLOVER_HTTP_PORT: "broker.http_port",
  SPILLOVER_HTTP_HOST: "broker.http_host",
  SPILLOVER_PINNED_BUDGET: "broker.pinned_budget",
  SPILLOVER_GROW_STEP: "broker.grow_step",
  SPILLOVER_BROKER_GROUP: "broker.group",
};

/** Every SPILLOVER_* variable the CLI reads, and the config key each sets. */
export const ENV_KEYS: Readonly<Record<string, string>> = {
  ...Object.fromEntries(KNOBS.map((k) => [k.env, k.key])),
  ...BROKER_ENV_KEYS,
};

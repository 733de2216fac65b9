// Loads the configuration: defaults < /etc/spillover/config.toml < user config < --config FILE <
// SPILLOVER_* env < flags. Each layer is validated on its own with ConfigSchema so that a bad value
// is reported with its source: one line per bad key, then exit 2 (SpilloverError ERR_CONFIG).

import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseToml } from "smol-toml";
import type { z } from "zod";
import { SpilloverError } from "../util/errors.js";
import { KNOBS } from "./knobs.js";
import {
  BROKER_DEFAULTS,
  type Config,
  type ConfigLayer,
  ConfigSchema,
  ENV_KEYS,
} from "./schema.js";

export const SYSTEM_CONFIG = "/etc/spillover/config.toml";

export function userConfigPath(env: NodeJS.ProcessEnv): string | undefined {
  if (env.XDG_CONFIG_HOME) return join(env.XDG_CONFIG_HOME, "spillover", "config.toml");
  if (env.HOME) return join(env.HOME, ".config", "spillover", "config.toml");
  return undefined;
}

export interface LoadOptions {
  readonly env: NodeJS.ProcessEnv;
  /** --config FILE: must exist. */
  readonly configFile?: string | undefined;
  /** Values from flags, by config key ("vram_limit", "broker.http_port"), already parsed or raw. */
  readonly flags?: Readonly<Record<string, unknown>>;
  /** Overridable for tests; null skips the file. */
  readonly userFile?: string | null;
  readonly systemFile?: string | null;
  /** The config keys this command uses: SPILLOVER_* variables of other keys are not checked
   *  (status must not fail on a budget it never passes on). Unset: every key. */
  readonly uses?: readonly string[];
}

type Source =
  | { readonly kind: "file"; readonly path: string }
  | { readonly kind: "env" }
  | { readonly kind: "flags" };

function get(obj: unknown, path: readonly PropertyKey[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<PropertyKey, unknown>)[k];
  }
  return cur;
}

function show(v: unknown): string {
  return typeof v === "string"
    ? JSON.stringify(v)
    : v instanceof Object
      ? JSON.stringify(v)
      : String(v);
}

const ENV_BY_KEY = Object.fromEntries(Object.entries(ENV_KEYS).map(([env, key]) => [key, env]));

function where(source: Source, key: string): string {
  switch (source.kind) {
    case "file":
      return `${source.path}: ${key}`;
    case "env":
      return ENV_BY_KEY[key] ?? key;
    case "flags":
      return `--${(key.split(".").pop() ?? key).replaceAll("_", "-")}`;
  }
}

function issueLines(source: Source, raw: unknown, error: z.ZodError): string[] {
  const lines: string[] = [];
  for (const issue of error.issues) {
    const prefix = issue.path.map(String).join(".");
    if (issue.code === "unrecognized_keys") {
      for (const k of issue.keys) {
        const key = prefix ? `${prefix}.${k}` : k;
        lines.push(
          `${where(source, key)}: unknown key (see docs/cli.md for the keys spillover reads)`,
        );
      }
      continue;
    }
    const value = get(raw, issue.path);
    if (prefix === "broker" && issue.code === "invalid_type") {
      lines.push(`${where(source, "broker")}: expected a table ([broker])`);
      continue;
    }
    const sep = source.kind === "env" ? "=" : source.kind === "flags" ? " " : " = ";
    lines.push(`${where(source, prefix)}${sep}${show(value)}: ${issue.message}`);
  }
  return lines;
}

function validate(source: Source, raw: unknown): { layer?: ConfigLayer; lines: string[] } {
  const r = ConfigSchema.safeParse(raw);
  if (r.success) return { layer: r.data, lines: [] };
  return { lines: issueLines(source, raw, r.error) };
}

async function readToml(
  path: string,
  required: boolean,
): Promise<{ raw?: unknown; lines: string[] }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (!required && code === "ENOENT") return { lines: [] };
    return { lines: [`${path}: cannot read the config file (${code ?? String(e)})`] };
  }
  try {
    return { raw: parseToml(text), lines: [] };
  } catch (e) {
    const msg = (e instanceof Error ? e.message : String(e))
      .split("\n")[0]
      ?.replace(/^Invalid TOML document: /, "");
    const { line, column } = e as { line?: number; column?: number };
    const at = line !== undefined && column !== undefined ? `:${line}:${column}` : "";
    return { lines: [`${path}${at}: not valid TOML: ${msg}`] };
  }
}

const EMPTY_IS_ERROR = new Set<string>(
  KNOBS.filter((k) => "emptyIsError" in k && k.emptyIsError).map((k) => k.env),
);

/** Turns the env into a raw layer: SPILLOVER_HTTP_PORT=1 -> {broker: {http_port: "1"}}. Only
 *  the keys in `uses` when given. */
export function envLayer(
  env: NodeJS.ProcessEnv,
  uses?: readonly string[],
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, key] of Object.entries(ENV_KEYS)) {
    const v = env[name];
    if (v === undefined || (v === "" && !EMPTY_IS_ERROR.has(name))) continue;
    if (uses && !uses.some((u) => key === u || key.startsWith(`${u}.`))) continue;
    setPath(out, key, v);
  }
  return out;
}

function setPath(obj: Record<string, unknown>, dotted: string, v: unknown) {
  const parts = dotted.split(".");
  let cur = obj;
  for (const p of parts.slice(0, -1)) {
    cur[p] ??= {};
    cur = cur[p] as Record<string, unknown>;
  }
  cur[parts[parts.length - 1] as string] = v;
}

function merge(layers: readonly ConfigLayer[]): ConfigLayer {
  const out: Record<string, unknown> = {};
  const broker: Record<string, unknown> = {};
  for (const layer of layers) {
    for (const [k, v] of Object.entries(layer)) {
      if (v === undefined) continue;
      if (k === "broker")
        Object.assign(
          broker,
          Object.fromEntries(Object.entries(v as object).filter(([, x]) => x !== undefined)),
        );
      else out[k] = v;
    }
  }
  out.broker = broker;
  return out as ConfigLayer;
}

/** Loads and validates every layer; throws one SpilloverError listing every bad key, one per line. */
export async function loadConfig(opts: LoadOptions): Promise<Config> {
  const lines: string[] = [];
  const layers: ConfigLayer[] = [];
  const files: { path: string; required: boolean }[] = [];
  const systemFile = opts.systemFile === undefined ? SYSTEM_CONFIG : opts.systemFile;
  const userFile = opts.userFile === undefined ? userConfigPath(opts.env) : opts.userFile;
  if (systemFile) files.push({ path: systemFile, required: false });
  if (userFile) files.push({ path: userFile, required: false });
  if (opts.configFile) files.push({ path: opts.configFile, required: true });
  for (const f of files) {
    const { raw, lines: l } = await readToml(f.path, f.required);
    lines.push(...l);
    if (raw === undefined) continue;
    const v = validate({ kind: "file", path: f.path }, raw);
    lines.push(...v.lines);
    if (v.layer) layers.push(v.layer);
  }
  for (const [source, raw] of [
    [{ kind: "env" }, envLayer(opts.env, opts.uses)],
    [{ kind: "flags" }, flagLayer(opts.flags ?? {})],
  ] as const) {
    const v = validate(source, raw);
    lines.push(...v.lines);
    if (v.layer) layers.push(v.layer);
  }
  if (lines.length > 0) throw new SpilloverError("ERR_CONFIG", lines.join("\nspillover: "));
  const m = merge(layers);
  const { broker, ...top } = m;
  return {
    ...top,
    use_broker: top.use_broker ?? "auto",
    stats_dir: top.stats_dir ?? "/dev/shm",
    broker: { ...BROKER_DEFAULTS, ...broker },
  } as Config;
}

function flagLayer(flags: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(flags)) if (v !== undefined) setPath(out, k, v);
  return out;
}

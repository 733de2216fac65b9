// The value types of the configuration (zod 4): sizes, percentages, numbers, switches, enums,
// strings. Each validates a value from any source (TOML, SPILLOVER_* variable, flag) and fails with
// a message saying what is accepted; load.ts adds which key and source.

import { z } from "zod";
import {
  MAX_GPUS,
  PERCENT_HINT,
  parsePerGpuList,
  parseSize,
  parseSizeOrPercent,
  SIZE_HINT,
} from "../util/size.js";

export function sizeField() {
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

export function sizeOrPercentField(positive = false) {
  return z.unknown().transform((v, ctx) => {
    const r = parseSizeOrPercent(v);
    if (r === undefined || (positive && "bytes" in r && r.bytes === 0)) {
      ctx.addIssue({
        code: "custom",
        message: `expected ${positive ? SIZE_HINT.replace("a size", "a positive size") : SIZE_HINT}, or ${PERCENT_HINT}`,
      });
      return z.NEVER;
    }
    return r;
  });
}

/** A size or NN% for every GPU, or a per-GPU list "0:8G,1:12G" (SPILLOVER_VRAM_LIMIT/RESERVE). */
export function sizeOrPercentPerGpuField(positive = false) {
  const one = sizeOrPercentField(positive);
  return z.unknown().transform((v, ctx) => {
    const list = typeof v === "string" ? parsePerGpuList(v, positive) : undefined;
    if (list === undefined) {
      const r = one.safeParse(v);
      if (r.success) return r.data;
      ctx.addIssue({
        code: "custom",
        message: `${r.error.issues[0]?.message ?? "expected a size"}, or a per-GPU list such as 0:8G,1:12G`,
      });
      return z.NEVER;
    }
    if ("bad" in list) {
      ctx.addIssue({
        code: "custom",
        message: `entry "${list.bad}" is not GPU:SIZE (use e.g. 0:8G,1:12G: each GPU 0-${MAX_GPUS - 1} once, ${positive ? "a positive size" : "a size"} or NN%)`,
      });
      return z.NEVER;
    }
    return list;
  });
}

export function intField(min: number, max: number) {
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

export function numberField(min: number, max: number) {
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

/** A broker setting: true/false, also 1/0, yes/no, on/off from a variable. */
export function boolField() {
  return z.unknown().transform((v, ctx): boolean => {
    if (typeof v === "boolean") return v;
    if (typeof v === "string" && /^(1|true|yes|on)$/i.test(v.trim())) return true;
    if (typeof v === "string" && /^(0|false|no|off)$/i.test(v.trim())) return false;
    ctx.addIssue({ code: "custom", message: "expected true or false (1/0, yes/no)" });
    return z.NEVER;
  });
}

/** An interposer switch: what native/src/config.c accepts, 1 or 0 (true/false in TOML). */
export function switchField() {
  return z.unknown().transform((v, ctx): boolean => {
    if (typeof v === "boolean") return v;
    if (v === 1 || v === "1") return true;
    if (v === 0 || v === "0") return false;
    ctx.addIssue({ code: "custom", message: "expected 1 or 0 (true or false in a config file)" });
    return z.NEVER;
  });
}

export function enumField<T extends string>(values: readonly T[]) {
  return z.unknown().transform((v, ctx): T => {
    if (typeof v === "string" && (values as readonly string[]).includes(v)) return v as T;
    ctx.addIssue({ code: "custom", message: `expected one of ${values.join(", ")}` });
    return z.NEVER;
  });
}

export function stringField(what: string) {
  return z.unknown().transform((v, ctx): string => {
    if (typeof v === "string" && v.length > 0) return v;
    ctx.addIssue({ code: "custom", message: `expected ${what}` });
    return z.NEVER;
  });
}

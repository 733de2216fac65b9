// The broker's log: one JSON object per line to stderr (journald keeps them as they are).

export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level | "off", number> = { debug: 10, info: 20, warn: 30, error: 40, off: 100 };

export interface Logger {
  log(level: Level, msg: string, fields?: Record<string, unknown>): void;
}

export function jsonLogger(out: NodeJS.WritableStream, min: Level | "off" = "info"): Logger {
  return {
    log(level, msg, fields) {
      if (RANK[level] < RANK[min]) return;
      out.write(`${JSON.stringify({ t: new Date().toISOString(), level, msg, ...fields })}\n`);
    },
  };
}

/** Keeps lines in memory as well (tests assert on logged reasons). */
export function memoryLogger(inner?: Logger): Logger & {
  lines: { level: Level; msg: string; fields?: Record<string, unknown> | undefined }[];
} {
  const lines: { level: Level; msg: string; fields?: Record<string, unknown> | undefined }[] = [];
  return {
    lines,
    log(level, msg, fields) {
      lines.push({ level, msg, fields });
      inner?.log(level, msg, fields);
    },
  };
}

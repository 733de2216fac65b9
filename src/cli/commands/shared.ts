// Small helpers the run/status/top/doctor/broker commands share.

export function uid(): number {
  return process.getuid?.() ?? 0;
}

/** A fixed-column table: every column as wide as its widest cell, two spaces apart. */
export function table(
  rows: readonly (readonly string[])[],
  rightAlign: readonly number[] = [],
): string {
  const widths: number[] = [];
  for (const r of rows)
    for (const [i, c] of r.entries()) widths[i] = Math.max(widths[i] ?? 0, c.length);
  return rows
    .map((r) =>
      r
        .map((c, i) =>
          i === r.length - 1 && !rightAlign.includes(i)
            ? c
            : rightAlign.includes(i)
              ? c.padStart(widths[i] ?? 0)
              : c.padEnd(widths[i] ?? 0),
        )
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

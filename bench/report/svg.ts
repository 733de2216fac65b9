// Minimal SVG charts for docs/benchmarks.md (a line chart and a grouped bar chart, linear or log
// y axis), written by hand so the report needs no chart dependency and renders on GitHub. Pure:
// options in, SVG text out; the output is deterministic for the same input.

export interface LinePoint {
  readonly x: number;
  readonly y: number;
}

export interface LineSeries {
  readonly name: string;
  readonly color: string;
  readonly points: readonly LinePoint[];
  readonly dashed?: boolean;
  /** draw markers only, no connecting line (a single reference point) */
  readonly markersOnly?: boolean;
  /** where each point's value is written, so close series do not overprint (default above) */
  readonly labels?: "above" | "below" | "right";
}

export interface LineChartOptions {
  readonly title: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly xTicks: readonly { readonly x: number; readonly label: string }[];
  readonly series: readonly LineSeries[];
  readonly logY?: boolean;
  readonly width?: number;
  readonly height?: number;
}

export interface BarSeries {
  readonly name: string;
  readonly color: string;
  readonly values: readonly (number | null)[];
}

export interface BarChartOptions {
  readonly title: string;
  readonly yLabel: string;
  readonly categories: readonly string[];
  readonly series: readonly BarSeries[];
  readonly target?: { readonly value: number; readonly label: string };
  readonly logY?: boolean;
  readonly valueFormat?: (v: number) => string;
  readonly width?: number;
  readonly height?: number;
}

export const PALETTE = {
  spillover: "#1f77b4",
  accelerate: "#d62728",
  bound: "#2ca02c",
  baseline: "#7f7f7f",
  target: "#ff7f0e",
} as const;

const M = { left: 72, right: 190, top: 44, bottom: 64 };

export function escapeXml(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

function num(v: number): string {
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

/** Short human label for an axis tick: 0.5, 12, 3.4k. */
export function tickLabel(v: number): string {
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

interface Scale {
  readonly map: (v: number) => number;
  readonly ticks: readonly number[];
}

function linearScale(lo: number, hi: number, top: number, bottom: number): Scale {
  const span = hi - lo || 1;
  const raw = span / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((k) => k * mag).find((s) => s >= raw) ?? raw;
  const start = Math.floor(lo / step) * step;
  const end = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let t = start; t <= end + step / 2; t += step) ticks.push(+t.toPrecision(12));
  const min = ticks[0] ?? lo;
  const max = ticks[ticks.length - 1] ?? hi;
  return { map: (v) => bottom - ((v - min) / (max - min || 1)) * (bottom - top), ticks };
}

function logScale(lo: number, hi: number, top: number, bottom: number): Scale {
  const a = Math.floor(Math.log10(lo));
  const b = Math.ceil(Math.log10(hi));
  const hiExp = b === a ? a + 1 : b;
  const ticks: number[] = [];
  for (let e = a; e <= hiExp; e++) {
    for (const k of [1, 2, 5]) {
      const t = k * 10 ** e;
      if (t >= 10 ** a && t <= 10 ** hiExp) ticks.push(+t.toPrecision(6));
    }
  }
  const l0 = a;
  const l1 = hiExp;
  return {
    map: (v) => bottom - ((Math.log10(v) - l0) / (l1 - l0)) * (bottom - top),
    ticks,
  };
}

function yScale(
  values: readonly number[],
  log: boolean,
  top: number,
  bottom: number,
  floor0 = true,
) {
  const vs = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  if (vs.length === 0) return linearScale(0, 1, top, bottom);
  const lo = Math.min(...vs);
  const hi = Math.max(...vs);
  if (log) return logScale(lo, hi, top, bottom);
  return linearScale(floor0 ? Math.min(0, lo) : lo, hi, top, bottom);
}

function frame(w: number, h: number, title: string, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="#ffffff"/>`,
    `<text x="${w / 2}" y="24" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`,
    ...body,
    "</svg>",
    "",
  ].join("\n");
}

function yAxis(
  s: Scale,
  x0: number,
  x1: number,
  label: string,
  top: number,
  bottom: number,
): string[] {
  const out: string[] = [];
  for (const t of s.ticks) {
    const y = num(s.map(t));
    out.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#e5e5e5"/>`);
    out.push(
      `<text x="${x0 - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${tickLabel(t)}</text>`,
    );
  }
  const cy = (top + bottom) / 2;
  out.push(
    `<text x="18" y="${cy}" text-anchor="middle" transform="rotate(-90 18 ${cy})">${escapeXml(label)}</text>`,
  );
  out.push(`<line x1="${x0}" y1="${top}" x2="${x0}" y2="${bottom}" stroke="#333"/>`);
  out.push(`<line x1="${x0}" y1="${bottom}" x2="${x1}" y2="${bottom}" stroke="#333"/>`);
  return out;
}

function legend(
  items: readonly { name: string; color: string; dashed?: boolean }[],
  x: number,
  y: number,
): string[] {
  return items.flatMap((it, i) => {
    const yy = y + i * 20;
    const dash = it.dashed ? ' stroke-dasharray="6 4"' : "";
    return [
      `<line x1="${x}" y1="${yy}" x2="${x + 22}" y2="${yy}" stroke="${it.color}" stroke-width="3"${dash}/>`,
      `<text x="${x + 28}" y="${yy}" dominant-baseline="middle">${escapeXml(it.name)}</text>`,
    ];
  });
}

export function lineChart(o: LineChartOptions): string {
  const w = o.width ?? 760;
  const h = o.height ?? 420;
  const x0 = M.left;
  const x1 = w - M.right;
  const top = M.top;
  const bottom = h - M.bottom;
  const all = o.series.flatMap((s) => s.points.map((p) => p.y));
  const ys = yScale(all, o.logY ?? false, top, bottom);
  const xsAll = [...o.xTicks.map((t) => t.x), ...o.series.flatMap((s) => s.points.map((p) => p.x))];
  const xmin = Math.min(...xsAll);
  const xmax = Math.max(...xsAll);
  const pad = (xmax - xmin || 1) * 0.06;
  const xmap = (v: number) => x0 + ((v - xmin + pad) / (xmax - xmin + 2 * pad)) * (x1 - x0);
  const body = yAxis(ys, x0, x1, o.yLabel, top, bottom);
  for (const t of o.xTicks) {
    const x = num(xmap(t.x));
    body.push(`<line x1="${x}" y1="${bottom}" x2="${x}" y2="${bottom + 5}" stroke="#333"/>`);
    body.push(
      `<text x="${x}" y="${bottom + 20}" text-anchor="middle">${escapeXml(t.label)}</text>`,
    );
  }
  body.push(
    `<text x="${(x0 + x1) / 2}" y="${h - 16}" text-anchor="middle">${escapeXml(o.xLabel)}</text>`,
  );
  for (const s of o.series) {
    const pts = [...s.points]
      .filter((p) => Number.isFinite(p.y) && (!o.logY || p.y > 0))
      .sort((a, b) => a.x - b.x);
    if (pts.length === 0) continue;
    const coords = pts.map((p) => `${num(xmap(p.x))},${num(ys.map(p.y))}`);
    if (!s.markersOnly && pts.length > 1) {
      const dash = s.dashed ? ' stroke-dasharray="6 4"' : "";
      body.push(
        `<polyline points="${coords.join(" ")}" fill="none" stroke="${s.color}" stroke-width="2.5"${dash}/>`,
      );
    }
    for (const p of pts) {
      const cx = num(xmap(p.x));
      const cy = num(ys.map(p.y));
      body.push(`<circle cx="${cx}" cy="${cy}" r="${s.markersOnly ? 6 : 4}" fill="${s.color}"/>`);
      const at = s.labels ?? "above";
      const lx = at === "right" ? num(xmap(p.x) + 10) : cx;
      const ly = num(ys.map(p.y) + (at === "below" ? 16 : at === "right" ? 4 : -9));
      const anchor = at === "right" ? "start" : "middle";
      body.push(
        `<text x="${lx}" y="${ly}" text-anchor="${anchor}" font-size="10" fill="${s.color}">${tickLabel(p.y)}</text>`,
      );
    }
  }
  body.push(...legend(o.series, x1 + 20, top + 10));
  return frame(w, h, o.title, body);
}

export function barChart(o: BarChartOptions): string {
  const w = o.width ?? 760;
  const h = o.height ?? 420;
  const x0 = M.left;
  const x1 = w - M.right;
  const top = M.top;
  const bottom = h - M.bottom;
  const values = o.series.flatMap((s) => s.values.filter((v): v is number => v !== null));
  if (o.target) values.push(o.target.value);
  const ys = yScale(values, o.logY ?? false, top, bottom);
  const fmt = o.valueFormat ?? tickLabel;
  const body = yAxis(ys, x0, x1, o.yLabel, top, bottom);
  const n = Math.max(1, o.categories.length);
  const slot = (x1 - x0) / n;
  const k = Math.max(1, o.series.length);
  const barW = Math.min(36, (slot * 0.8) / k);
  const base = o.logY ? bottom : ys.map(0);
  o.categories.forEach((c, i) => {
    const cx = x0 + slot * (i + 0.5);
    // two lines ("dense-8g" over "75%") so neighbouring labels do not run into each other
    const cut = c.lastIndexOf(" ");
    const lines = cut > 0 ? [c.slice(0, cut), c.slice(cut + 1)] : [c];
    const spans = lines
      .map((l, li) => `<tspan x="${num(cx)}" dy="${li === 0 ? 0 : 14}">${escapeXml(l)}</tspan>`)
      .join("");
    body.push(`<text x="${num(cx)}" y="${bottom + 18}" text-anchor="middle">${spans}</text>`);
    o.series.forEach((s, j) => {
      const v = s.values[i];
      if (v === null || v === undefined || (o.logY && v <= 0)) return;
      const x = cx - (k * barW) / 2 + j * barW;
      const y = ys.map(v);
      const hgt = Math.max(0.5, base - y);
      body.push(
        `<rect x="${num(x)}" y="${num(Math.min(y, base))}" width="${num(barW - 2)}" height="${num(hgt)}" fill="${s.color}"/>`,
      );
      body.push(
        `<text x="${num(x + (barW - 2) / 2)}" y="${num(Math.min(y, base) - 4)}" text-anchor="middle" font-size="10">${escapeXml(fmt(v))}</text>`,
      );
    });
  });
  const items: { name: string; color: string; dashed?: boolean }[] = o.series.map((s) => ({
    name: s.name,
    color: s.color,
  }));
  if (o.target) {
    const y = num(ys.map(o.target.value));
    body.push(
      `<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="${PALETTE.target}" stroke-width="2" stroke-dasharray="6 4"/>`,
    );
    items.push({ name: o.target.label, color: PALETTE.target, dashed: true });
  }
  body.push(...legend(items, x1 + 20, top + 10));
  return frame(w, h, o.title, body);
}

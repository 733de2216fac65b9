// The hand-written SVG charts: well-formed, deterministic, scaled as labelled.
import { describe, expect, it } from "vitest";
import { barChart, escapeXml, lineChart, tickLabel } from "../../bench/report/svg.js";

function balanced(svg: string): boolean {
  // every opening tag that is not self-closed has its closing tag
  const open = [...svg.matchAll(/<([a-z]+)[^>]*?(\/?)>/g)]
    .filter((m) => m[2] !== "/")
    .map((m) => m[1]);
  const close = [...svg.matchAll(/<\/([a-z]+)>/g)].map((m) => m[1]);
  return open.sort().join(",") === close.sort().join(",");
}

const line = () =>
  lineChart({
    title: "decode <tok/s> & more",
    xLabel: "VRAM limit",
    yLabel: "tok/s",
    xTicks: [25, 50, 75, 100].map((x) => ({ x, label: `${x}%` })),
    series: [
      {
        name: "spillover",
        color: "#111",
        points: [
          { x: 25, y: 3 },
          { x: 50, y: 5 },
          { x: 100, y: 33 },
        ],
      },
      {
        name: "accelerate",
        color: "#222",
        points: [
          { x: 50, y: 0.45 },
          { x: 75, y: 1.1 },
        ],
      },
      { name: "single", color: "#333", points: [{ x: 100, y: 34 }], markersOnly: true },
    ],
    logY: true,
  });

describe("svg charts", () => {
  it("escapes text", () => {
    expect(escapeXml(`a<b>&"c"`)).toBe("a&lt;b&gt;&amp;&quot;c&quot;");
    expect(line()).toContain("decode &lt;tok/s&gt; &amp; more");
  });

  it("line chart: one polyline per multi-point series, markers for every point, log ticks spanning the data", () => {
    const svg = line();
    expect(svg.startsWith("<svg")).toBe(true);
    expect(balanced(svg)).toBe(true);
    expect(svg.match(/<polyline/g)).toHaveLength(2);
    expect(svg.match(/<circle/g)).toHaveLength(6);
    for (const t of ["0.1", "1", "10", "100"]) expect(svg).toContain(`>${t}</text>`);
    expect(line()).toBe(svg); // deterministic
  });

  it("line chart maps a larger value higher on the page", () => {
    const svg = line();
    const y = (label: string) => {
      const m = svg.match(
        new RegExp(`<circle cx="[^"]+" cy="([^"]+)" r="4" fill="#111"/>\\s*<text[^>]*>${label}<`),
      );
      return Number(m?.[1]);
    };
    expect(y("3")).toBeGreaterThan(y("5"));
    expect(y("5")).toBeGreaterThan(y("33"));
  });

  it("bar chart: skips missing values, draws the target line and splits category labels", () => {
    const svg = barChart({
      title: "speed-up",
      yLabel: "x",
      categories: ["dense-8g 75%", "dense-8g 50%"],
      series: [
        { name: "a", color: "#123456", values: [6.8, null] },
        { name: "b", color: "#654321", values: [2, 3] },
      ],
      target: { value: 5, label: "target 5x" },
      valueFormat: (v) => `${v.toFixed(1)}x`,
    });
    expect(balanced(svg)).toBe(true);
    expect(svg.match(/<rect [^>]*fill="#123456"/g)).toHaveLength(1);
    expect(svg.match(/<rect [^>]*fill="#654321"/g)).toHaveLength(2);
    expect(svg).toContain("6.8x");
    expect(svg).toContain("target 5x");
    expect(svg).toContain('stroke-dasharray="6 4"');
    expect(svg).toMatch(/<tspan[^>]*>dense-8g<\/tspan><tspan[^>]*>75%<\/tspan>/);
  });

  it("tick labels are short", () => {
    expect(tickLabel(0)).toBe("0");
    expect(tickLabel(0.5)).toBe("0.5");
    expect(tickLabel(45500)).toBe("45.5k");
    expect(tickLabel(2_000_000)).toBe("2M");
  });
});

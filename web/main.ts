// The dashboard: live numbers from /api/v1/events (SSE), per-process stacked tier bars, the
// streaming engine's counters per process, and uPlot charts of tier usage and RAM pressure seeded
// from /api/v1/history. Plain DOM, no framework.

import uPlot from "uplot";
import type { HistoryColumns } from "../src/broker/history.js";
import type { BrokerStatus } from "../src/broker/status.js";
import { formatBusy, streamActive, sumStream } from "../src/broker/view.js";
import { formatBytes as bytes } from "../src/util/size.js";

function el(id: string): HTMLElement {
  const e = document.getElementById(id);
  if (!e) throw new Error(`missing #${id}`);
  return e;
}

function text(id: string, s: string) {
  const e = el(id);
  if (e.textContent !== s) e.textContent = s;
}

const MAX_POINTS = 1200;
const tiers: number[][] = [[], [], [], [], [], []]; // t, vram, pinned, staging, leased, budget
const pressure: number[][] = [[], [], [], []]; // t, memAvailable GiB, psi some, psi full

function chartWidth(): number {
  return Math.max(400, Math.min(1400, window.innerWidth - 80));
}

const byteAxis = { values: (_u: uPlot, ticks: number[]) => ticks.map(bytes), size: 70 };
const tierChart = new uPlot(
  {
    width: chartWidth(),
    height: 220,
    series: [
      {},
      {
        label: "VRAM",
        stroke: "#2f7d32",
        fill: "rgba(47,125,50,.15)",
        value: (_u, v) => (v == null ? "-" : bytes(v)),
      },
      {
        label: "pinned RAM",
        stroke: "#e08a00",
        fill: "rgba(224,138,0,.15)",
        value: (_u, v) => (v == null ? "-" : bytes(v)),
      },
      {
        label: "staging arena",
        stroke: "#1565c0",
        value: (_u, v) => (v == null ? "-" : bytes(v)),
      },
      {
        label: "pinned leased",
        stroke: "#555",
        dash: [4, 4],
        value: (_u, v) => (v == null ? "-" : bytes(v)),
      },
      {
        label: "pinned budget",
        stroke: "#999",
        dash: [1, 3],
        value: (_u, v) => (v == null ? "-" : bytes(v)),
      },
    ],
    axes: [{}, byteAxis],
  },
  tiers as uPlot.AlignedData,
  el("chart-tiers"),
);
const pressureChart = new uPlot(
  {
    width: chartWidth(),
    height: 180,
    series: [
      {},
      {
        label: "MemAvailable",
        stroke: "#1565c0",
        scale: "bytes",
        value: (_u, v) => (v == null ? "-" : bytes(v)),
      },
      { label: "PSI some avg10 %", stroke: "#e08a00", scale: "%" },
      { label: "PSI full avg10 %", stroke: "#c62828", scale: "%" },
    ],
    axes: [{}, { ...byteAxis, scale: "bytes" }, { scale: "%", side: 1, grid: { show: false } }],
    scales: { "%": { range: [0, 100] } },
  },
  pressure as uPlot.AlignedData,
  el("chart-pressure"),
);

function push(cols: number[][], values: number[]) {
  for (const [i, v] of values.entries()) cols[i]?.push(v);
  if ((cols[0]?.length ?? 0) > MAX_POINTS) for (const c of cols) c.shift();
}

interface Tiers {
  readonly vram: number;
  readonly pinned: number;
}

function tierBar(t: Tiers, pct: (n: number) => string): HTMLDivElement {
  const bar = document.createElement("div");
  bar.className = "bar";
  bar.title = `VRAM ${bytes(t.vram)}, pinned ${bytes(t.pinned)}`;
  for (const [k, v] of [
    ["vram", t.vram],
    ["pinned", t.pinned],
  ] as const) {
    const span = document.createElement("span");
    span.className = k;
    span.style.width = pct(v);
    bar.append(span);
  }
  return bar;
}

function renderProcesses(s: BrokerStatus) {
  const body = el("processes").querySelector("tbody") as HTMLTableSectionElement;
  if (s.processes.length === 0) {
    body.innerHTML = '<tr><td colspan="9" class="empty">no processes are using spillover</td></tr>';
    return;
  }
  const leases = new Map(s.clients.map((c) => [c.pid, c.pinnedLease]));
  const max = Math.max(1, ...s.processes.map((p) => p.vram + p.pinned));
  const pct = (n: number) => `${((100 * n) / max).toFixed(2)}%`;
  // One row per process (its totals), and under it one row per GPU when it uses several.
  const row = (id: string, cls: string, cells: [string, string][], t: Tiers) => {
    const tr = document.createElement("tr");
    tr.id = id;
    if (cls) tr.className = cls;
    for (const [text, c] of cells) {
      const td = document.createElement("td");
      if (c) td.className = c;
      if (c === "bar") td.append(tierBar(t, pct));
      else td.textContent = text;
      tr.append(td);
    }
    return tr;
  };
  const rows = s.processes.flatMap((p) => {
    const gpuCell =
      p.gpus.length === 0 ? "-" : p.gpus.length === 1 ? String(p.gpus[0]?.gpu) : "all";
    const head = row(
      `proc-${p.pid}`,
      "",
      [
        [String(p.pid), ""],
        [gpuCell, ""],
        ["", "bar"],
        [bytes(p.vram), "num vram-bytes"],
        [bytes(p.pinned), "num pinned-bytes"],
        [bytes(leases.get(p.pid) ?? p.pinnedLease), "num"],
        [String(p.ooms), "num"],
        [p.mode + (p.exited ? " (exited)" : ""), ""],
        [p.command, "cmd"],
      ],
      p,
    );
    if (p.gpus.length < 2) return [head];
    return [
      head,
      ...p.gpus.map((g) => {
        const t = { vram: g.vram + g.passthrough, pinned: g.pinned };
        return row(
          `proc-${p.pid}-gpu-${g.gpu}`,
          "gpu-row",
          [
            ["", ""],
            [String(g.gpu), ""],
            ["", "bar"],
            [bytes(t.vram), "num vram-bytes"],
            [bytes(t.pinned), "num pinned-bytes"],
            ["", "num"],
            ["", "num"],
            ["", ""],
            ["", "cmd"],
          ],
          t,
        );
      }),
    ];
  });
  body.replaceChildren(...rows);
}

/** The streaming engine per process: what it staged into VRAM ahead of the kernels, and how. */
function renderStreaming(s: BrokerStatus) {
  const body = el("streaming").querySelector("tbody") as HTMLTableSectionElement;
  const active = s.processes.filter((p) => streamActive(p.stream));
  text("total-staged", bytes(sumStream(active).stagedBytes));
  if (active.length === 0) {
    body.innerHTML =
      '<tr><td colspan="10" class="empty">nothing staged (streaming off, or no kernel has read host-resident memory)</td></tr>';
    return;
  }
  body.replaceChildren(
    ...active.map((p) => {
      const st = p.stream;
      const tr = document.createElement("tr");
      tr.id = `stream-${p.pid}`;
      const cells: [string, string][] = [
        [String(p.pid), ""],
        [bytes(st.stagedBytes), "num staged"],
        [String(st.stagedRanges), "num"],
        [String(st.stageHits), "num hits"],
        [String(st.lateStages), "num late"],
        [String(st.inplaceLaunches), "num"],
        [formatBusy(st.copyBusyNs), "num copy-busy"],
        [String(st.writebackPages), "num"],
        [String(st.fallbacks), "num fallbacks"],
        [bytes(st.budgetBytes), "num budget"],
      ];
      for (const [t, cls] of cells) {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        td.textContent = t;
        tr.append(td);
      }
      return tr;
    }),
  );
}

/** Per-user leases and quotas; the section shows once a user has a client or a quota refusal. */
function renderUsers(s: BrokerStatus) {
  const users = s.users ?? [];
  (el("users-section") as HTMLElement).hidden = users.length === 0;
  const b = s.budgets;
  text(
    "budget-note",
    b.follows
      ? `budget follows the host (${b.limitedBy === "cgroup" ? "cgroup limit" : "MemAvailable"})`
      : "fixed budget",
  );
  const body = el("users").querySelector("tbody") as HTMLTableSectionElement;
  body.replaceChildren(
    ...users.map((u) => {
      const tr = document.createElement("tr");
      tr.id = `user-${u.uid}`;
      const cells: [string, string][] = [
        [u.user ?? "?", ""],
        [String(u.uid), "num"],
        [String(u.clients), "num"],
        [bytes(u.pinnedLeased), "num leased"],
        [u.quota === null ? "none" : bytes(u.quota), "num quota"],
        [u.quotaSource ?? "", ""],
        [String(u.quotaDenials), "num"],
      ];
      for (const [t, cls] of cells) {
        const td = document.createElement("td");
        if (cls) td.className = cls;
        td.textContent = t;
        tr.append(td);
      }
      return tr;
    }),
  );
}

function renderEvents(s: BrokerStatus) {
  const box = el("events");
  if (s.events.length === 0) return;
  box.classList.remove("empty");
  box.textContent = [...s.events]
    .reverse()
    .slice(0, 100)
    .map(
      (e) =>
        `${new Date(e.t).toLocaleTimeString()}  pid ${e.pid}  ${e.kind.padEnd(7)} ${bytes(e.bytes)}${e.detail ? `  (${e.detail})` : ""}`,
    )
    .join("\n");
}

function render(s: BrokerStatus) {
  const level = el("pressure");
  text("pressure", s.pressure.level);
  level.className = `value level-${s.pressure.level}`;
  level.title = s.pressure.why;
  text("mem-available", bytes(s.pressure.memAvailable));
  text("pinned-leased", bytes(s.budgets.pinnedLeased));
  text("pinned-budget", bytes(s.budgets.pinnedBudget));
  const vram = s.processes.reduce((a, p) => a + p.vram, 0);
  const pinned = s.processes.reduce((a, p) => a + p.pinned, 0);
  const staging = sumStream(s.processes).budgetBytes;
  text("total-vram", bytes(vram));
  text("total-pinned", bytes(pinned));
  text("process-count", String(s.processes.length));
  renderProcesses(s);
  renderStreaming(s);
  renderUsers(s);
  renderEvents(s);
  const t = (s.broker?.nowMs ?? Date.now()) / 1000;
  push(tiers, [t, vram, pinned, staging, s.budgets.pinnedLeased, s.budgets.pinnedBudget]);
  push(pressure, [t, s.pressure.memAvailable, s.pressure.psiSome ?? 0, s.pressure.psiFull ?? 0]);
  tierChart.setData(tiers as uPlot.AlignedData);
  pressureChart.setData(pressure as uPlot.AlignedData);
  document.body.dataset.updates = String(Number(document.body.dataset.updates ?? "0") + 1);
}

async function start() {
  try {
    const h = (await (await fetch("/api/v1/history")).json()) as HistoryColumns;
    for (let i = 0; i < h.t.length; i++) {
      push(tiers, [
        h.t[i] ?? 0,
        h.vram[i] ?? 0,
        h.pinned[i] ?? 0,
        h.stagingBudget[i] ?? 0,
        h.pinnedLeased[i] ?? 0,
        h.pinnedBudget[i] ?? 0,
      ]);
      push(pressure, [h.t[i] ?? 0, h.memAvailable[i] ?? 0, h.psiSome[i] ?? 0, h.psiFull[i] ?? 0]);
    }
  } catch {
    // no history yet: the live stream fills the charts
  }
  const es = new EventSource("/api/v1/events");
  es.addEventListener("status", (ev) => {
    text("conn", "live");
    el("conn").className = "value";
    render(JSON.parse((ev as MessageEvent<string>).data) as BrokerStatus);
  });
  es.onerror = () => {
    text("conn", "reconnecting");
    el("conn").className = "value down";
  };
  window.addEventListener("resize", () => {
    tierChart.setSize({ width: chartWidth(), height: 220 });
    pressureChart.setSize({ width: chartWidth(), height: 180 });
  });
}

void start();

// The Prometheus registry filled from a status snapshot: the fixture record's streaming counters
// per process, and no swap tier (tier 2 is not implemented).

import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createMetrics } from "../../src/broker/metrics.js";
import type { BrokerStatus } from "../../src/broker/status.js";
import { processView } from "../../src/broker/view.js";
import { decodeStats } from "../../src/protocol/stats.js";
import { GiB, ROOT } from "./helpers.js";

function snapshot(): BrokerStatus {
  const d = decodeStats(readFileSync(join(ROOT, "test/fixtures/protocol/stats.bin")));
  if (!d.ok) throw new Error(d.reason);
  return {
    version: 1,
    source: "broker",
    broker: { pid: 1, socket: "/s", system: false, startedMs: 0, nowMs: 0 },
    budgets: { pinnedBudget: 0, pinnedLeased: 0, pinnedFree: 0, growStep: 0, vramTotal: {} },
    pressure: {
      level: "ok",
      levelCode: 0,
      why: "",
      memTotal: 0,
      memAvailable: 0,
      swapTotal: 0,
      swapFree: 0,
      psiSome: null,
      psiFull: null,
    },
    clients: [],
    processes: [processView(d.record)],
    events: [],
    eventCounts: {},
  };
}

describe("broker metrics", () => {
  it("export the streaming engine's counters per process, and tiers without swap", async () => {
    const m = await createMetrics(snapshot).metrics();
    expect(m).toContain("# TYPE spillover_stream_staged_bytes_total counter");
    expect(m).toContain(`spillover_stream_staged_bytes_total{pid="4242"} ${48 * GiB}`);
    expect(m).toContain('spillover_stream_staged_ranges_total{pid="4242"} 640');
    expect(m).toContain('spillover_stream_stage_hits_total{pid="4242"} 12800');
    expect(m).toContain('spillover_stream_late_stages_total{pid="4242"} 7');
    expect(m).toContain('spillover_stream_writeback_pages_total{pid="4242"} 96');
    expect(m).toContain('spillover_stream_inplace_launches_total{pid="4242"} 320');
    expect(m).toContain('spillover_stream_copy_busy_seconds_total{pid="4242"} 2.75');
    expect(m).toContain('spillover_stream_fallbacks_total{pid="4242"} 2');
    expect(m).toContain("# TYPE spillover_stream_budget_bytes gauge");
    expect(m).toContain(`spillover_stream_budget_bytes{pid="4242"} ${10 * GiB}`);
    expect(m).toContain('spillover_tier_bytes{pid="4242",gpu="0",tier="pinned"}');
    expect(m).not.toContain('tier="swap"');
  });
});

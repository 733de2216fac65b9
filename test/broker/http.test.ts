// The broker's HTTP side: Prometheus text, the JSON status and history, the SSE stream, the
// dashboard's files with the right content types, and the same API over the Unix socket.

import { afterEach, describe, expect, it } from "vitest";
import { apiGet } from "../../src/broker/client.js";
import type { BrokerStatus } from "../../src/broker/status.js";
import { frame, MsgType } from "../../src/protocol/frame.js";
import { GiB, RawClient, startTestBroker, type TestBroker, waitFor } from "./helpers.js";

let broker: TestBroker | undefined;
afterEach(async () => {
  await broker?.close();
  broker = undefined;
});

describe("broker HTTP", () => {
  it("serves metrics, status, history and the dashboard", async () => {
    broker = await startTestBroker({ pinned_budget: 8 * GiB, initial_grant: GiB });
    const b = broker;
    const c = await RawClient.connect(b.socket);
    c.send(frame(MsgType.HELLO, 1n, BigInt(process.pid), 1n, BigInt(2 * GiB)));
    await c.read();
    const m = await b.get("/metrics");
    expect(m.status).toBe(200);
    expect(m.type).toContain("text/plain");
    expect(m.body).toContain("# TYPE spillover_pinned_leased_bytes gauge");
    expect(m.body).toContain(`spillover_pinned_budget_bytes ${8 * GiB}`);
    expect(m.body).toContain(`spillover_client_pinned_lease_bytes{pid="${process.pid}"} ${GiB}`);
    expect(m.body).toContain('spillover_lease_events_total{kind="hello"} 1');
    const s = JSON.parse((await b.get("/api/v1/status")).body) as BrokerStatus;
    expect(s).toMatchObject({
      version: 1,
      source: "broker",
      budgets: { pinnedBudget: 8 * GiB, pinnedLeased: GiB },
      pressure: { level: "ok" },
    });
    expect(s.clients).toEqual([expect.objectContaining({ pid: process.pid, pinnedLease: GiB })]);
    await waitFor(
      async () => JSON.parse((await b.get("/api/v1/history")).body) as { t: number[] },
      (h) => h.t.length >= 2,
    );
    const h = JSON.parse((await b.get("/api/v1/history")).body) as Record<string, number[]>;
    expect(Object.keys(h).sort()).toEqual([
      "memAvailable",
      "pinned",
      "pinnedBudget",
      "pinnedLeased",
      "pressure",
      "psiFull",
      "psiSome",
      "stagingBudget",
      "t",
      "vram",
    ]);
    expect(h.pinnedLeased?.at(-1)).toBe(GiB);
    expect(h.pinnedBudget?.at(-1)).toBe(8 * GiB);
    const page = await b.get("/");
    expect(page.type).toContain("text/html");
    expect(page.body).toContain('<script type="module" src="/app.js">');
    const js = await b.get("/app.js");
    expect(js.type).toContain("text/javascript"); // Chromium refuses module scripts otherwise
    expect(js.body.length).toBeGreaterThan(10_000);
    expect((await b.get("/app.css")).type).toContain("text/css");
    c.close();
  });

  it("streams status snapshots as Server-Sent Events", async () => {
    broker = await startTestBroker({ pinned_budget: 8 * GiB });
    const ctl = new AbortController();
    const r = await fetch(`http://127.0.0.1:${broker.handle.httpPort}/api/v1/events`, {
      signal: ctl.signal,
    });
    expect(r.headers.get("content-type")).toContain("text/event-stream");
    const reader = r.body?.getReader();
    let text = "";
    while (reader && (text.match(/\n\n/g) ?? []).length < 2) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString();
    }
    ctl.abort();
    const events = text.split("\n\n").filter((e) => e.includes("event: status"));
    expect(events.length).toBeGreaterThanOrEqual(2);
    const data =
      events[0]
        ?.split("\n")
        .find((l) => l.startsWith("data: "))
        ?.slice(6) ?? "";
    expect((JSON.parse(data) as BrokerStatus).budgets.pinnedBudget).toBe(8 * GiB);
  });

  it("serves the same API on a Unix socket beside the broker socket", async () => {
    broker = await startTestBroker({ pinned_budget: 8 * GiB }, { http: false });
    expect(broker.handle.httpPort).toBeUndefined();
    const r = await apiGet(broker.socket, "/api/v1/status");
    expect(r.status).toBe(200);
    expect((JSON.parse(r.body) as BrokerStatus).broker?.socket).toBe(broker.socket);
  });

  it("refuses to start over a live broker, and replaces a stale socket", async () => {
    broker = await startTestBroker({}, { http: false });
    const { startBroker } = await import("../../src/broker/daemon.js");
    const { memoryLogger } = await import("../../src/broker/log.js");
    const { BROKER_DEFAULTS } = await import("../../src/config/schema.js");
    await expect(
      startBroker({
        config: { ...BROKER_DEFAULTS, http_port: 0 },
        socketPath: broker.socket,
        statsDir: broker.statsDir,
        log: memoryLogger(),
        http: false,
        host: broker.host,
      }),
    ).rejects.toThrow(/a broker already answers at .*; stop it first or use --socket/);
    // the refused second broker leaves the first one's sockets alone
    const again = await RawClient.connect(broker.socket);
    again.close();
    const { apiGet } = await import("../../src/broker/client.js");
    const { apiSocketPath } = await import("../../src/broker/paths.js");
    expect((await apiGet(apiSocketPath(broker.socket), "/api/v1/status")).status).toBe(200);
  });
});

// The broker's HTTP side (Hono): /metrics (Prometheus), /api/v1/status, /api/v1/history,
// /api/v1/events (Server-Sent Events, one status snapshot per telemetry tick) and the dashboard.

import { Hono } from "hono";
import { streamSSE } from "hono/streaming";
import type { Registry } from "prom-client";
import { loadDashboardAssets } from "./assets.js";
import type { HistoryColumns } from "./history.js";
import type { BrokerStatus } from "./status.js";

export interface HttpDeps {
  readonly status: () => BrokerStatus;
  readonly history: (sinceT: number) => HistoryColumns;
  readonly registry: Registry;
  /** Subscribes to telemetry ticks; returns the unsubscribe function. */
  readonly subscribe: (fn: () => void) => () => void;
}

export function createApp(d: HttpDeps): Hono {
  const app = new Hono();
  app.get("/metrics", async (c) => {
    const body = await d.registry.metrics();
    return c.body(body, 200, { "Content-Type": d.registry.contentType });
  });
  app.get("/api/v1/status", (c) => c.json(d.status()));
  app.get("/api/v1/history", (c) => {
    const since = Number(c.req.query("since") ?? "0");
    return c.json(d.history(Number.isFinite(since) ? since : 0));
  });
  app.get("/api/v1/events", (c) =>
    streamSSE(c, async (stream) => {
      let wake: (() => void) | undefined;
      let pending = true;
      const unsubscribe = d.subscribe(() => {
        pending = true;
        wake?.();
      });
      stream.onAbort(() => {
        unsubscribe();
        wake?.();
      });
      let id = 0;
      while (!stream.aborted) {
        if (pending) {
          pending = false;
          await stream.writeSSE({
            event: "status",
            data: JSON.stringify(d.status()),
            id: String(id++),
          });
        }
        await new Promise<void>((r) => {
          wake = r;
          setTimeout(r, 15_000).unref(); // keep-alive comment period
        });
        wake = undefined;
        if (!pending && !stream.aborted) await stream.write(": keep-alive\n\n");
      }
      unsubscribe();
    }),
  );
  app.get("/", async (c) => {
    const a = await loadDashboardAssets();
    if (!a) return c.text("dashboard assets not found: run npm run build", 500);
    return c.html(a.html);
  });
  app.get("/app.js", async (c) => {
    const a = await loadDashboardAssets();
    if (!a) return c.notFound();
    return c.body(a.js, 200, { "Content-Type": "text/javascript; charset=utf-8" });
  });
  app.get("/app.css", async (c) => {
    const a = await loadDashboardAssets();
    if (!a) return c.notFound();
    return c.body(a.css, 200, { "Content-Type": "text/css; charset=utf-8" });
  });
  return app;
}

// Wires the broker together: the lease book, the socket server, the pressure watchdog, telemetry
// from stats records and the HTTP server. `spillover broker` calls startBroker and waits for a
// signal; tests call it directly with a temp socket, fake /proc files and an ephemeral port.

import { readFileSync } from "node:fs";
import { chmod, chown, unlink } from "node:fs/promises";
import net from "node:net";
import { createAdaptorServer, type ServerType } from "@hono/node-server";
import type { BrokerConfig } from "../config/schema.js";
import { type GpuInfo, queryGpus } from "../gpu/nvidia-smi.js";
import { PressureLevel } from "../protocol/frame.js";
import { SpilloverError } from "../util/errors.js";
import { History, Ring } from "./history.js";
import { createApp } from "./http.js";
import { LeaseBook } from "./leases.js";
import type { Logger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { apiSocketPath, prepareSocketDir } from "./paths.js";
import {
  classify,
  DEFAULT_PROC,
  type MemorySample,
  type ProcPaths,
  sampleMemory,
} from "./pressure.js";
import { scanProcesses } from "./procs.js";
import { BrokerServer, type LeaseEvent } from "./server.js";
import { type BrokerStatus, type ClientView, PRESSURE_NAMES } from "./status.js";
import type { ProcessView } from "./view.js";

export interface BrokerOptions {
  readonly config: BrokerConfig;
  readonly socketPath: string;
  /** Host reserve for the default budget: MemAvailable at start minus this. */
  readonly hostReserve?: number | undefined;
  readonly statsDir: string;
  readonly log: Logger;
  readonly uid?: number;
  readonly proc?: ProcPaths;
  readonly procRoot?: string;
  /** false: no HTTP server at all. */
  readonly http?: boolean;
  /** Environment for nvidia-smi (NVIDIA_SMI overrides the binary). */
  readonly env?: NodeJS.ProcessEnv;
}

export interface BrokerHandle {
  readonly socketPath: string;
  readonly httpPort: number | undefined;
  readonly status: () => BrokerStatus;
  readonly book: LeaseBook;
  close(): Promise<void>;
}

/** Refuses to start over a live broker; removes a stale socket file left by a crashed one. */
async function claimSocket(path: string): Promise<void> {
  const alive = await new Promise<boolean>((resolve) => {
    const s = net.connect(path);
    s.once("connect", () => {
      s.destroy();
      resolve(true);
    });
    s.once("error", () => resolve(false));
  });
  if (alive)
    throw new SpilloverError(
      "ERR_BROKER",
      `a broker already answers at ${path}; stop it first or use --socket`,
    );
  await unlink(path).catch(() => undefined);
}

function groupId(name: string): number | undefined {
  try {
    for (const line of readFileSync("/etc/group", "utf8").split("\n")) {
      const f = line.split(":");
      if (f[0] === name && f[2] !== undefined) return Number(f[2]);
    }
  } catch {
    // no /etc/group: fall through
  }
  return /^\d+$/.test(name) ? Number(name) : undefined;
}

export function defaultHostReserve(memTotal: number): number {
  return Math.max(4 * 2 ** 30, Math.floor(memTotal / 10));
}

export async function startBroker(o: BrokerOptions): Promise<BrokerHandle> {
  const cfg = o.config;
  const uid = o.uid ?? process.getuid?.() ?? 0;
  const proc = o.proc ?? DEFAULT_PROC;
  const started = Date.now();
  const first = await sampleMemory(proc);
  if (!first)
    throw new SpilloverError(
      "ERR_BROKER",
      `cannot read ${proc.meminfo}: the broker needs it to size the pinned budget`,
    );
  const reserve = o.hostReserve ?? defaultHostReserve(first.mem.memTotal);
  const budget = cfg.pinned_budget ?? Math.max(0, first.mem.memAvailable - reserve);
  const book = new LeaseBook({
    pinnedBudget: budget,
    growStep: cfg.grow_step,
    initialGrant: cfg.initial_grant,
    clientPinnedMax: cfg.client_pinned_max,
  });
  const events = new Ring<LeaseEvent>(200);
  const eventCounts: Record<string, number> = {};
  const server = new BrokerServer({
    book,
    log: o.log,
    uid,
    system: cfg.system,
    ...(o.procRoot !== undefined ? { procRoot: o.procRoot } : {}),
    onEvent: (e) => {
      events.push(e);
      eventCounts[e.kind] = (eventCounts[e.kind] ?? 0) + 1;
    },
  });

  await prepareSocketDir(o.socketPath, uid, cfg.system);
  await claimSocket(o.socketPath);
  await server.listen(o.socketPath);
  if (cfg.system) {
    await chmod(o.socketPath, 0o660);
    if (cfg.group !== undefined) {
      const gid = groupId(cfg.group);
      if (gid === undefined)
        throw new SpilloverError(
          "ERR_CONFIG",
          `broker.group = ${JSON.stringify(cfg.group)}: no such group in /etc/group`,
        );
      await chown(o.socketPath, -1, gid);
    }
  } else {
    await chmod(o.socketPath, 0o600);
  }

  let sample: MemorySample = first;
  let why = "ok";
  let processes: ProcessView[] = [];
  const history = new History(Math.ceil((cfg.history_minutes * 60_000) / cfg.telemetry_ms));
  const listeners = new Set<() => void>();
  const thresholds = {
    warnAvailable: cfg.warn_available,
    criticalAvailable: cfg.critical_available,
    psiWarn: cfg.psi_warn,
    psiCritical: cfg.psi_critical,
  };

  const applyPressure = (s: MemorySample) => {
    sample = s;
    const c = classify(s, thresholds);
    why = c.why;
    if (book.setPressure(c.level)) {
      o.log.log(c.level === PressureLevel.OK ? "info" : "warn", "pressure level changed", {
        level: PRESSURE_NAMES[c.level],
        why: c.why,
      });
      events.push({
        t: Date.now(),
        pid: 0,
        kind: "deny",
        bytes: 0,
        detail: `pressure ${PRESSURE_NAMES[c.level]}: ${c.why}`,
      });
      server.pushLeaseUpdates();
    }
  };
  applyPressure(first);

  let sampling = false;
  const pressureTimer = setInterval(() => {
    if (sampling) return;
    sampling = true;
    void sampleMemory(proc)
      .then((s) => {
        if (s) applyPressure(s);
      })
      .finally(() => {
        sampling = false;
      });
  }, cfg.sample_ms);

  let scanning = false;
  const tick = async () => {
    if (scanning) return;
    scanning = true;
    try {
      const r = await scanProcesses({
        dir: o.statsDir,
        uid: cfg.system ? undefined : uid,
        ...(o.procRoot !== undefined ? { procRoot: o.procRoot } : {}),
      });
      processes = r.processes;
      history.push({
        t: Date.now() / 1000,
        vram: processes.reduce((s, p) => s + p.vram, 0),
        pinned: processes.reduce((s, p) => s + p.pinned, 0),
        swap: processes.reduce((s, p) => s + p.swap, 0),
        pinnedLeased: book.leased,
        memAvailable: sample.mem.memAvailable,
        psiSome: sample.psi?.someAvg10 ?? 0,
        psiFull: sample.psi?.fullAvg10 ?? 0,
        pressure: book.pressure,
      });
      for (const fn of listeners) fn();
    } catch (e) {
      o.log.log("warn", "telemetry scan failed", { error: String(e) });
    } finally {
      scanning = false;
    }
  };
  const telemetryTimer = setInterval(() => void tick(), cfg.telemetry_ms);
  // GPU facts for the API and dashboard; a machine without nvidia-smi simply has none.
  let gpus: readonly GpuInfo[] = [];
  const refreshGpus = async () => {
    const q = await queryGpus(o.env ?? process.env);
    gpus = q.ok ? q.gpus : [];
  };
  void refreshGpus();
  const gpuTimer = setInterval(() => void refreshGpus(), 10_000);
  gpuTimer.unref();
  void tick();

  const status = (): BrokerStatus => {
    const clients: ClientView[] = book.list().map((c) => ({
      pid: c.pid,
      gpus: c.gpus,
      pinnedLease: c.pinned,
      pinnedPeak: c.pinnedPeak,
      vram: Object.fromEntries([...c.vram].map(([k, v]) => [String(k), v])),
      grants: c.grants,
      denials: c.denials,
      sinceMs: c.since,
    }));
    return {
      version: 1,
      source: "broker",
      broker: {
        pid: process.pid,
        socket: o.socketPath,
        system: cfg.system,
        startedMs: started,
        nowMs: Date.now(),
      },
      budgets: {
        pinnedBudget: book.policy.pinnedBudget,
        pinnedLeased: book.leased,
        pinnedFree: book.free,
        growStep: book.policy.growStep,
        vramTotal: Object.fromEntries([...book.vramTotals()].map(([k, v]) => [String(k), v])),
      },
      pressure: {
        level: PRESSURE_NAMES[book.pressure],
        levelCode: book.pressure,
        why,
        memTotal: sample.mem.memTotal,
        memAvailable: sample.mem.memAvailable,
        swapTotal: sample.mem.swapTotal,
        swapFree: sample.mem.swapFree,
        psiSome: sample.psi?.someAvg10 ?? null,
        psiFull: sample.psi?.fullAvg10 ?? null,
      },
      gpus,
      clients,
      processes,
      events: events.list(),
      eventCounts: { ...eventCounts },
    };
  };

  let http: ServerType | undefined;
  let httpPort: number | undefined;
  const app = createApp({
    status,
    history: (since) => history.columns(since),
    registry: createMetrics(status),
    subscribe: (fn) => {
      listeners.add(fn);
      return () => listeners.delete(fn);
    },
  });
  // The same API on a Unix socket beside the broker socket: `spillover status` finds it without
  // knowing the TCP port, and its permissions are the directory's.
  const apiSocket = apiSocketPath(o.socketPath);
  await unlink(apiSocket).catch(() => undefined);
  const apiServer = createAdaptorServer({ fetch: app.fetch });
  await new Promise<void>((resolve, reject) => {
    apiServer.once("error", reject);
    apiServer.listen(apiSocket, () => resolve());
  });
  await chmod(apiSocket, cfg.system ? 0o660 : 0o600);
  if (o.http !== false) {
    http = createAdaptorServer({ fetch: app.fetch });
    const srv = http;
    httpPort = await new Promise<number>((resolve, reject) => {
      srv.once("error", (e: NodeJS.ErrnoException) =>
        reject(
          new SpilloverError(
            "ERR_BROKER",
            `cannot listen on ${cfg.http_host}:${cfg.http_port} (${e.code ?? e.message}); use --http-port`,
          ),
        ),
      );
      srv.listen(cfg.http_port, cfg.http_host, () => {
        const a = srv.address();
        resolve(typeof a === "object" && a ? a.port : cfg.http_port);
      });
    }).catch(async (e: unknown) => {
      clearInterval(pressureTimer);
      clearInterval(telemetryTimer);
      clearInterval(gpuTimer);
      await server.close();
      await new Promise<void>((r) => apiServer.close(() => r()));
      await unlink(o.socketPath).catch(() => undefined);
      await unlink(apiSocket).catch(() => undefined);
      throw e;
    });
  }
  o.log.log("info", "broker started", {
    socket: o.socketPath,
    http: httpPort !== undefined ? `http://${cfg.http_host}:${httpPort}/` : null,
    pinned_budget: budget,
    grow_step: cfg.grow_step,
    mem_available: first.mem.memAvailable,
    system: cfg.system,
  });

  return {
    socketPath: o.socketPath,
    httpPort,
    status,
    book,
    async close() {
      clearInterval(pressureTimer);
      clearInterval(telemetryTimer);
      clearInterval(gpuTimer);
      listeners.clear();
      await server.close();
      (apiServer as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
      await new Promise<void>((r) => apiServer.close(() => r()));
      await unlink(apiSocket).catch(() => undefined);
      if (http) {
        const h = http;
        (h as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
        await new Promise<void>((r) => h.close(() => r()));
      }
      await unlink(o.socketPath).catch(() => undefined);
      o.log.log("info", "broker stopped", {});
    },
  };
}

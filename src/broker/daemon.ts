// Wires the broker together: the lease book, the socket server (peer credentials from the kernel),
// the watchdog (pressure level and a budget that follows the host), telemetry and the HTTP API.
// `spillover broker` calls startBroker and waits for a signal; tests call it directly with a temp
// socket, a simulated /proc and /sys/fs/cgroup tree and an ephemeral port.

import { readFileSync } from "node:fs";
import { chmod, chown, unlink } from "node:fs/promises";
import net from "node:net";
import { createAdaptorServer, type ServerType } from "@hono/node-server";
import type { BrokerConfig } from "../config/schema.js";
import { SpilloverError } from "../util/errors.js";
import { budgetTarget } from "./budget.js";
import { Ring } from "./history.js";
import { createApp } from "./http.js";
import { LeaseBook } from "./leases.js";
import type { Logger } from "./log.js";
import { createMetrics } from "./metrics.js";
import { apiSocketPath, prepareSocketDir } from "./paths.js";
import { kernelPeerCred, type PeerCredReader } from "./peercred.js";
import { DEFAULT_HOST, type HostPaths, type PressureThresholds, sampleMemory } from "./pressure.js";
import { buildQuotas, type Group, parseGroups, parsePasswd } from "./quota.js";
import { BrokerServer, type LeaseEvent } from "./server.js";
import { type BrokerStatus, projectStatus } from "./status.js";
import { Telemetry } from "./telemetry.js";
import { Watchdog } from "./watchdog.js";

export interface BrokerOptions {
  readonly config: BrokerConfig;
  readonly socketPath: string;
  /** Host reserve: the budget is the room the host has minus this (default max(4 GiB, 10%)). */
  readonly hostReserve?: number | undefined;
  readonly statsDir: string;
  readonly log: Logger;
  readonly uid?: number;
  /** /proc and /sys/fs/cgroup, or a simulated tree (tests). */
  readonly host?: HostPaths;
  /** Where client pids are looked up (default host.procRoot). */
  readonly procRoot?: string;
  /** Who is on the other end of a connection (default: the kernel, via native/build/peercred.node). */
  readonly peerCred?: PeerCredReader;
  /** /etc/passwd and /etc/group text (quota names, user names in status); read when absent. */
  readonly accounts?: { readonly passwd: string; readonly group: string };
  /** false: no HTTP server at all. */
  readonly http?: boolean;
  /** Environment for nvidia-smi (NVIDIA_SMI overrides the binary) and the addon lookup. */
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

function readAccounts(): { passwd: string; group: string } {
  const read = (p: string) => {
    try {
      return readFileSync(p, "utf8");
    } catch {
      return "";
    }
  };
  return { passwd: read("/etc/passwd"), group: read("/etc/group") };
}

/** The account lists and the quota table; a quota naming no account stops the broker. */
function loadAccounts(cfg: BrokerConfig, text: { passwd: string; group: string }) {
  const users = parsePasswd(text.passwd);
  const groups = parseGroups(text.group);
  const { quotas, problems } = buildQuotas(cfg.quota, users, groups);
  if (problems.length > 0) throw new SpilloverError("ERR_CONFIG", problems.join("\nspillover: "));
  return {
    groups,
    quotas: cfg.quota ? quotas : undefined,
    userName: (uid: number) => users.find((a) => a.uid === uid)?.name,
  };
}

/** The last 200 lease events and a count per kind since start (status, metrics, dashboard). */
function eventLog() {
  const ring = new Ring<LeaseEvent>(200);
  const counts: Record<string, number> = {};
  return {
    ring,
    counts,
    push(e: LeaseEvent) {
      ring.push(e);
      counts[e.kind] = (counts[e.kind] ?? 0) + 1;
    },
  };
}

function thresholds(cfg: BrokerConfig): PressureThresholds {
  return {
    warnAvailable: cfg.warn_available,
    criticalAvailable: cfg.critical_available,
    psiWarn: cfg.psi_warn,
    psiCritical: cfg.psi_critical,
  };
}

function groupId(name: string, groups: readonly Group[]): number | undefined {
  const g = groups.find((x) => x.name === name);
  return g?.gid ?? (/^\d+$/.test(name) ? Number(name) : undefined);
}

/** Listens on the broker socket with its permissions: 0600, or 0660 and broker.group (system). */
async function listenBrokerSocket(
  server: BrokerServer,
  path: string,
  uid: number,
  cfg: BrokerConfig,
  groups: readonly Group[],
): Promise<void> {
  await prepareSocketDir(path, uid, cfg.system);
  await claimSocket(path);
  await server.listen(path);
  if (!cfg.system) return chmod(path, 0o600);
  await chmod(path, 0o660);
  if (cfg.group === undefined) return;
  const gid = groupId(cfg.group, groups);
  if (gid === undefined)
    throw new SpilloverError(
      "ERR_CONFIG",
      `broker.group = ${JSON.stringify(cfg.group)}: no such group in /etc/group`,
    );
  await chown(path, -1, gid);
}

/** The HTTP API and dashboard on broker.http_host:http_port; resolves to the port bound. */
function listenTcp(srv: ServerType, cfg: BrokerConfig): Promise<number> {
  return new Promise<number>((resolve, reject) => {
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
  });
}

function listen(srv: ServerType, path: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    srv.once("error", reject);
    srv.listen(path, () => resolve());
  });
}

function closeHttp(srv: ServerType): Promise<void> {
  (srv as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
  return new Promise<void>((r) => srv.close(() => r()));
}

export async function startBroker(o: BrokerOptions): Promise<BrokerHandle> {
  const cfg = o.config;
  const uid = o.uid ?? process.getuid?.() ?? 0;
  const host = o.host ?? DEFAULT_HOST;
  const procRoot = o.procRoot ?? host.procRoot;
  const env = o.env ?? process.env;
  const started = Date.now();
  const peerCred = o.peerCred ?? kernelPeerCred(env);
  const { groups, quotas, userName } = loadAccounts(cfg, o.accounts ?? readAccounts());
  const first = await sampleMemory(host);
  if (!first)
    throw new SpilloverError(
      "ERR_BROKER",
      `cannot read ${host.procRoot}/meminfo: the broker needs it to size the pinned budget`,
    );
  const follows = cfg.pinned_budget === undefined;
  const book = new LeaseBook({
    pinnedBudget: cfg.pinned_budget ?? budgetTarget(first, 0, o.hostReserve),
    growStep: cfg.grow_step,
    initialGrant: cfg.initial_grant,
    clientPinnedMax: cfg.client_pinned_max,
    quotas,
  });
  const events = eventLog();
  const onEvent = (e: LeaseEvent) => events.push(e);
  const server = new BrokerServer({
    book,
    log: o.log,
    uid,
    system: cfg.system,
    peerCred,
    procRoot,
    onEvent,
  });
  const watchdog = new Watchdog(
    {
      book,
      host,
      thresholds: thresholds(cfg),
      sampleMs: cfg.sample_ms,
      follow: follows ? { reserve: o.hostReserve } : false,
      log: o.log,
      onChange: () => server.pushLeaseUpdates(),
      onEvent,
    },
    first,
  );
  const telemetry = new Telemetry({
    statsDir: o.statsDir,
    uid: cfg.system ? undefined : uid,
    procRoot,
    telemetryMs: cfg.telemetry_ms,
    historyMinutes: cfg.history_minutes,
    book,
    sample: () => watchdog.sample,
    log: o.log,
    env,
  });
  const status = (): BrokerStatus =>
    projectStatus({
      broker: {
        pid: process.pid,
        socket: o.socketPath,
        system: cfg.system,
        startedMs: started,
        nowMs: Date.now(),
      },
      book,
      sample: watchdog.sample,
      why: watchdog.why,
      follows,
      target: follows ? watchdog.target : book.budget,
      hostReserve: watchdog.reserve,
      gpus: telemetry.gpus,
      processes: telemetry.processes,
      events: events.ring.list(),
      eventCounts: events.counts,
      userName,
    });

  const app = createApp({
    status,
    history: (since) => telemetry.history.columns(since),
    registry: createMetrics(status),
    subscribe: (fn) => telemetry.subscribe(fn),
  });
  // The same API on a Unix socket beside the broker socket: `spillover status` finds it without
  // knowing the TCP port, and its permissions are the directory's.
  const apiSocket = apiSocketPath(o.socketPath);
  const apiServer = createAdaptorServer({ fetch: app.fetch });
  let http: ServerType | undefined;

  /**
   * Stops whatever has started and removes the socket files this broker listens on (never those
   * of another broker that answered first); the error path of startBroker uses it too.
   */
  const close = async () => {
    watchdog.stop();
    telemetry.stop();
    const own = { socket: server.listening, api: apiServer.listening };
    if (own.socket) await server.close();
    if (own.api) await closeHttp(apiServer);
    if (http?.listening) await closeHttp(http);
    if (own.api) await unlink(apiSocket).catch(() => undefined);
    if (own.socket) await unlink(o.socketPath).catch(() => undefined);
  };

  let httpPort: number | undefined;
  try {
    await listenBrokerSocket(server, o.socketPath, uid, cfg, groups);
    watchdog.start();
    telemetry.start();
    await unlink(apiSocket).catch(() => undefined);
    await listen(apiServer, apiSocket);
    await chmod(apiSocket, cfg.system ? 0o660 : 0o600);
    if (o.http !== false) {
      http = createAdaptorServer({ fetch: app.fetch });
      httpPort = await listenTcp(http, cfg);
    }
  } catch (e) {
    await close();
    throw e;
  }
  o.log.log("info", "broker started", {
    socket: o.socketPath,
    http: httpPort !== undefined ? `http://${cfg.http_host}:${httpPort}/` : null,
    pinned_budget: book.budget,
    budget_follows_host: follows,
    grow_step: cfg.grow_step,
    mem_available: first.mem.memAvailable,
    cgroup_max: first.cgroup?.max ?? null,
    quotas: cfg.quota !== undefined,
    system: cfg.system,
  });

  return {
    socketPath: o.socketPath,
    httpPort,
    status,
    book,
    async close() {
      await close();
      o.log.log("info", "broker stopped", {});
    },
  };
}

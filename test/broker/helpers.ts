// Test helpers for the broker and protocol tests: compile the C test programs, a raw protocol
// client in TS, a temp broker on a simulated /proc and /sys/fs/cgroup tree, and an HTTP getter.

import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { type BrokerHandle, startBroker } from "../../src/broker/daemon.js";
import { memoryLogger } from "../../src/broker/log.js";
import type { PeerCredReader } from "../../src/broker/peercred.js";
import type { HostPaths } from "../../src/broker/pressure.js";
import { BROKER_DEFAULTS, type BrokerConfig } from "../../src/config/schema.js";
import { decodeFrame, encodeFrame, FRAME_SIZE, type Frame } from "../../src/protocol/frame.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const GiB = 2 ** 30;
export const MiB = 2 ** 20;

/** Compiles C sources (paths relative to the repo) once per content hash; returns the binary. */
export function compileC(name: string, sources: string[], extra: string[] = []): string {
  const h = createHash("sha256");
  const all = [
    ...sources,
    "native/include/spillover_protocol.h",
    "native/include/cuda_abi.h",
    "native/src/broker_client.h",
    "native/test/t_common.h",
  ];
  for (const s of all) if (existsSync(join(ROOT, s))) h.update(readFileSync(join(ROOT, s)));
  h.update(extra.join(" "));
  const dir = join(tmpdir(), "spillover-test-bin");
  mkdirSync(dir, { recursive: true });
  const out = join(dir, `${name}-${h.digest("hex").slice(0, 12)}`);
  if (existsSync(out)) return out;
  const tmp = `${out}.${process.pid}.tmp`;
  execFileSync(
    "gcc",
    [
      "-std=c11",
      "-Wall",
      "-Wextra",
      "-Werror",
      "-O1",
      `-I${join(ROOT, "native/include")}`,
      `-I${join(ROOT, "native/src")}`,
      ...sources.map((s) => join(ROOT, s)),
      "-o",
      tmp,
      "-lpthread",
      ...extra,
    ],
    { stdio: "pipe" },
  );
  renameSync(tmp, out);
  return out;
}

export function brokerClientBinary(): string {
  return compileC("t_broker_client", [
    "native/test/t_broker_client.c",
    "native/src/broker_client.c",
  ]);
}

/** Raw protocol client: sends frames, reads frames, sees the close. */
export class RawClient {
  private buf = Buffer.alloc(0);
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly sock: net.Socket) {
    sock.on("data", (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    sock.on("close", () => {
      this.closed = true;
      this.wake();
    });
    sock.on("error", () => undefined);
  }

  static connect(path: string): Promise<RawClient> {
    return new Promise((res, rej) => {
      const s = net.connect(path);
      s.once("connect", () => res(new RawClient(s)));
      s.once("error", rej);
    });
  }

  private wake() {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  send(f: Frame | Buffer) {
    this.sock.write(Buffer.isBuffer(f) ? f : encodeFrame(f));
  }

  /** Next frame, or undefined once the broker has closed the connection. */
  async read(timeoutMs = 2000): Promise<Frame | undefined> {
    const deadline = Date.now() + timeoutMs;
    while (this.buf.length < FRAME_SIZE) {
      if (this.closed) return undefined;
      if (Date.now() > deadline) throw new Error("timed out waiting for a frame");
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
    const raw = this.buf.subarray(0, FRAME_SIZE);
    this.buf = this.buf.subarray(FRAME_SIZE);
    const d = decodeFrame(raw);
    if (!d.ok) throw new Error(`broker sent a bad frame: ${d.reason}`);
    return d.frame;
  }

  async waitClosed(timeoutMs = 2000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  close() {
    this.sock.destroy();
  }
}

export interface TestBroker {
  readonly handle: BrokerHandle;
  readonly dir: string;
  readonly socket: string;
  readonly statsDir: string;
  readonly log: ReturnType<typeof memoryLogger>;
  /** The simulated tree the broker reads memory facts from. */
  readonly host: HostPaths;
  setMem(availableBytes: number, totalBytes?: number): void;
  setPsi(some: number, full: number): void;
  /** memory.max (undefined: "max") and memory.current of the broker's simulated cgroup. */
  setCgroup(max: number | undefined, current: number): void;
  get(path: string): Promise<{ status: number; body: string; type: string | null }>;
  close(): Promise<void>;
}

function meminfoText(total: number, avail: number): string {
  const kb = (b: number) => Math.floor(b / 1024);
  return `MemTotal:       ${kb(total)} kB\nMemFree:        ${kb(avail)} kB\nMemAvailable:   ${kb(avail)} kB\nSwapTotal:      ${kb(GiB)} kB\nSwapFree:       ${kb(GiB)} kB\n`;
}

function psiText(some: number, full: number): string {
  return `some avg10=${some.toFixed(2)} avg60=0.00 avg300=0.00 total=1\nfull avg10=${full.toFixed(2)} avg60=0.00 avg300=0.00 total=1\n`;
}

/** Replaces a file at once, as the kernel's files change: a reader never sees half of one. */
export function writeAtomic(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text);
  renameSync(`${path}.tmp`, path);
}

/** The cgroup a simulated tree puts "self" in (cgroup v2). */
export const SIM_CGROUP = "/spillover.slice/test.scope";

export interface SimulatedHost {
  readonly host: HostPaths;
  setMem(availableBytes: number, totalBytes?: number): void;
  setPsi(some: number, full: number): void;
  setCgroup(max: number | undefined, current: number): void;
}

/**
 * A simulated /proc (meminfo, pressure/memory, self/cgroup) and /sys/fs/cgroup (v2, with
 * memory.max and memory.current for SIM_CGROUP and its parent) under `dir`; 64 GiB of memory,
 * 48 GiB available, no cgroup limit until setCgroup.
 */
export function simulatedHost(dir: string): SimulatedHost {
  const procRoot = join(dir, "proc");
  const cgroupRoot = join(dir, "sys/fs/cgroup");
  const cg = join(cgroupRoot, SIM_CGROUP);
  mkdirSync(join(procRoot, "pressure"), { recursive: true });
  mkdirSync(join(procRoot, "self"), { recursive: true });
  mkdirSync(cg, { recursive: true });
  writeFileSync(join(procRoot, "self/cgroup"), `0::${SIM_CGROUP}\n`);
  writeFileSync(join(cgroupRoot, "spillover.slice/memory.max"), "max\n");
  let total = 64 * GiB;
  const sim: SimulatedHost = {
    host: { procRoot, cgroupRoot },
    setMem(avail, t) {
      total = t ?? total;
      writeAtomic(join(procRoot, "meminfo"), meminfoText(total, avail));
    },
    setPsi(some, full) {
      writeAtomic(join(procRoot, "pressure/memory"), psiText(some, full));
    },
    setCgroup(max, current) {
      writeAtomic(join(cg, "memory.max"), `${max ?? "max"}\n`);
      writeAtomic(join(cg, "memory.current"), `${current}\n`);
    },
  };
  sim.setMem(48 * GiB);
  sim.setPsi(0, 0);
  sim.setCgroup(undefined, 0);
  return sim;
}

export interface TestBrokerOptions {
  readonly http?: boolean;
  /** Stand-in for the kernel's SO_PEERCRED (default: the real one). */
  readonly peerCred?: PeerCredReader;
  readonly accounts?: { readonly passwd: string; readonly group: string };
  /** Prepares the simulated host before the broker's first sample. */
  readonly before?: (sim: SimulatedHost) => void;
  readonly hostReserve?: number;
}

/** A broker on a temp socket, a simulated /proc and /sys/fs/cgroup tree and an ephemeral port. */
export async function startTestBroker(
  cfg: Partial<BrokerConfig> = {},
  opts: TestBrokerOptions = {},
): Promise<TestBroker> {
  const dir = mkdtempSync(join(tmpdir(), "spillover-broker-"));
  const statsDir = join(dir, "shm");
  mkdirSync(statsDir);
  const sim = simulatedHost(dir);
  opts.before?.(sim);
  const log = memoryLogger();
  const socket = join(dir, "run", "broker.sock");
  const handle = await startBroker({
    config: { ...BROKER_DEFAULTS, http_port: 0, sample_ms: 50, telemetry_ms: 100, ...cfg },
    socketPath: socket,
    statsDir,
    log,
    host: sim.host,
    procRoot: "/proc", // client pids are real processes
    http: opts.http ?? true,
    ...(opts.peerCred ? { peerCred: opts.peerCred } : {}),
    ...(opts.accounts ? { accounts: opts.accounts } : {}),
    ...(opts.hostReserve !== undefined ? { hostReserve: opts.hostReserve } : {}),
  });
  return {
    handle,
    dir,
    socket,
    statsDir,
    log,
    host: sim.host,
    setMem: sim.setMem,
    setPsi: sim.setPsi,
    setCgroup: sim.setCgroup,
    async get(path) {
      const r = await fetch(`http://127.0.0.1:${handle.httpPort}${path}`);
      return { status: r.status, body: await r.text(), type: r.headers.get("content-type") };
    },
    close: () => handle.close(),
  };
}

export async function waitFor<T>(
  fn: () => T | Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 3000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (ok(v) || Date.now() > deadline) return v;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Parses "op key=value ..." lines printed by t_broker_client. */
export function parseClientLines(out: string): { op: string; [k: string]: string }[] {
  return out
    .trim()
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [op, ...kv] = l.split(" ");
      const o: { op: string; [k: string]: string } = { op: op ?? "" };
      for (const p of kv) {
        const i = p.indexOf("=");
        if (i > 0) o[p.slice(0, i)] = p.slice(i + 1);
      }
      return o;
    });
}

export const NATIVE_BUILD = join(ROOT, "native/build");
export const FAKE_DIR = join(NATIVE_BUILD, "fake");
export const INTERPOSER = join(NATIVE_BUILD, "libspillover.so");
/** The end-to-end tests need the interposer and the fake driver (make -C native). */
export const HAVE_NATIVE = existsSync(INTERPOSER) && existsSync(join(FAKE_DIR, "libcuda.so.1"));

/** t_broker_workload, linked against the fake driver. */
export function workloadBinary(): string {
  return compileC(
    "t_broker_workload",
    ["native/test/t_broker_workload.c"],
    [`-I${join(ROOT, "native/test")}`, "-D_GNU_SOURCE", `-L${FAKE_DIR}`, "-lcuda", "-ldl"],
  );
}

/** Env for a program under the interposer + fake driver, talking to `socket`. */
export function interposedEnv(
  socket: string,
  statsDir: string,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("SPILLOVER_") && !k.startsWith("FAKE_CUDA_")) env[k] = v;
  return {
    ...env,
    LD_LIBRARY_PATH: FAKE_DIR,
    LD_PRELOAD: INTERPOSER,
    SPILLOVER_SOCKET: socket,
    SPILLOVER_STATS_DIR: statsDir,
    SPILLOVER_VRAM_LIMIT: "2M",
    SPILLOVER_VRAM_RESERVE: "0",
    SPILLOVER_PINNED_LIMIT: "1G",
    SPILLOVER_HOST_RESERVE: "0",
    SPILLOVER_LOG: "warn",
    FAKE_CUDA_VRAM: "1G",
    ...extra,
  };
}

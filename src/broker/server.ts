// The broker's socket side: accepts interposer connections, runs each through the protocol state
// machine (HELLO first, then requests), answers from the lease book, pushes LEASE_UPDATE when the
// pressure level or the budget changes, and reclaims a client's lease the moment its socket
// closes or its pid disappears. Who a client is comes from the kernel (SO_PEERCRED, read when the
// connection is accepted), never from HELLO: a HELLO naming another pid is refused
// (PEER_MISMATCH). A connection that sends anything malformed or out of order gets an ERROR frame
// and is closed, with the reason logged; other connections are unaffected.

import net from "node:net";
import {
  DenyReason,
  decodeFrame,
  ErrorCode,
  encodeFrame,
  type Frame,
  FrameSplitter,
  frame,
  MsgType,
  msgTypeName,
  type ProtoErrorCode,
  U64_MAX,
} from "../protocol/frame.js";
import type { LeaseBook } from "./leases.js";
import type { Logger } from "./log.js";
import type { PeerCred, PeerCredReader } from "./peercred.js";
import { pidAlive } from "./procs.js";

const MAX_PID = 4_194_304; // PID_MAX_LIMIT on 64-bit Linux
const MAX_GPUS = 64;
/** A synchronous client has one request in flight; a burst this large is a flood, not a client. */
const MAX_FRAMES_PER_READ = 256;

export interface LeaseEvent {
  readonly t: number;
  readonly pid: number;
  readonly kind: "hello" | "grow" | "deny" | "return" | "vram" | "release" | "budget";
  readonly bytes: number;
  readonly detail?: string;
}

export interface ServerOptions {
  readonly book: LeaseBook;
  readonly log: Logger;
  /** Our uid: a client's kernel uid must be it (user broker), unless `system`. */
  readonly uid: number;
  readonly system: boolean;
  /** The kernel's credentials of a connection (SO_PEERCRED; tests may stand in for it). */
  readonly peerCred: PeerCredReader;
  /** How often the pid of every client is checked (ms). */
  readonly pidPollMs?: number;
  readonly procRoot?: string;
  readonly onEvent?: (e: LeaseEvent) => void;
}

interface Conn {
  readonly id: number;
  readonly sock: net.Socket;
  readonly splitter: FrameSplitter;
  state: "new" | "ready" | "closed";
  pid: number;
  /** Read at accept: who connected, or why that could not be read. */
  readonly peer: PeerCred | { readonly error: string };
  lastSeq: bigint;
  /** Frames are handled one at a time (HELLO's /proc check is async). */
  queue: Promise<void>;
}

const DENY_NAMES: Readonly<Record<number, string>> = {
  [DenyReason.BUDGET]: "budget",
  [DenyReason.PRESSURE]: "pressure",
  [DenyReason.CLIENT_LIMIT]: "client limit",
  [DenyReason.QUOTA]: "quota",
};

const clamp = (v: bigint): number =>
  v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(v);

export class BrokerServer {
  private readonly server: net.Server;
  private readonly conns = new Map<number, Conn>();
  private nextId = 1;
  private pidTimer: NodeJS.Timeout | undefined;
  private readonly procRoot: string;

  constructor(private readonly opts: ServerOptions) {
    this.procRoot = opts.procRoot ?? "/proc";
    this.server = net.createServer((sock) => this.accept(sock));
  }

  listen(path: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(path, () => {
        this.server.off("error", reject);
        resolve();
      });
      this.pidTimer = setInterval(() => void this.checkPids(), this.opts.pidPollMs ?? 250);
      this.pidTimer.unref();
    });
  }

  async close(): Promise<void> {
    if (this.pidTimer) clearInterval(this.pidTimer);
    for (const c of this.conns.values()) this.drop(c, "broker shutting down", "info");
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  get listening(): boolean {
    return this.server.listening;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Pushes LEASE_UPDATE (new cap, pressure level) to every client that said HELLO. */
  pushLeaseUpdates(): void {
    const level = BigInt(this.opts.book.pressure);
    for (const c of this.conns.values()) {
      if (c.state !== "ready") continue;
      const cap = this.opts.book.cap(c.id);
      this.send(c, frame(MsgType.LEASE_UPDATE, 0n, BigInt(cap), level));
    }
  }

  private readPeer(sock: net.Socket): Conn["peer"] {
    try {
      return this.opts.peerCred(sock);
    } catch (e) {
      return { error: (e as Error).message };
    }
  }

  private accept(sock: net.Socket) {
    const c: Conn = {
      id: this.nextId++,
      sock,
      splitter: new FrameSplitter(),
      state: "new",
      pid: 0,
      peer: this.readPeer(sock),
      lastSeq: 0n,
      queue: Promise.resolve(),
    };
    this.conns.set(c.id, c);
    sock.on("data", (chunk: Buffer) => {
      if (c.state === "closed") return;
      const frames = c.splitter.push(chunk);
      if (frames.length > MAX_FRAMES_PER_READ) {
        this.fail(
          c,
          ErrorCode.BAD_VALUE,
          `${frames.length} frames at once; a client sends one request at a time`,
        );
        return;
      }
      for (const f of frames) c.queue = c.queue.then(() => this.onFrame(c, f));
    });
    sock.on("error", () => {
      // ECONNRESET and friends: the close handler reclaims
    });
    sock.on("close", () => {
      if (c.state === "closed") return;
      const partial = c.splitter.pendingBytes;
      // A probe that connects and leaves (spillover run/status looking for a broker) is not news.
      const level = partial > 0 ? "warn" : c.state === "new" ? "debug" : "info";
      this.drop(
        c,
        partial > 0
          ? `connection closed with ${partial} bytes of a partial frame`
          : "connection closed",
        level,
      );
    });
  }

  private send(c: Conn, f: Frame) {
    if (c.state !== "closed" && !c.sock.destroyed) c.sock.write(encodeFrame(f));
  }

  private fail(c: Conn, code: ProtoErrorCode, reason: string) {
    if (c.state === "closed") return;
    this.send(c, frame(MsgType.ERROR, 0n, BigInt(code)));
    this.drop(c, reason, "warn", code);
  }

  private drop(c: Conn, reason: string, level: "debug" | "info" | "warn", code?: ProtoErrorCode) {
    if (c.state === "closed") return;
    const wasReady = c.state === "ready";
    c.state = "closed";
    this.conns.delete(c.id);
    const released = this.opts.book.release(c.id);
    c.sock.end();
    // A peer that never reads would keep the socket half-open: do not wait for it.
    setTimeout(() => c.sock.destroy(), 100).unref();
    const peer = "pid" in c.peer ? c.peer : undefined;
    this.opts.log.log(level, "client disconnected", {
      conn: c.id,
      pid: c.pid || undefined,
      reason,
      error_code: code,
      peer_pid: peer && peer.pid !== c.pid ? peer.pid : undefined,
      peer_uid: peer?.uid,
      pinned_reclaimed: released?.pinned,
      vram_reclaimed: released?.vram,
    });
    if (wasReady && released) {
      this.opts.onEvent?.({
        t: Date.now(),
        pid: c.pid,
        kind: "release",
        bytes: released.pinned,
        detail: reason,
      });
    }
  }

  private async onFrame(c: Conn, raw: Buffer): Promise<void> {
    if (c.state === "closed") return;
    const d = decodeFrame(raw);
    if (!d.ok) return this.fail(c, d.code, d.reason);
    const f = d.frame;
    if (f.type % 2 === 0)
      return this.fail(
        c,
        ErrorCode.BAD_TYPE,
        `${msgTypeName(f.type)} is a broker-to-client message`,
      );
    if (f.seq === 0n || f.seq <= c.lastSeq) {
      return this.fail(
        c,
        ErrorCode.OUT_OF_ORDER,
        `${msgTypeName(f.type)} with seq ${f.seq} after seq ${c.lastSeq} (seq must increase)`,
      );
    }
    c.lastSeq = f.seq;
    if (c.state === "new" && f.type !== MsgType.HELLO) {
      return this.fail(c, ErrorCode.OUT_OF_ORDER, `${msgTypeName(f.type)} before HELLO`);
    }
    const book = this.opts.book;
    switch (f.type) {
      case MsgType.HELLO: {
        if (c.state !== "new") return this.fail(c, ErrorCode.OUT_OF_ORDER, "second HELLO");
        const pid = f.a;
        if (pid === 0n || pid > BigInt(MAX_PID))
          return this.fail(c, ErrorCode.BAD_VALUE, `HELLO with pid ${pid}`);
        if (f.b > BigInt(MAX_GPUS))
          return this.fail(c, ErrorCode.BAD_VALUE, `HELLO with ${f.b} GPUs (at most ${MAX_GPUS})`);
        const peer = c.peer;
        if ("error" in peer)
          return this.fail(
            c,
            ErrorCode.PEER_MISMATCH,
            `peer credentials: cannot read SO_PEERCRED (${peer.error})`,
          );
        if (BigInt(peer.pid) !== pid)
          return this.fail(
            c,
            ErrorCode.PEER_MISMATCH,
            `peer credentials: HELLO names pid ${pid}, the kernel says pid ${peer.pid} (uid ${peer.uid}) connected`,
          );
        if (!this.opts.system && peer.uid !== this.opts.uid)
          return this.fail(
            c,
            ErrorCode.PEER_MISMATCH,
            `peer credentials: uid ${peer.uid} may not use the broker of uid ${this.opts.uid}`,
          );
        c.pid = peer.pid;
        c.state = "ready";
        const granted = book.hello(c.id, peer, Number(f.b), clamp(f.c), Date.now());
        this.send(
          c,
          frame(
            MsgType.WELCOME,
            f.seq,
            BigInt(granted),
            BigInt(book.policy.growStep),
            BigInt(process.pid),
          ),
        );
        this.opts.log.log("info", "client connected", {
          conn: c.id,
          pid: c.pid,
          uid: peer.uid,
          gpus: Number(f.b),
          pinned_wanted: clamp(f.c),
          pinned_granted: granted,
        });
        this.opts.onEvent?.({ t: Date.now(), pid: c.pid, kind: "hello", bytes: granted });
        return;
      }
      case MsgType.VRAM_REQUEST: {
        if (f.a >= BigInt(MAX_GPUS))
          return this.fail(c, ErrorCode.BAD_VALUE, `VRAM_REQUEST for device ${f.a}`);
        const granted = book.vram(c.id, Number(f.a), clamp(f.b), clamp(f.c));
        this.send(c, frame(MsgType.VRAM_GRANT, f.seq, f.a, BigInt(granted)));
        this.opts.onEvent?.({
          t: Date.now(),
          pid: c.pid,
          kind: "vram",
          bytes: granted,
          detail: `gpu ${f.a}`,
        });
        return;
      }
      case MsgType.PINNED_GROW: {
        const want = clamp(f.a);
        const r = book.grow(c.id, want);
        this.send(
          c,
          frame(MsgType.PINNED_GRANT, f.seq, BigInt(r.granted), BigInt(r.total), BigInt(r.reason)),
        );
        if (r.granted > 0)
          this.opts.onEvent?.({ t: Date.now(), pid: c.pid, kind: "grow", bytes: r.granted });
        if (r.granted < want) {
          const why = DENY_NAMES[r.reason] ?? "budget";
          this.opts.log.log("info", "pinned growth refused", {
            pid: c.pid,
            wanted: want,
            granted: r.granted,
            lease: r.total,
            reason: why,
          });
          this.opts.onEvent?.({
            t: Date.now(),
            pid: c.pid,
            kind: "deny",
            bytes: want - r.granted,
            detail: why,
          });
        }
        return;
      }
      case MsgType.PINNED_RETURN: {
        const n = book.giveBack(c.id, clamp(f.a));
        this.opts.onEvent?.({ t: Date.now(), pid: c.pid, kind: "return", bytes: n });
        return;
      }
      case MsgType.BYE:
        this.drop(c, "BYE", "info");
        return;
      default:
        return this.fail(c, ErrorCode.BAD_TYPE, `unexpected ${msgTypeName(f.type)}`);
    }
  }

  /**
   * Reclaims the lease of any client whose process has gone while its socket stays open (the
   * socket was inherited by a child that outlives it): the kernel's pid is the one that connected.
   */
  private async checkPids(): Promise<void> {
    for (const c of [...this.conns.values()]) {
      if (c.state !== "ready") continue;
      if (!(await pidAlive(c.pid, this.procRoot))) this.drop(c, `pid ${c.pid} has exited`, "info");
    }
  }
}

export { U64_MAX };

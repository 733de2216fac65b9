// The broker's telemetry: the processes using spillover (from their stats records, every
// broker.telemetry_ms), the machine-wide history the dashboard charts, and GPU facts from
// nvidia-smi (every 10 s; none on a machine without it). Listeners hear each new point.

import { type GpuInfo, queryGpus } from "../gpu/nvidia-smi.js";
import { History } from "./history.js";
import type { LeaseBook } from "./leases.js";
import type { Logger } from "./log.js";
import type { MemorySample } from "./pressure.js";
import { scanProcesses } from "./procs.js";
import type { ProcessView } from "./view.js";

export interface TelemetryOptions {
  readonly statsDir: string;
  /** Only this uid's records (user broker); undefined: everyone's (system broker). */
  readonly uid: number | undefined;
  readonly procRoot?: string | undefined;
  readonly telemetryMs: number;
  readonly historyMinutes: number;
  readonly book: LeaseBook;
  readonly sample: () => MemorySample;
  readonly log: Logger;
  /** Environment for nvidia-smi (NVIDIA_SMI overrides the binary). */
  readonly env: NodeJS.ProcessEnv;
}

export class Telemetry {
  processes: ProcessView[] = [];
  gpus: readonly GpuInfo[] = [];
  readonly history: History;
  private readonly listeners = new Set<() => void>();
  private timers: NodeJS.Timeout[] = [];
  private scanning = false;

  constructor(private readonly o: TelemetryOptions) {
    this.history = new History(Math.ceil((o.historyMinutes * 60_000) / o.telemetryMs));
  }

  subscribe(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(): void {
    this.timers.push(setInterval(() => void this.tick(), this.o.telemetryMs));
    const gpu = setInterval(() => void this.refreshGpus(), 10_000);
    gpu.unref();
    this.timers.push(gpu);
    void this.refreshGpus();
    void this.tick();
  }

  stop(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.listeners.clear();
  }

  private async refreshGpus(): Promise<void> {
    const q = await queryGpus(this.o.env);
    this.gpus = q.ok ? q.gpus : [];
  }

  async tick(): Promise<void> {
    if (this.scanning) return;
    this.scanning = true;
    try {
      const r = await scanProcesses({
        dir: this.o.statsDir,
        uid: this.o.uid,
        ...(this.o.procRoot !== undefined ? { procRoot: this.o.procRoot } : {}),
      });
      this.processes = r.processes;
      const sample = this.o.sample();
      const sum = (f: (p: ProcessView) => number) => this.processes.reduce((s, p) => s + f(p), 0);
      this.history.push({
        t: Date.now() / 1000,
        vram: sum((p) => p.vram),
        pinned: sum((p) => p.pinned),
        stagingBudget: sum((p) => p.stream.budgetBytes),
        pinnedLeased: this.o.book.leased,
        pinnedBudget: this.o.book.budget,
        memAvailable: sample.mem.memAvailable,
        psiSome: sample.psi?.someAvg10 ?? 0,
        psiFull: sample.psi?.fullAvg10 ?? 0,
        pressure: this.o.book.pressure,
      });
      for (const fn of this.listeners) fn();
    } catch (e) {
      this.o.log.log("warn", "telemetry scan failed", { error: String(e) });
    } finally {
      this.scanning = false;
    }
  }
}

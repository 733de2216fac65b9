// Prometheus metrics on a private prom-client Registry. Gauges are filled in collect() from the
// broker's current snapshot, so scraping costs nothing between scrapes.

import { Counter, Gauge, Registry } from "prom-client";
import type { StreamStats } from "../protocol/stats.js";
import type { BrokerStatus } from "./status.js";

export function createMetrics(snapshot: () => BrokerStatus): Registry {
  const registry = new Registry();
  const s = () => snapshot();
  new Gauge({
    name: "spillover_pinned_budget_bytes",
    help: "Machine-wide pinned host memory the broker may lease",
    registers: [registry],
    collect() {
      this.set(s().budgets.pinnedBudget);
    },
  });
  new Gauge({
    name: "spillover_pinned_leased_bytes",
    help: "Pinned host memory leased to clients now",
    registers: [registry],
    collect() {
      this.set(s().budgets.pinnedLeased);
    },
  });
  new Gauge({
    name: "spillover_clients",
    help: "Connected interposer clients",
    registers: [registry],
    collect() {
      this.set(s().clients.length);
    },
  });
  new Gauge({
    name: "spillover_pressure_level",
    help: "RAM pressure level: 0 ok, 1 warn (slow growth), 2 critical (no growth)",
    registers: [registry],
    collect() {
      this.set(s().pressure.levelCode);
    },
  });
  new Gauge({
    name: "spillover_mem_available_bytes",
    help: "MemAvailable from /proc/meminfo",
    registers: [registry],
    collect() {
      this.set(s().pressure.memAvailable);
    },
  });
  new Gauge({
    name: "spillover_client_pinned_lease_bytes",
    help: "Pinned lease per client",
    labelNames: ["pid"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const c of s().clients) this.set({ pid: String(c.pid) }, c.pinnedLease);
    },
  });
  const userLabels = (u: { uid: number; user: string | null }) => ({
    uid: String(u.uid),
    user: u.user ?? "",
  });
  new Gauge({
    name: "spillover_user_pinned_leased_bytes",
    help: "Pinned lease per user (the kernel's uid of each client)",
    labelNames: ["uid", "user"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const u of s().users ?? []) this.set(userLabels(u), u.pinnedLeased);
    },
  });
  new Gauge({
    name: "spillover_user_pinned_quota_bytes",
    help: "Pinned quota per user ([broker.quota]; only users with one), at the current budget",
    labelNames: ["uid", "user"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const u of s().users ?? []) if (u.quota !== null) this.set(userLabels(u), u.quota);
    },
  });
  new Counter({
    name: "spillover_user_quota_denials_total",
    help: "Pinned requests cut short by the user's quota",
    labelNames: ["uid", "user"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const u of s().users ?? [])
        if (u.quotaDenials > 0) this.inc(userLabels(u), u.quotaDenials);
    },
  });
  new Gauge({
    name: "spillover_pinned_budget_target_bytes",
    help: "The pinned budget the host's memory supports now (MemAvailable, or the cgroup limit where lower); the budget follows it past a hysteresis band",
    registers: [registry],
    collect() {
      this.set(s().budgets.target ?? s().budgets.pinnedBudget);
    },
  });
  new Gauge({
    name: "spillover_cgroup_memory_max_bytes",
    help: "The lowest memory.max on the broker's cgroup path (absent without a limit)",
    registers: [registry],
    collect() {
      this.reset();
      const max = s().pressure.cgroupMax;
      if (max !== null && max !== undefined) this.set(max);
    },
  });
  new Gauge({
    name: "spillover_tier_bytes",
    help: "Bytes of each process's device memory in each tier, per GPU (vram includes small pass-through allocations)",
    labelNames: ["pid", "gpu", "tier"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of s().processes) {
        for (const g of p.gpus) {
          const labels = { pid: String(p.pid), gpu: String(g.gpu) };
          this.set({ ...labels, tier: "vram" }, g.vram + g.passthrough);
          this.set({ ...labels, tier: "pinned" }, g.pinned);
        }
      }
    },
  });
  new Gauge({
    name: "spillover_process_oom_total",
    help: "CUDA_ERROR_OUT_OF_MEMORY returned to each process (a counter kept by the process)",
    labelNames: ["pid"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of s().processes) this.set({ pid: String(p.pid) }, p.ooms);
    },
  });
  // The streaming engine's counters, per process: each is the process's own running count, so
  // they are Counters (rate() works) refilled from the snapshot on every scrape.
  const streamCounters: [string, string, (p: StreamStats) => number][] = [
    ["staged_bytes", "Bytes copied into VRAM staging ahead of the kernels", (p) => p.stagedBytes],
    ["staged_ranges", "Ranges staged", (p) => p.stagedRanges],
    ["stage_hits", "Launches that read a staged copy instead of host pages", (p) => p.stageHits],
    [
      "late_stages",
      "Stagings made by the launch that needed them (not ahead of it)",
      (p) => p.lateStages,
    ],
    [
      "writeback_pages",
      "Staged pages a kernel wrote, copied back before unstaging",
      (p) => p.writebackPages,
    ],
    [
      "inplace_launches",
      "Launches naming host pages that read them in place",
      (p) => p.inplaceLaunches,
    ],
    ["copy_busy_seconds", "Copy stream busy time", (p) => p.copyBusyNs / 1e9],
    ["fallbacks", "Stagings that could not be made (no room, a failed copy)", (p) => p.fallbacks],
  ];
  for (const [name, help, value] of streamCounters) {
    new Counter({
      name: `spillover_stream_${name}_total`,
      help: `${help} (the streaming engine, per process)`,
      labelNames: ["pid"] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const p of s().processes) this.inc({ pid: String(p.pid) }, value(p.stream));
      },
    });
  }
  new Gauge({
    name: "spillover_stream_budget_bytes",
    help: "VRAM the streaming engine holds for staging now, inside the process's VRAM limit",
    labelNames: ["pid"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const p of s().processes) this.set({ pid: String(p.pid) }, p.stream.budgetBytes);
    },
  });
  new Counter({
    name: "spillover_lease_events_total",
    help: "Lease events handled by the broker, by kind",
    labelNames: ["kind"] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [kind, n] of Object.entries(s().eventCounts)) this.inc({ kind }, n);
    },
  });
  return registry;
}

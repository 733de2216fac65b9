// `spillover doctor`'s checks: a table of functions over injected inputs (driver query, probe
// output, /proc files, library lookup), so each is tested without a GPU. Each check answers
// pass/warn/fail, what it found, and the fix.

import { parseMeminfo } from "../../broker/pressure.js";
import type { GpuQuery } from "../../gpu/nvidia-smi.js";
import { formatBytes } from "../../util/size.js";

export type CheckStatus = "pass" | "warn" | "fail";

export interface CheckResult {
  readonly status: CheckStatus;
  readonly detail: string;
  readonly fix?: string;
}

export interface ProbeDevice {
  readonly index: number;
  readonly name: string;
  readonly total: number;
  readonly cc: string;
  readonly vmm: number;
  readonly hostNumaId: number;
  readonly hostNumaVmm: number;
}

export interface ProbeOutput {
  readonly libcuda: string;
  readonly driver: boolean;
  readonly error?: string;
  readonly init?: number;
  readonly version?: number;
  readonly devices?: readonly ProbeDevice[];
  readonly lib?: { readonly path: string; readonly loads: boolean; readonly error?: string };
}

export interface DoctorInputs {
  readonly gpus: () => Promise<GpuQuery>;
  /** The probe's JSON, or why there is none. */
  readonly probe: () => Promise<ProbeOutput | { readonly missing: string }>;
  readonly meminfo: () => Promise<string | undefined>;
  readonly limits: () => Promise<string | undefined>;
  readonly psi: () => Promise<string | undefined>;
  readonly glibc: () => string | undefined;
  /** The library path, or the one-line reason it was not found. */
  readonly library: () => { path: string } | { error: string };
  /** Loads the library into /bin/true with LD_PRELOAD: undefined when fine, else ld.so's complaint. */
  readonly preload: (lib: string) => Promise<string | undefined>;
  readonly broker: () => Promise<string | undefined>;
}

export interface Check {
  readonly name: string;
  readonly run: (i: DoctorInputs) => Promise<CheckResult>;
}

/** "name: message", unless the message already starts with the name ("nvidia-smi not found"). */
function named(name: string, message: string): string {
  return message.startsWith(name) ? message : `${name}: ${message}`;
}

/** The CPU test double of the driver (native/test/fake) names its devices so. */
export function isTestDouble(p: ProbeOutput): boolean {
  return (p.devices ?? []).some((d) => /CPU test double/.test(d.name));
}

const NO_GPU_DEMO =
  "without a GPU, `npm run demo` shows spillover at work on its CPU test double (simulated)";

const cudaVersion = (v: number) => `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;

async function probeOrNull(i: DoctorInputs): Promise<ProbeOutput | { missing: string }> {
  return i.probe();
}

export const CHECKS: readonly Check[] = [
  {
    name: "NVIDIA driver",
    async run(i) {
      const q = await i.gpus();
      if (!q.ok)
        return {
          status: "fail",
          detail: named("nvidia-smi", q.reason),
          fix: `install the NVIDIA driver (nvidia-smi must be on PATH); ${NO_GPU_DEMO}`,
        };
      if (q.gpus.length === 0)
        return {
          status: "fail",
          detail: "nvidia-smi lists no GPUs",
          fix: "check that the GPU is visible (CUDA_VISIBLE_DEVICES, container runtime)",
        };
      const names = q.gpus
        .map((g) => `${g.index}: ${g.name} ${formatBytes(g.memoryTotal)}`)
        .join("; ");
      return {
        status: "pass",
        detail: `driver ${q.gpus[0]?.driverVersion}${q.cudaVersion ? `, CUDA ${q.cudaVersion}` : ""}; ${names}`,
      };
    },
  },
  {
    name: "libcuda loads",
    async run(i) {
      const p = await probeOrNull(i);
      if ("missing" in p)
        return { status: "warn", detail: p.missing, fix: "build it with make -C native" };
      if (!p.driver)
        return {
          status: "fail",
          detail: named(p.libcuda, p.error ?? "cannot load"),
          fix: "install the NVIDIA driver, or set SPILLOVER_LIBCUDA to libcuda.so.1's path",
        };
      if (p.init !== 0)
        return {
          status: "fail",
          detail: `cuInit returned ${p.init}`,
          fix: "check nvidia-smi and dmesg; the driver is loaded but not usable",
        };
      if ((p.version ?? 0) < 12020)
        return {
          status: "warn",
          detail: `driver API ${cudaVersion(p.version ?? 0)}`,
          fix: "HOST_NUMA memory needs a driver for CUDA 12.2 or newer",
        };
      if (isTestDouble(p))
        return {
          status: "warn",
          detail: `${p.libcuda} is spillover's CPU test double (native/build/fake), not an NVIDIA driver: the checks below describe the double`,
          fix: "unset SPILLOVER_LIBCUDA (and LD_LIBRARY_PATH) to check the NVIDIA driver",
        };
      return { status: "pass", detail: `${p.libcuda}, driver API ${cudaVersion(p.version ?? 0)}` };
    },
  },
  {
    name: "VMM and host NUMA memory",
    async run(i) {
      const p = await probeOrNull(i);
      if ("missing" in p || !p.driver || p.init !== 0)
        return { status: "warn", detail: "not checked (no usable driver)" };
      const devs = p.devices ?? [];
      if (devs.length === 0)
        return {
          status: "fail",
          detail: "the driver reports no devices",
          fix: "check CUDA_VISIBLE_DEVICES",
        };
      const noVmm = devs.filter((d) => d.vmm !== 1);
      if (noVmm.length > 0) {
        return {
          status: "fail",
          detail: `no VMM on device ${noVmm.map((d) => d.index).join(", ")}`,
          fix: "spillover needs cuMemCreate/cuMemMap (VMM): it passes everything through on this GPU",
        };
      }
      const noNuma = devs.filter((d) => d.hostNumaVmm !== 1);
      if (noNuma.length > 0) {
        return {
          status: "fail",
          detail: `no HOST_NUMA cuMemCreate on device ${noNuma.map((d) => d.index).join(", ")}`,
          fix: "needs driver >= 12.2 with a NUMA-enabled kernel (CU_DEVICE_ATTRIBUTE_HOST_NUMA_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED)",
        };
      }
      return {
        status: "pass",
        detail: devs
          .map((d) => `${d.index}: VMM, host NUMA node ${d.hostNumaId}, cc ${d.cc}`)
          .join("; "),
      };
    },
  },
  {
    name: "PCIe link",
    async run(i) {
      const q = await i.gpus();
      if (!q.ok || q.gpus.length === 0)
        return { status: "warn", detail: "not checked (no nvidia-smi)" };
      const parts: string[] = [];
      let degraded = false;
      for (const g of q.gpus) {
        if (g.pcieGenCurrent === undefined || g.pcieWidthCurrent === undefined) {
          parts.push(`${g.index}: unknown`);
          continue;
        }
        const low =
          (g.pcieGenMax !== undefined && g.pcieGenCurrent < g.pcieGenMax) ||
          (g.pcieWidthMax !== undefined && g.pcieWidthCurrent < g.pcieWidthMax);
        degraded ||= low;
        parts.push(
          `${g.index}: Gen${g.pcieGenCurrent} x${g.pcieWidthCurrent} (max Gen${g.pcieGenMax ?? "?"} x${g.pcieWidthMax ?? "?"})`,
        );
      }
      if (degraded) {
        return {
          status: "warn",
          detail: parts.join("; "),
          fix: "an idle GPU lowers its link generation to save power: check again under load; a narrow width means a slot or riser problem",
        };
      }
      return { status: "pass", detail: parts.join("; ") };
    },
  },
  {
    name: "glibc",
    async run(i) {
      const v = i.glibc();
      if (!v)
        return {
          status: "warn",
          detail: "unknown (not glibc?)",
          fix: "libspillover.so is built and tested against glibc",
        };
      const [maj, min] = v.split(".").map(Number);
      if ((maj ?? 0) < 2 || ((maj ?? 0) === 2 && (min ?? 0) < 17))
        return { status: "fail", detail: `glibc ${v}`, fix: "glibc 2.17 or newer is needed" };
      return { status: "pass", detail: `glibc ${v}` };
    },
  },
  {
    name: "memlock limit",
    async run(i) {
      const t = await i.limits();
      const m = t ? /^Max locked memory\s+(\S+)\s+(\S+)\s+bytes/m.exec(t) : null;
      if (!m) return { status: "warn", detail: "cannot read /proc/self/limits" };
      const soft = m[1] ?? "";
      const note =
        "spillover's pinned pages (cuMemCreate HOST_NUMA) are not bound by RLIMIT_MEMLOCK; cudaHostRegister/cuMemHostRegister in the program are";
      if (soft === "unlimited") return { status: "pass", detail: `unlimited (${note})` };
      const bytes = Number(soft);
      if (bytes < 2 ** 30) {
        return {
          status: "warn",
          detail: `ulimit -l is ${formatBytes(bytes)}: ${note}`,
          fix: "ulimit -l unlimited (or LimitMEMLOCK=infinity in a systemd unit, memlock in limits.conf)",
        };
      }
      return { status: "pass", detail: `${formatBytes(bytes)} (${note})` };
    },
  },
  {
    name: "RAM and swap",
    async run(i) {
      const t = await i.meminfo();
      const m = t ? parseMeminfo(t) : undefined;
      if (!m)
        return {
          status: "fail",
          detail: "cannot read /proc/meminfo",
          fix: "spillover sizes its pinned budget from /proc/meminfo",
        };
      const detail = `MemTotal ${formatBytes(m.memTotal)}, MemAvailable ${formatBytes(m.memAvailable)}, swap ${formatBytes(m.swapTotal)} (${formatBytes(m.swapFree)} free)`;
      if (m.memAvailable < 8 * 2 ** 30)
        return {
          status: "warn",
          detail,
          fix: "under 8 GiB available: little room to spill into; close programs or add RAM",
        };
      return { status: "pass", detail };
    },
  },
  {
    name: "memory pressure (PSI)",
    async run(i) {
      const t = await i.psi();
      if (t === undefined)
        return {
          status: "warn",
          detail: "/proc/pressure/memory missing: the broker watches MemAvailable only",
          fix: "boot with psi=1 (CONFIG_PSI)",
        };
      return { status: "pass", detail: t.split("\n")[0] ?? "" };
    },
  },
  {
    name: "libspillover.so",
    async run(i) {
      const l = i.library();
      if ("error" in l) return { status: "fail", detail: l.error, fix: "make -C native" };
      const err = await i.preload(l.path);
      if (err)
        return {
          status: "fail",
          detail: `${l.path} does not preload: ${err}`,
          fix: "rebuild with make -C native for this machine's glibc",
        };
      const p = await i.probe();
      if (!("missing" in p) && p.lib && !p.lib.loads)
        return {
          status: "fail",
          detail: `${l.path}: dlopen: ${p.lib.error ?? "failed"}`,
          fix: "rebuild with make -C native",
        };
      return { status: "pass", detail: `${l.path} loads` };
    },
  },
  {
    name: "broker",
    async run(i) {
      const s = await i.broker();
      if (!s)
        return {
          status: "warn",
          detail: "no broker running: programs use standalone budgets",
          fix: "start one with spillover broker (or the systemd unit in packaging/)",
        };
      return { status: "pass", detail: `answers at ${s}` };
    },
  },
];

export async function runChecks(
  i: DoctorInputs,
  checks: readonly Check[] = CHECKS,
): Promise<{ name: string; result: CheckResult }[]> {
  const out: { name: string; result: CheckResult }[] = [];
  for (const c of checks) {
    let result: CheckResult;
    try {
      result = await c.run(i);
    } catch (e) {
      result = { status: "fail", detail: `check crashed: ${String(e)}` };
    }
    out.push({ name: c.name, result });
  }
  return out;
}

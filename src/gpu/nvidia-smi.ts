// GPU facts from `nvidia-smi --query-gpu=... --format=csv,noheader,nounits` (async execFile: no
// native addon, and the broker's event loop never blocks on it). parseGpuCsv is pure.

import { execFile } from "node:child_process";

export interface GpuInfo {
  readonly index: number;
  readonly uuid: string;
  readonly name: string;
  readonly memoryTotal: number; // bytes
  readonly memoryUsed: number; // bytes
  readonly driverVersion: string;
  readonly pcieGenCurrent?: number | undefined;
  readonly pcieGenMax?: number | undefined;
  readonly pcieWidthCurrent?: number | undefined;
  readonly pcieWidthMax?: number | undefined;
}

export const QUERY_FIELDS = [
  "index",
  "uuid",
  "name",
  "memory.total",
  "memory.used",
  "driver_version",
  "pcie.link.gen.current",
  "pcie.link.gen.max",
  "pcie.link.width.current",
  "pcie.link.width.max",
] as const;

function optInt(s: string | undefined): number | undefined {
  if (s === undefined) return undefined;
  const n = Number(s.trim());
  return Number.isInteger(n) ? n : undefined; // "[N/A]", "[Not Supported]"
}

/** Parses the CSV rows (MiB for memory, as nvidia-smi reports with nounits). */
export function parseGpuCsv(text: string): GpuInfo[] {
  const out: GpuInfo[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const f = line.split(",").map((s) => s.trim());
    const index = optInt(f[0]);
    if (index === undefined || f.length < 6) continue;
    out.push({
      index,
      uuid: f[1] ?? "",
      name: f[2] ?? "",
      memoryTotal: (optInt(f[3]) ?? 0) * 2 ** 20,
      memoryUsed: (optInt(f[4]) ?? 0) * 2 ** 20,
      driverVersion: f[5] ?? "",
      pcieGenCurrent: optInt(f[6]),
      pcieGenMax: optInt(f[7]),
      pcieWidthCurrent: optInt(f[8]),
      pcieWidthMax: optInt(f[9]),
    });
  }
  return out;
}

export type GpuQuery =
  | {
      readonly ok: true;
      readonly gpus: readonly GpuInfo[];
      readonly cudaVersion?: string | undefined;
    }
  | { readonly ok: false; readonly reason: string };

function run(
  cmd: string,
  args: string[],
  timeoutMs: number,
): Promise<{ stdout: string; error?: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: "utf8" }, (err, stdout, stderr) => {
      if (err) {
        const code = (err as NodeJS.ErrnoException).code;
        resolve({
          stdout: "",
          error:
            code === "ENOENT"
              ? `${cmd} not found`
              : (stderr.trim().split("\n")[0] ?? err.message) || err.message,
        });
      } else resolve({ stdout });
    });
  });
}

/** Asks nvidia-smi (NVIDIA_SMI overrides the binary, for tests and odd installs). */
export async function queryGpus(
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 5000,
): Promise<GpuQuery> {
  const bin = env.NVIDIA_SMI ?? "nvidia-smi";
  const r = await run(
    bin,
    [`--query-gpu=${QUERY_FIELDS.join(",")}`, "--format=csv,noheader,nounits"],
    timeoutMs,
  );
  if (r.error !== undefined) return { ok: false, reason: r.error };
  const gpus = parseGpuCsv(r.stdout);
  // The CUDA version the driver supports is only in the banner of plain `nvidia-smi`.
  const banner = await run(bin, [], timeoutMs);
  const cuda = /CUDA Version:\s*([\d.]+)/.exec(banner.stdout)?.[1];
  return { ok: true, gpus, cudaVersion: cuda };
}

// Runs native/build/hwprobe and turns its one JSON object into a hardware profile. Parsing is
// separate from running so tests use recorded outputs (CI has no GPU).

import { execFile } from "node:child_process";
import { hostname } from "node:os";
import { z } from "zod";
import { SpilloverError } from "../util/errors.js";
import type { HwProfile } from "./profile.js";

const gbs = z.number().positive().nullable();
export const hwprobeOkSchema = z.object({
  ok: z.literal(true),
  tool: z.literal("hwprobe"),
  version: z.literal(1),
  device: z.object({
    index: z.number().int(),
    name: z.string(),
    vram_bytes: z.number().int().positive(),
    cc: z.string(),
    sm_count: z.number().int().positive(),
    pci_bus_id: z.string(),
  }),
  pcie: z.object({
    gen: z.number().int().nullable(),
    width: z.number().int().nullable(),
    max_gen: z.number().int().nullable(),
    max_width: z.number().int().nullable(),
    source: z.string().nullable(),
  }),
  bytes: z.number().int().positive(),
  h2d_gbs: gbs,
  d2h_gbs: gbs,
  zero_copy_read_gbs: gbs,
  vmm_host_read_gbs: gbs,
  vram_read_gbs: gbs,
  errors: z.array(z.string()),
  cpu: z.object({
    threads: z.number().int().positive(),
    ram_read_gbs: gbs,
    ram_read_by_threads: z.array(
      z.object({ threads: z.number().int().positive(), gbs: z.number().positive() }),
    ),
    mem_total_bytes: z.number().int().positive().nullable(),
  }),
});
const hwprobeFailSchema = z.object({ ok: z.literal(false), code: z.string(), error: z.string() });

/** Parses hwprobe's stdout; throws ERR_NO_GPU for its no-GPU answer, ERR_NATIVE for anything else wrong. */
export function profileFromHwprobe(stdout: string, measuredAt: Date): HwProfile {
  // hwprobe prints one JSON object; anything a wrapper printed before it is ignored.
  const text = stdout.trim();
  const line = text.split("\n").pop() ?? "";
  let json: unknown;
  for (const candidate of [text, line]) {
    try {
      json = JSON.parse(candidate);
      break;
    } catch {
      // try the next reading
    }
  }
  if (json === undefined) {
    throw new SpilloverError(
      "ERR_NATIVE",
      `hwprobe printed no JSON (got ${JSON.stringify(line.slice(0, 80))}); rebuild it with make -C native`,
    );
  }
  const fail = hwprobeFailSchema.safeParse(json);
  if (fail.success) {
    if (fail.data.code === "no_gpu")
      throw new SpilloverError("ERR_NO_GPU", `bench hw needs an NVIDIA GPU: ${fail.data.error}`);
    throw new SpilloverError("ERR_NATIVE", `hwprobe failed: ${fail.data.error}`);
  }
  const r = hwprobeOkSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new SpilloverError(
      "ERR_NATIVE",
      `hwprobe output invalid at ${i?.path.join(".") || "top level"}: ${i?.message ?? ""} (hwprobe and the CLI are from different builds?)`,
    );
  }
  const p = r.data;
  const need = (v: number | null, what: string): number => {
    if (v === null)
      throw new SpilloverError(
        "ERR_NATIVE",
        `hwprobe could not measure ${what}: ${p.errors.join("; ") || "no reason given"}`,
      );
    return v;
  };
  return {
    schema: "spillover-hw-profile/1",
    measuredAt: measuredAt.toISOString(),
    host: hostname(),
    gpu: {
      name: p.device.name,
      vramBytes: p.device.vram_bytes,
      computeCapability: p.device.cc,
      // An idle GPU may train its link down to Gen1 to save power: the max is what a transfer gets.
      pcieGen: p.pcie.max_gen ?? p.pcie.gen,
      pcieWidth: p.pcie.max_width ?? p.pcie.width,
      vramReadGBs: need(p.vram_read_gbs, "VRAM read bandwidth"),
      h2dGBs: need(p.h2d_gbs, "host-to-device copies"),
      d2hGBs: need(p.d2h_gbs, "device-to-host copies"),
      zeroCopyReadGBs: need(p.zero_copy_read_gbs, "zero-copy reads"),
      vmmHostReadGBs: p.vmm_host_read_gbs,
    },
    cpu: {
      threads: p.cpu.threads,
      ramReadGBs: need(p.cpu.ram_read_gbs, "RAM read bandwidth"),
      ramReadByThreads: p.cpu.ram_read_by_threads,
      memTotalBytes: p.cpu.mem_total_bytes,
    },
  };
}

export interface ProbeRun {
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number | null;
}

export function runHwprobe(
  path: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  timeoutMs = 300_000,
): Promise<ProbeRun> {
  return new Promise((resolve) => {
    execFile(
      path,
      [...args],
      { env, timeout: timeoutMs, maxBuffer: 1 << 20 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === "number"
            ? (err as { code: number }).code
            : null
          : 0;
        resolve({ stdout: String(stdout), stderr: String(stderr), code });
      },
    );
  });
}

// `spillover doctor`: runs the checks in doctor-checks.ts against this machine and prints a table
// (or --json). Exits 1 if any check fails.

import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { findBroker } from "../../broker/client.js";
import { findLibrary, findNativeTool } from "../../config/library.js";
import { loadConfig } from "../../config/load.js";
import { queryGpus } from "../../gpu/nvidia-smi.js";
import { defineCommand } from "../command.js";
import { type DoctorInputs, type ProbeOutput, runChecks } from "./doctor-checks.js";
import { table, uid } from "./shared.js";

function exec(
  cmd: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ ok: boolean; stdout: string; stderr: string; error?: string }> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 10_000, encoding: "utf8" }, (err, stdout, stderr) => {
      resolve({ ok: !err, stdout, stderr, ...(err ? { error: err.message } : {}) });
    });
  });
}

const readOrUndefined = (p: string) => readFile(p, "utf8").catch(() => undefined);

export function machineInputs(env: NodeJS.ProcessEnv, socket: string | undefined): DoctorInputs {
  let gpus: ReturnType<typeof queryGpus> | undefined;
  let probe: Promise<ProbeOutput | { missing: string }> | undefined;
  const library = () => {
    try {
      return { path: findLibrary(env) };
    } catch (e) {
      return { error: (e as Error).message };
    }
  };
  return {
    gpus: () => {
      gpus ??= queryGpus(env);
      return gpus;
    },
    probe: () => {
      probe ??= (async () => {
        const tool = findNativeTool("spillover-probe", env);
        if (!tool) return { missing: "spillover-probe not built (native/build/spillover-probe)" };
        const lib = library();
        const r = await exec(tool, "path" in lib ? ["--lib", lib.path] : [], env);
        try {
          return JSON.parse(r.stdout) as ProbeOutput;
        } catch {
          return {
            missing: `spillover-probe failed: ${(r.stderr || r.error || "no output").split("\n")[0]}`,
          };
        }
      })();
      return probe;
    },
    meminfo: () => readOrUndefined("/proc/meminfo"),
    limits: () => readOrUndefined("/proc/self/limits"),
    psi: () => readOrUndefined("/proc/pressure/memory"),
    glibc: () => {
      const header = (
        process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
      )?.header;
      return header?.glibcVersionRuntime;
    },
    library,
    preload: async (lib) => {
      const r = await exec("/bin/true", [], { ...env, LD_PRELOAD: lib, SPILLOVER_LOG: "off" });
      const complaint = r.stderr
        .split("\n")
        .find((l) => l.includes("ld.so") || l.includes("cannot be preloaded"));
      return complaint ?? (r.ok ? undefined : (r.error ?? "failed"));
    },
    broker: () => findBroker(env, uid(), socket),
  };
}

const MARK = { pass: "ok", warn: "WARN", fail: "FAIL" } as const;

export const doctorCommand = defineCommand({
  name: "doctor",
  summary:
    "check this machine for spillover: driver, VMM, host NUMA, PCIe, limits, RAM, library, broker",
  flags: ["json", "socket", "config"],
  async run({ flags, io }) {
    const config = await loadConfig({
      env: io.env,
      configFile: flags.config,
      flags: { socket: flags.socket },
    });
    const results = await runChecks(machineInputs(io.env, config.socket));
    const failed = results.some((r) => r.result.status === "fail");
    if (flags.json) return { output: JSON.stringify(results, null, 2), exitCode: failed ? 1 : 0 };
    const rows = [["CHECK", "STATUS", "DETAIL"]];
    for (const r of results) {
      rows.push([r.name, MARK[r.result.status], r.result.detail]);
      if (r.result.fix && r.result.status !== "pass") rows.push(["", "", `fix: ${r.result.fix}`]);
    }
    return { output: table(rows), exitCode: failed ? 1 : 0 };
  },
});

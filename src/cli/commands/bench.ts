// `spillover bench hw`: measures this machine's tiers with native/build/hwprobe (copies, zero-copy
// and VMM host reads, VRAM, RAM with all threads, PCIe link) and saves the hardware profile that
// `spillover plan` reads. Without a GPU it says so in one line and exits non-zero.

import { existsSync } from "node:fs";
import { resolve } from "node:path";
import { findNativeTool } from "../../config/library.js";
import { profileFromHwprobe, runHwprobe } from "../../hw/hwprobe.js";
import { defaultProfilePath, type HwProfile, saveProfile } from "../../hw/profile.js";
import { SpilloverError } from "../../util/errors.js";
import { defineCommand } from "../command.js";

export function formatProfile(p: HwProfile, path: string): string {
  const g = p.gpu;
  const link = g.pcieGen ? `PCIe Gen${g.pcieGen} x${g.pcieWidth ?? "?"}` : "PCIe link unknown";
  const by = p.cpu.ramReadByThreads.map((x) => `${x.threads}:${x.gbs.toFixed(1)}`).join(" ");
  return [
    `${g.name}, ${(g.vramBytes / 2 ** 30).toFixed(1)} GiB VRAM, ${link}`,
    `  VRAM read            ${g.vramReadGBs.toFixed(0)} GB/s`,
    `  host->device copy    ${g.h2dGBs.toFixed(1)} GB/s (pinned)`,
    `  device->host copy    ${g.d2hGBs.toFixed(1)} GB/s (pinned)`,
    `  zero-copy read       ${g.zeroCopyReadGBs.toFixed(1)} GB/s (kernel reading pinned host memory)`,
    `  VMM host-page read   ${g.vmmHostReadGBs === null ? "not measured" : `${g.vmmHostReadGBs.toFixed(1)} GB/s`} (spillover's data path)`,
    `  CPU RAM read         ${p.cpu.ramReadGBs.toFixed(1)} GB/s with ${p.cpu.threads} threads (threads:GB/s ${by})`,
    `saved ${path}`,
  ].join("\n");
}

export const benchCommand = defineCommand({
  name: "bench",
  summary: "measure this machine (bench hw) for `spillover plan`",
  args: ["<what>"],
  flags: ["json", "profile", "hwprobe"],
  async run({ flags, args, io }) {
    const what = args[0];
    if (what !== "hw") {
      throw new SpilloverError(
        "ERR_USAGE",
        `bench ${JSON.stringify(what ?? "")}: unknown benchmark (available: hw; the workload suite runs with bash bench/run_suite.sh on a GPU machine)`,
      );
    }
    const tool =
      flags.hwprobe !== undefined
        ? resolve(io.cwd, flags.hwprobe)
        : findNativeTool("hwprobe", io.env);
    if (!tool || !existsSync(tool)) {
      throw new SpilloverError(
        "ERR_NATIVE",
        `hwprobe not found${tool ? ` at ${tool}` : ""}; build it with make -C native`,
      );
    }
    const run = await runHwprobe(tool, [], io.env);
    if (run.stdout.trim() === "") {
      throw new SpilloverError(
        "ERR_NATIVE",
        `hwprobe exited ${run.code ?? "on a signal"} without output${run.stderr ? `: ${run.stderr.trim().split("\n")[0]}` : ""}`,
      );
    }
    const profile = profileFromHwprobe(run.stdout, new Date());
    const path =
      flags.profile !== undefined ? resolve(io.cwd, flags.profile) : defaultProfilePath(io.env);
    await saveProfile(path, profile);
    return {
      output: flags.json ? JSON.stringify(profile, null, 2) : formatProfile(profile, path),
      exitCode: 0,
    };
  },
});

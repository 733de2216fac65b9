// `spillover plan <model>`: reads a model's headers (GGUF, safetensors, or a config.json), takes
// this machine's saved profile (or a machine described by flags), and predicts every strategy's
// prefill and decode speed for a stated workload; names the winner, its command, and why.
// `spillover plan --validate <results.json>` prints predicted vs measured for a bench suite run.

import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { Machine } from "../../hw/machine.js";
import { buildMachine, type MachineFlags } from "../../hw/machine.js";
import { defaultProfilePath, loadProfile } from "../../hw/profile.js";
import { analyzeModel } from "../../models/analyze.js";
import { loadModel } from "../../models/load.js";
import { formatPlan } from "../../plan/format.js";
import { makePlan } from "../../plan/plan.js";
import type { Workload } from "../../plan/strategies.js";
import { validateResults } from "../../plan/validate.js";
import { formatValidation } from "../../plan/validate-format.js";
import { SpilloverError } from "../../util/errors.js";
import { defineCommand } from "../command.js";
import type { FlagValues } from "../flags.js";
import { formatNeeds, modelNeeds } from "./plan-needs.js";

type PlanFlags = Pick<
  FlagValues,
  | "json"
  | "gpu"
  | "vram"
  | "vramBw"
  | "link"
  | "ramBw"
  | "cpuThreads"
  | "prompt"
  | "gen"
  | "batch"
  | "ctx"
  | "kvType"
  | "ubatch"
  | "ngl"
  | "nCpuMoe"
  | "dtype"
  | "profile"
  | "validate"
  | "expertReads"
>;

export function workloadFromFlags(f: PlanFlags): Workload {
  const prompt = f.prompt ?? 512;
  const gen = f.gen ?? 128;
  const ctx = f.ctx ?? prompt + gen;
  if (ctx < prompt + gen) {
    throw new SpilloverError(
      "ERR_USAGE",
      `--ctx ${ctx} is smaller than --prompt + --gen (${prompt + gen}); raise --ctx or shorten the workload`,
    );
  }
  return {
    prompt,
    gen,
    batch: f.batch ?? 1,
    ctx,
    kvType: f.kvType ?? "f16",
    ubatch: f.ubatch ?? 512,
    ...(f.ngl !== undefined ? { ngl: f.ngl } : {}),
    ...(f.nCpuMoe !== undefined ? { nCpuMoe: f.nCpuMoe } : {}),
  };
}

export function machineFlags(f: PlanFlags): MachineFlags {
  return {
    ...(f.gpu !== undefined ? { gpu: f.gpu } : {}),
    ...(f.vram !== undefined ? { vram: f.vram } : {}),
    ...(f.vramBw !== undefined ? { vramBw: f.vramBw } : {}),
    ...(f.link !== undefined ? { link: f.link } : {}),
    ...(f.ramBw !== undefined ? { ramBw: f.ramBw } : {}),
    ...(f.cpuThreads !== undefined ? { cpuThreads: f.cpuThreads } : {}),
  };
}

/** The plan text, with the reader's notes first and the assumed host right under the machine. */
function withHostAndNotes(text: string, m: Machine, notes: readonly string[]): string {
  const lines = text.split("\n");
  if (m.assumedHost !== undefined) {
    const at = lines.findIndex((l) => l.startsWith("machine "));
    lines.splice(
      at + 1,
      0,
      `assumed  host RAM and threads: ${m.assumedHost}; pass --ram-bw and --cpu-threads, or run \`spillover bench hw\` on the machine`,
    );
  }
  return [...notes.map((t) => `note     ${t}`), ...lines].join("\n");
}

export const planCommand = defineCommand({
  name: "plan",
  summary: "predict prefill/decode speed of each way to run a model bigger than VRAM, and pick one",
  args: ["[model]"],
  flags: [
    "json",
    "gpu",
    "vram",
    "vramBw",
    "link",
    "ramBw",
    "cpuThreads",
    "prompt",
    "gen",
    "batch",
    "ctx",
    "kvType",
    "ubatch",
    "ngl",
    "nCpuMoe",
    "dtype",
    "profile",
    "validate",
    "expertReads",
  ],
  async run({ flags, args, io }) {
    const profilePath =
      flags.profile !== undefined ? resolve(io.cwd, flags.profile) : defaultProfilePath(io.env);
    const profile = await loadProfile(profilePath);
    if (flags.validate !== undefined) {
      const path = resolve(io.cwd, flags.validate);
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (e) {
        throw new SpilloverError(
          "ERR_USAGE",
          `--validate ${flags.validate}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
        );
      }
      const v = validateResults(path, text, profile, machineFlags(flags), {
        expertReads: flags.expertReads ?? "routed",
      });
      return { output: flags.json ? JSON.stringify(v, null, 2) : formatValidation(v), exitCode: 0 };
    }
    if (flags.expertReads !== undefined) {
      throw new SpilloverError(
        "ERR_USAGE",
        "--expert-reads describes the benchmarked program: use it with --validate results.json",
      );
    }
    const modelArg = args[0];
    if (modelArg === undefined) {
      throw new SpilloverError(
        "ERR_USAGE",
        "plan needs a model: a .gguf file, a .safetensors file or a directory with config.json (or --validate results.json)",
      );
    }
    const workload = workloadFromFlags(flags);
    // The model first: a truncated or unreadable model is the first thing to fix.
    const model = await loadModel(
      resolve(io.cwd, modelArg),
      flags.dtype !== undefined ? { dtype: flags.dtype } : {},
    );
    const analysis = analyzeModel(model);
    const hw = machineFlags(flags);
    if (profile === undefined && flags.profile !== undefined) {
      throw new SpilloverError(
        "ERR_PROFILE",
        `--profile ${flags.profile}: no such file; make one with \`spillover bench hw --profile ${flags.profile}\` on the GPU machine`,
      );
    }
    if (profile === undefined && Object.keys(hw).length === 0) {
      const needs = modelNeeds(analysis, workload, modelArg, model.format, model.notes ?? []);
      return {
        output: flags.json ? JSON.stringify(needs, null, 2) : formatNeeds(needs),
        exitCode: 0,
      };
    }
    const machine = buildMachine(profile, hw);
    const plan = makePlan(analysis, machine, workload, modelArg);
    if (flags.json) {
      const notes = model.notes ?? [];
      return {
        output: JSON.stringify(notes.length > 0 ? { ...plan, notes } : plan, null, 2),
        exitCode: 0,
      };
    }
    return { output: withHostAndNotes(formatPlan(plan), machine, model.notes ?? []), exitCode: 0 };
  },
});

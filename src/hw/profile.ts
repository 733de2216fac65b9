// The hardware profile: what `spillover bench hw` measured on this machine, saved as JSON and read
// back by `spillover plan`. The schema is versioned and validated on load; a bad file is one
// ERR_PROFILE line naming it.

import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { z } from "zod";
import { SpilloverError } from "../util/errors.js";

const gbs = z.number().positive().max(100_000);

export const hwProfileSchema = z.object({
  schema: z.literal("spillover-hw-profile/1"),
  measuredAt: z.string(),
  host: z.string().optional(),
  gpu: z.object({
    name: z.string(),
    vramBytes: z.number().int().positive(),
    computeCapability: z.string().optional(),
    pcieGen: z.number().int().min(1).max(7).nullable(),
    pcieWidth: z.number().int().min(1).max(32).nullable(),
    vramReadGBs: gbs,
    h2dGBs: gbs,
    d2hGBs: gbs,
    zeroCopyReadGBs: gbs,
    /** Kernel reading VMM (cuMemCreate HOST_NUMA) pages: spillover's own data path. */
    vmmHostReadGBs: gbs.nullable(),
  }),
  cpu: z.object({
    threads: z.number().int().positive(),
    ramReadGBs: gbs,
    ramReadByThreads: z.array(z.object({ threads: z.number().int().positive(), gbs })),
    memTotalBytes: z.number().int().positive().nullable(),
  }),
});
export type HwProfile = z.infer<typeof hwProfileSchema>;

/** $XDG_CONFIG_HOME/spillover/hw-profile.json, else ~/.config/spillover/hw-profile.json. */
export function defaultProfilePath(env: NodeJS.ProcessEnv): string {
  const base = env.XDG_CONFIG_HOME?.startsWith("/")
    ? env.XDG_CONFIG_HOME
    : join(env.HOME || homedir(), ".config");
  return join(base, "spillover", "hw-profile.json");
}

export function parseProfile(path: string, text: string): HwProfile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new SpilloverError(
      "ERR_PROFILE",
      `${path}: not valid JSON (rerun \`spillover bench hw\`)`,
    );
  }
  const r = hwProfileSchema.safeParse(json);
  if (!r.success) {
    const i = r.error.issues[0];
    throw new SpilloverError(
      "ERR_PROFILE",
      `${path}: invalid hardware profile at ${i?.path.join(".") || "top level"}: ${i?.message ?? "invalid"} (rerun \`spillover bench hw\`)`,
    );
  }
  return r.data;
}

/** Reads the profile; undefined when the file does not exist (plan then needs --gpu etc.). */
export async function loadProfile(path: string): Promise<HwProfile | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new SpilloverError(
      "ERR_PROFILE",
      `${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
    );
  }
  return parseProfile(path, text);
}

/** Writes atomically (temp file + rename) so a crash never leaves half a profile. */
export async function saveProfile(path: string, p: HwProfile): Promise<void> {
  const checked = hwProfileSchema.parse(p);
  try {
    await mkdir(dirname(path), { recursive: true });
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify(checked, null, 2)}\n`, { mode: 0o644 });
    await rename(tmp, path);
  } catch (e) {
    throw new SpilloverError(
      "ERR_PROFILE",
      `${path}: cannot write the profile (${(e as NodeJS.ErrnoException).code ?? String(e)}); pass --profile FILE`,
    );
  }
}

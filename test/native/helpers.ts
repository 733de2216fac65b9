// Running the C scenario programs (native/build/t_*) under libspillover.so on the CPU test double,
// with a clean SPILLOVER_*/FAKE_CUDA_* environment: 64 MiB of "VRAM" budget on a 1 GiB fake card.
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const build = path.join(root, "native/build");
export const MiB = 1024 * 1024;

export const BUDGET = {
  SPILLOVER_VRAM_LIMIT: "64M",
  SPILLOVER_VRAM_RESERVE: "16M",
  SPILLOVER_PINNED_LIMIT: "128M",
  SPILLOVER_HOST_RESERVE: "0",
  FAKE_CUDA_VRAM: "1G",
};

export function buildScenarios(): void {
  execFileSync("make", ["-s", "-C", path.join(root, "native"), "test-bin"], { stdio: "pipe" });
}

function scrubbedEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (v !== undefined && !k.startsWith("SPILLOVER_") && !k.startsWith("FAKE_CUDA_")) env[k] = v;
  }
  return env;
}

export interface Ran {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runScenario(
  prog: string,
  args: string[],
  statsDir: string,
  env: Record<string, string> = {},
): Ran {
  const r = spawnSync(path.join(build, prog), args, {
    encoding: "utf8",
    env: {
      ...scrubbedEnv(),
      LD_LIBRARY_PATH: path.join(build, "fake"),
      LD_PRELOAD: path.join(build, "libspillover.so"),
      SPILLOVER_STATS_DIR: statsDir,
      SPILLOVER_BROKER: "off",
      ...BUDGET,
      ...env,
    },
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

export function nonEmptyLines(s: string): string[] {
  return s.split("\n").filter((l) => l.length > 0);
}

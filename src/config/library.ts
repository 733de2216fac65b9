// Finds libspillover.so for `run` and `doctor`: SPILLOVER_LIB, else native/build/ of the package
// this CLI belongs to (from src/config/ in a checkout, from dist/ in the bundle).

import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SpilloverError } from "../util/errors.js";

export function libraryCandidates(moduleDir = dirname(fileURLToPath(import.meta.url))): string[] {
  const out: string[] = [];
  let d = moduleDir;
  for (let i = 0; i < 4; i++) {
    out.push(join(d, "native", "build", "libspillover.so"));
    d = resolve(d, "..");
  }
  return out;
}

export function findLibrary(
  env: NodeJS.ProcessEnv,
  exists: (p: string) => boolean = existsSync,
  candidates = libraryCandidates(),
): string {
  const fromEnv = env.SPILLOVER_LIB;
  if (fromEnv) {
    if (!exists(fromEnv))
      throw new SpilloverError(
        "ERR_NATIVE",
        `SPILLOVER_LIB=${JSON.stringify(fromEnv)}: no such file; point it at libspillover.so or unset it`,
      );
    return resolve(fromEnv);
  }
  for (const c of candidates) if (exists(c)) return c;
  throw new SpilloverError(
    "ERR_NATIVE",
    `libspillover.so not found (looked in ${candidates.slice(0, 2).join(", ")}); build it with make -C native, or set SPILLOVER_LIB`,
  );
}

/** Sibling tools built by the native Makefile (spillover-probe). */
export function findNativeTool(
  name: string,
  env: NodeJS.ProcessEnv,
  exists: (p: string) => boolean = existsSync,
): string | undefined {
  try {
    const lib = findLibrary(env, exists);
    const p = join(dirname(lib), name);
    if (exists(p)) return p;
  } catch {
    // fall through to the default locations
  }
  for (const c of libraryCandidates()) {
    const p = join(dirname(c), name);
    if (exists(p)) return p;
  }
  return undefined;
}

// Runs the CLI in-process with captured output: what every CLI test uses.

import { join } from "node:path";
import { PassThrough } from "node:stream";
import { main } from "../../src/cli/main.js";

export const ROOT = join(import.meta.dirname, "../..");

export async function runCli(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (d: Buffer) => {
    out += d.toString();
  });
  stderr.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const code = await main(argv, {
    stdout,
    stderr,
    stdin: new PassThrough(),
    env: { HOME: "/nonexistent", ...env },
    cwd: ROOT,
  });
  return { code, out, err };
}

// `spillover run [budgets] -- <command...>`: runs a program with libspillover.so preloaded and its
// budgets in SPILLOVER_* variables, forwards SIGINT/SIGTERM/SIGHUP, and exits as the program did
// (its status, or 128+signal). A program that cannot be started: one line and 127/126, as a shell.

import { spawn } from "node:child_process";
import { constants } from "node:os";
import { findBroker } from "../../broker/client.js";
import { childEnv } from "../../config/child-env.js";
import { findLibrary } from "../../config/library.js";
import { loadConfig } from "../../config/load.js";
import { SpilloverError } from "../../util/errors.js";
import { defineCommand } from "../command.js";
import { knobFlagLayer } from "../flags.js";

const FORWARDED = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

export const runCommand = defineCommand({
  name: "run",
  summary:
    "run a program with spillover's memory tiers (spillover run --vram-limit 8G -- python3 x.py)",
  flags: [
    "vramLimit",
    "vramReserve",
    "pinnedLimit",
    "hostReserve",
    "noStream",
    "streamBudget",
    "streamRatio",
    "streamCopy",
    "log",
    "noBroker",
    "socket",
    "config",
  ],
  passThrough: true,
  async run({ flags, rest, io }) {
    if (rest.length === 0) {
      throw new SpilloverError(
        "ERR_USAGE",
        "run: name the program to run after --, e.g. spillover run --vram-limit 8G -- python3 train.py",
      );
    }
    const config = await loadConfig({
      env: io.env,
      configFile: flags.config,
      flags: knobFlagLayer(flags),
    });
    const lib = findLibrary(io.env);
    const socket =
      config.use_broker === "off"
        ? undefined
        : await findBroker(io.env, process.getuid?.() ?? 0, config.socket);
    const env = childEnv(config, io.env, lib, socket);
    const [cmd, ...args] = rest as [string, ...string[]];
    // On a terminal, Ctrl-C already reaches the whole foreground process group, program included:
    // forwarding it as well would deliver it twice.
    const forward = io.stdin.isTTY ? FORWARDED.filter((s) => s !== "SIGINT") : FORWARDED;
    return { exitCode: await runChild(cmd, args, env, io.cwd, io.stderr, forward) };
  },
});

export function runChild(
  cmd: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  stderr: NodeJS.WritableStream,
  forward: readonly NodeJS.Signals[] = FORWARDED,
): Promise<number> {
  return new Promise((resolve) => {
    // Handlers go in before the spawn: a signal that arrives between the two would otherwise kill
    // `run` with its default action and orphan the program. They stay installed for every
    // forwardable signal so that none kills `run` while the program lives; only those in
    // `forward` are passed on.
    let child: ReturnType<typeof spawn> | undefined;
    const pending: NodeJS.Signals[] = [];
    const handlers = FORWARDED.map((sig) => {
      const h = () => {
        if (!forward.includes(sig)) return;
        if (child) child.kill(sig);
        else pending.push(sig);
      };
      process.on(sig, h);
      return [sig, h] as const;
    });
    child = spawn(cmd, args, { stdio: "inherit", env, cwd });
    for (const sig of pending) child.kill(sig);
    const cleanup = () => {
      for (const [sig, h] of handlers) process.off(sig, h);
    };
    child.once("error", (e: NodeJS.ErrnoException) => {
      cleanup();
      if (e.code === "ENOENT") {
        stderr.write(`spillover: ${cmd}: command not found\n`);
        resolve(127);
      } else if (e.code === "EACCES") {
        stderr.write(`spillover: ${cmd}: permission denied (not executable)\n`);
        resolve(126);
      } else {
        stderr.write(`spillover: ${cmd}: cannot start (${e.code ?? e.message})\n`);
        resolve(127);
      }
    });
    child.once("exit", (code, signal) => {
      cleanup();
      if (signal) resolve(128 + (constants.signals[signal] ?? 0));
      else resolve(code ?? 1);
    });
  });
}

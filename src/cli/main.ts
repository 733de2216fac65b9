// The spillover CLI: builds commander commands from the command modules and the central flag
// table, runs one, prints its output, and turns SpilloverErrors into one line and an exit code.

import { Command, CommanderError, Option } from "commander";
import { isSpilloverError, SpilloverError } from "../util/errors.js";
import type { CliCommand, CommandIO } from "./command.js";
import { COMMANDS } from "./commands/index.js";
import { FLAGS, type FlagName, type FlagSpec } from "./flags.js";

export const VERSION = "0.1.0";

function flagKey(spec: FlagSpec<unknown>): string {
  // "--pinned-limit <size>" -> "pinnedLimit", as commander names it.
  // "--no-broker" is stored by commander as broker=false: flagKey gives "broker" (see flagValue).
  const long = (/--([a-z0-9-]+)/.exec(spec.spelling)?.[1] ?? "").replace(/^no-/, "");
  return long.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** A negatable flag ("--no-broker") reads as true when given, undefined otherwise. */
function flagValue(spec: FlagSpec<unknown>, opts: Record<string, unknown>): unknown {
  const v = opts[flagKey(spec)];
  if (/--no-/.test(spec.spelling)) return v === false ? true : undefined;
  return v;
}

function addCommand(
  program: Command,
  cmd: CliCommand,
  io: CommandIO,
  done: (code: number) => void,
) {
  const sub = program.command(cmd.name).description(cmd.summary);
  for (const a of cmd.args ?? []) sub.argument(a);
  if (cmd.passThrough) sub.argument("[command...]").passThroughOptions().allowUnknownOption(false);
  for (const name of cmd.flags) {
    const spec = FLAGS[name] as FlagSpec<unknown>;
    const opt = new Option(spec.spelling, spec.description);
    if (spec.parse) {
      const parse = spec.parse;
      const flag = /--[a-z0-9-]+/.exec(spec.spelling)?.[0] ?? spec.spelling;
      opt.argParser((raw: string) => parse(raw, flag));
    }
    if (spec.defaultValue !== undefined) opt.default(spec.defaultValue);
    sub.addOption(opt);
  }
  sub.action(async (...actionArgs: unknown[]) => {
    const command = actionArgs[actionArgs.length - 1] as Command;
    const opts = command.opts() as Record<string, unknown>;
    const flags: Record<string, unknown> = {};
    for (const name of cmd.flags)
      flags[name] = flagValue(FLAGS[name as FlagName] as FlagSpec<unknown>, opts);
    const positional = command.processedArgs as unknown[];
    const nArgs = cmd.args?.length ?? 0;
    const args = positional.slice(0, nArgs).filter((a): a is string => typeof a === "string");
    const rest = cmd.passThrough ? ((positional[nArgs] as string[] | undefined) ?? []) : [];
    const result = await cmd.run({ flags: flags as never, args, rest, io });
    if (result.output !== undefined && result.output !== "") {
      io.stdout.write(result.output.endsWith("\n") ? result.output : `${result.output}\n`);
    }
    done(result.exitCode);
  });
}

/** Runs the CLI with `argv` (without node and script). Resolves to the exit code. */
export async function main(argv: readonly string[], io: CommandIO): Promise<number> {
  let exitCode = 0;
  const program = new Command("spillover")
    .description("Run CUDA programs with more GPU memory than the card has.")
    .version(VERSION)
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    });
  for (const cmd of COMMANDS) {
    addCommand(program, cmd as CliCommand, io, (code) => {
      exitCode = code;
    });
  }
  try {
    await program.parseAsync([...argv], { from: "user" });
    return exitCode;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander has already printed its one-line message (or the help/version text).
      return e.exitCode === 0 ? 0 : 2;
    }
    if (isSpilloverError(e)) {
      io.stderr.write(`spillover: ${e.message}\n`);
      return e.exitCode;
    }
    const err = e instanceof Error ? e : new Error(String(e));
    io.stderr.write(`spillover: internal error: ${err.stack ?? err.message}\n`);
    return new SpilloverError("ERR_INTERNAL", err.message).exitCode;
  }
}

export function processIO(): CommandIO {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    stdin: process.stdin,
    env: process.env,
    cwd: process.cwd(),
  };
}

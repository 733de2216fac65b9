// The one interface every CLI command implements. A command is a small module: it declares its
// flags by name (defined once in flags.ts), its positional arguments, and a `run` that either
// returns its output (status, plan, doctor: trivially testable) or streams to `io` and returns
// an exit code (run, top, broker).

import type { FlagName, FlagValues } from "./flags.js";

export interface CommandIO {
  readonly stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number; rows?: number };
  readonly stderr: NodeJS.WritableStream;
  readonly stdin: NodeJS.ReadableStream & {
    isTTY?: boolean;
    setRawMode?: (raw: boolean) => unknown;
  };
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
}

export interface CommandResult {
  /** Printed to stdout (a trailing newline is added when missing). */
  readonly output?: string;
  readonly exitCode: number;
}

export interface CommandInput<F extends FlagName> {
  readonly flags: Pick<FlagValues, F>;
  /** Positional arguments; for `run`, everything after `--` is in `rest`. */
  readonly args: readonly string[];
  readonly rest: readonly string[];
  readonly io: CommandIO;
}

export interface CliCommand<F extends FlagName = FlagName> {
  readonly name: string;
  readonly summary: string;
  /** Positional arguments as commander spells them: "<model>", "[path]". */
  readonly args?: readonly string[];
  readonly flags: readonly F[];
  /** `run -- <command...>` style: everything after the first non-flag word goes to `rest`. */
  readonly passThrough?: boolean;
  readonly run: (input: CommandInput<F>) => Promise<CommandResult>;
}

export function defineCommand<F extends FlagName>(c: CliCommand<F>): CliCommand<F> {
  return c;
}

// The command table: one import and one entry per command module.
import type { CliCommand } from "../command.js";
import type { FlagName } from "../flags.js";

export const COMMANDS: readonly CliCommand<FlagName>[] = [];

// The command table: one import and one entry per command module.
import type { CliCommand } from "../command.js";
import type { FlagName } from "../flags.js";
import { benchCommand } from "./bench.js";
import { brokerCommand } from "./broker.js";
import { doctorCommand } from "./doctor.js";
import { planCommand } from "./plan.js";
import { runCommand } from "./run.js";
import { statusCommand } from "./status.js";
import { topCommand } from "./top.js";

export const COMMANDS: readonly CliCommand<FlagName>[] = [
  runCommand as CliCommand<FlagName>,
  statusCommand as CliCommand<FlagName>,
  brokerCommand as CliCommand<FlagName>,
  planCommand as CliCommand<FlagName>,
  benchCommand as CliCommand<FlagName>,
  doctorCommand as CliCommand<FlagName>,
  topCommand as CliCommand<FlagName>,
];

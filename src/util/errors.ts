// Typed errors with stable codes. Every bad input the user can fix ends as one of these: the CLI
// prints `spillover: <message>` on one line and exits with `exitCode`.

export type ErrorCode =
  | "ERR_USAGE" // bad flag, missing argument
  | "ERR_CONFIG" // invalid config file, env var or flag value
  | "ERR_MODEL" // unreadable, truncated or unsupported model file
  | "ERR_PROFILE" // missing or invalid hardware profile
  | "ERR_BROKER" // broker unreachable or refused
  | "ERR_NATIVE" // libspillover.so missing or unloadable
  | "ERR_NO_GPU" // an operation that needs a GPU ran without one
  | "ERR_CHILD" // the program under `run` could not be started
  | "ERR_INTERNAL";

export class SpilloverError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly exitCode = code === "ERR_USAGE" || code === "ERR_CONFIG" ? 2 : 1,
  ) {
    super(message);
    this.name = "SpilloverError";
  }
}

export function isSpilloverError(e: unknown): e is SpilloverError {
  return e instanceof SpilloverError;
}

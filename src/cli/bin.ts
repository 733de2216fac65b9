// Entry point of the bundled `spillover` binary.
import { main, processIO } from "./main.js";

main(process.argv.slice(2), processIO()).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`spillover: internal error: ${String(e)}\n`);
    process.exitCode = 1;
  },
);

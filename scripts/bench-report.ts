// Entry point of `npm run bench:report` (run with tsx): renders docs/benchmarks.md from a
// results file in bench/results/. See bench/report/report-cli.ts for the flags.
import { runBenchReport } from "../bench/report/report-cli.js";

process.exitCode = runBenchReport(process.argv.slice(2), {
  cwd: process.cwd(),
  stdout: (l) => process.stdout.write(`${l}\n`),
  stderr: (l) => process.stderr.write(`${l}\n`),
});

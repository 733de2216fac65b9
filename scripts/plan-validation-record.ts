// Writes a plan-validation record (bench/results/runs/*-plan-validation*.json) from a suite results
// file and the hardware profile of the same machine: `spillover plan --validate`'s JSON, its table,
// and the tallies of the prediction and, beside it, of the calibrated reconstruction.
// Usage: tsx scripts/plan-validation-record.ts RESULTS PROFILE OUT "what this run was"
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { parseProfile } from "../src/hw/profile.js";
import { validateResults } from "../src/plan/validate.js";
import { formatValidation } from "../src/plan/validate-format.js";

const [results, profilePath, out, what] = process.argv.slice(2);
if (!results || !profilePath || !out || !what) {
  process.stderr.write(
    'usage: tsx scripts/plan-validation-record.ts RESULTS PROFILE OUT "what this run was"\n',
  );
  process.exit(2);
}
const text = readFileSync(results, "utf8");
const profile = parseProfile(profilePath, readFileSync(profilePath, "utf8"));
const v = validateResults(results, text, profile, {}, { expertReads: "routed" });
const all = validateResults(results, text, profile, {}, { expertReads: "all" });
const r = JSON.parse(text);
const command = `spillover plan --validate ${results} --profile ${profilePath}`;
const record = {
  schema: "spillover-plan-validation-record/2",
  what,
  date: String(r.created_utc ?? "").slice(0, 10),
  card: {
    name: r.host?.gpu_name,
    driver: r.host?.driver,
    pcie: r.host?.pcie,
    results,
    results_commit: r.git_commit,
    profile: profilePath,
  },
  git_commit: execFileSync("git", ["rev-parse", "HEAD"], { encoding: "utf8" }).trim(),
  command,
  command_in_repo: `npx tsx src/cli/bin.ts plan --validate ${results} --profile ${profilePath}`,
  summary: {
    validated: v.validated,
    prediction_within25: v.within25,
    prediction_by_metric: v.byMetric,
    calibrated_reconstruction_within25: v.calibratedWithin25,
    calibrated_reconstruction_by_metric: v.calibratedByMetric,
    calibrated_reconstruction_with_all_experts_read_within25: all.calibratedWithin25,
  },
  table: formatValidation(v).split("\n"),
  validation: v,
};
writeFileSync(out, `${JSON.stringify(record, null, 1)}\n`);
process.stdout.write(
  `${out}: prediction ${v.within25} of ${v.validated} within 25%; calibrated reconstruction ${v.calibratedWithin25} of ${v.validated}\n`,
);

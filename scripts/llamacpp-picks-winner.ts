// After the GPU call of bench/llamacpp/run.sh: the plan.picks-winner proof. Regenerates the
// benchmark's GGUF headers here (bench/llamacpp/gguf_random.py --header-only: the same header,
// sparse data), plans each at the VRAM the strategies were measured at with the run's hardware
// profile, and compares the planner's winner with the measured one for two request shapes. Adds
// the entry to the run's proof file and writes bench/results/proofs/llamacpp-<card>-<date>.json.
// Usage: tsx scripts/llamacpp-picks-winner.ts RESULTS.json HW-PROFILE.json PROOFS.json [OUT.json]
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildMachine } from "../src/hw/machine.js";
import { parseProfile } from "../src/hw/profile.js";
import { analyzeModel } from "../src/models/analyze.js";
import { loadModel } from "../src/models/load.js";
import { type BenchRuns, picksWinnerProof, SHAPES, winnerPoint } from "../src/plan/picks-winner.js";

const [resultsPath, profilePath, proofsPath, outArg] = process.argv.slice(2);
if (!resultsPath || !profilePath || !proofsPath) {
  process.stderr.write(
    "usage: tsx scripts/llamacpp-picks-winner.ts RESULTS.json HW-PROFILE.json PROOFS.json [OUT.json]\n",
  );
  process.exit(2);
}
const results = JSON.parse(readFileSync(resultsPath, "utf8"));
const profile = parseProfile(profilePath, readFileSync(profilePath, "utf8"));
const proofs = JSON.parse(readFileSync(proofsPath, "utf8"));
const runs = results.runs as BenchRuns;
const dir = mkdtempSync(join(tmpdir(), "spill-gguf-"));
const points = [];
for (const [model, m] of Object.entries(
  results.models as Record<string, { preset: string; vram_limit_bytes: number }>,
)) {
  const path = join(dir, `${m.preset}-q8_0.gguf`);
  execFileSync("python3", ["bench/llamacpp/gguf_random.py", m.preset, path, "--header-only"]);
  const a = analyzeModel(await loadModel(path));
  const machine = { ...buildMachine(profile, {}), vramBytes: m.vram_limit_bytes };
  for (const s of SHAPES) points.push(winnerPoint(model, a, machine, path, runs, s));
}
rmSync(dir, { recursive: true, force: true });
const proof = picksWinnerProof(points);
proofs.proofs = [...proofs.proofs.filter((p: { id: string }) => p.id !== proof.id), proof];
const out = outArg ?? `bench/results/proofs/llamacpp-${proofs.card}-${proofs.date}.json`;
writeFileSync(out, `${JSON.stringify(proofs, null, 1)}\n`);
process.stdout.write(
  `${out}: plan.picks-winner ${proof.measured} (${proof.pass ? "pass" : "miss"})\n${proof.detail}\n`,
);

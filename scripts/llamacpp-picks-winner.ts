// After the GPU call of bench/llamacpp/run.sh: the plan.picks-winner and plan.honest-prediction
// proofs. Regenerates the benchmark's GGUF headers here (bench/llamacpp/gguf_random.py
// --header-only: the same header, sparse data), plans each at the VRAM the strategies were measured
// at with the run's hardware profile, compares the planner's winner with the measured one for two
// request shapes, and its spillover prediction with every llama-bench test run under spillover.
// Adds both entries to the run's proof file and writes bench/results/proofs/llamacpp-<card>-<date>.json.
// Usage: tsx scripts/llamacpp-picks-winner.ts RESULTS.json HW-PROFILE.json PROOFS.json [OUT.json]
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { buildMachine } from "../src/hw/machine.js";
import { parseProfile } from "../src/hw/profile.js";
import { analyzeModel } from "../src/models/analyze.js";
import { loadModel } from "../src/models/load.js";
import {
  type HonestPoint,
  honestPoints,
  honestPredictionProof,
} from "../src/plan/honest-prediction.js";
import {
  type BenchRuns,
  MEASURED,
  picksWinnerProof,
  SHAPES,
  winnerPoint,
} from "../src/plan/picks-winner.js";

// Runs whose points were also predicted by the planner before llama.cpp's quantized prefill
// re-reads were modelled (commit f683bc4: every host byte read 1.26x at 512 tokens, the cuBLAS
// curve), keyed by card and date: the record says both fractions.
const BEFORE: Readonly<Record<string, string>> = {
  "h200-2026-11-29":
    "Before the MMQ re-read model (planner of f683bc4, same points): 2 of 8 within (dense pp512 4.15, tg128 1.10, pp2048 4.18, pp8192 5.88; moe pp512 0.54, tg128 1.17, pp2048 0.49, pp8192 0.47), 0.25",
};

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
const honest: HonestPoint[] = [];
for (const [model, m] of Object.entries(
  results.models as Record<string, { preset: string; vram_limit_bytes: number }>,
)) {
  const path = join(dir, `${m.preset}-q8_0.gguf`);
  execFileSync("python3", ["bench/llamacpp/gguf_random.py", m.preset, path, "--header-only"]);
  const a = analyzeModel(await loadModel(path));
  const machine = { ...buildMachine(profile, {}), vramBytes: m.vram_limit_bytes };
  for (const s of SHAPES) points.push(winnerPoint(model, a, machine, path, runs, s));
  honest.push(...honestPoints(model, a, machine, path, runs, MEASURED[model]?.spillover ?? []));
}
rmSync(dir, { recursive: true, force: true });
const made = [
  picksWinnerProof(points),
  honestPredictionProof(honest, BEFORE[`${proofs.card}-${proofs.date}`]),
];
const ids = new Set(made.map((p) => p.id));
proofs.proofs = [...proofs.proofs.filter((p: { id: string }) => !ids.has(p.id)), ...made];
const out = outArg ?? `bench/results/proofs/llamacpp-${proofs.card}-${proofs.date}.json`;
writeFileSync(out, `${JSON.stringify(proofs, null, 1)}\n`);
for (const p of made) {
  process.stdout.write(
    `${out}: ${p.id} ${p.measured} (${p.pass ? "pass" : "miss"})\n${p.detail}\n`,
  );
}

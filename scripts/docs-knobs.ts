// docs-knobs.ts: `npm run docs:knobs` rewrites the interposer-knob tables of README.md and
// docs/cli.md from src/config/knobs.ts (between the knobs markers). test/cli/knobs.test.ts fails
// when a table and the source disagree.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KNOBS_BEGIN, KNOBS_END, knobsMarkdown } from "../src/config/knobs.js";

export const KNOB_DOCS = ["README.md", "docs/cli.md"];

export function withKnobsTable(text: string): string | undefined {
  const a = text.indexOf(KNOBS_BEGIN);
  const b = text.indexOf(KNOBS_END);
  if (a < 0 || b < a) return undefined;
  return `${text.slice(0, a + KNOBS_BEGIN.length)}\n${knobsMarkdown()}\n${text.slice(b)}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = join(import.meta.dirname, "..");
  for (const f of KNOB_DOCS) {
    const path = join(root, f);
    const next = withKnobsTable(readFileSync(path, "utf8"));
    if (next === undefined) {
      console.error(`docs-knobs: ${f} has no ${KNOBS_BEGIN} ... ${KNOBS_END} markers`);
      process.exitCode = 1;
      continue;
    }
    writeFileSync(path, next);
  }
}

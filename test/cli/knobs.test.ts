// The knob table (src/config/knobs.ts) is the one home of each interposer knob: the docs' tables
// are generated from it, the config schema and the env layer read it, `run` flags come from it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { KNOB_DOCS, withKnobsTable } from "../../scripts/docs-knobs.js";
import { FLAGS } from "../../src/cli/flags.js";
import { KNOBS } from "../../src/config/knobs.js";
import { ConfigSchema, ENV_KEYS } from "../../src/config/schema.js";
import { ROOT } from "../helpers/cli.js";

describe("the knob table", () => {
  it.each(KNOB_DOCS)("%s carries the table generated from src/config/knobs.ts", (f) => {
    const text = readFileSync(join(ROOT, f), "utf8");
    const regenerated = withKnobsTable(text);
    expect(regenerated, `${f} lacks the knobs markers`).toBeDefined();
    expect(text, `${f} is out of date: run npm run docs:knobs`).toBe(regenerated);
  });

  it("every knob is a config key, a SPILLOVER_* variable and (where it has one) a flag", () => {
    for (const k of KNOBS) {
      expect(Object.keys(ConfigSchema.shape)).toContain(k.key);
      expect(ENV_KEYS[k.env]).toBe(k.key);
      if ("flag" in k) expect(FLAGS[k.flag.name].spelling).toBe(k.flag.spelling);
    }
  });
});

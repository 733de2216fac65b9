// The interposer's configuration (native/src/config.c and the lines it prints) on the CPU test
// double: every knob of src/config/knobs.ts is accepted with the value the CLI would pass and
// rejected with one line on a value the CLI rejects too; an empty SPILLOVER_VRAM_LIMIT, a limit
// above the card, an unopenable SPILLOVER_LIBCUDA and a missing SPILLOVER_STATS_DIR each say so.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { KNOBS, type KnobDef } from "../../src/config/knobs.js";
import { buildScenarios, nonEmptyLines, root, runScenario } from "./helpers.js";

let statsDir = "";

beforeAll(() => {
  buildScenarios();
  statsDir = mkdtempSync(path.join(os.tmpdir(), "spillover-cfg-stats-"));
});

afterAll(() => {
  if (statsDir) rmSync(statsDir, { recursive: true, force: true });
});

const run = (env: Record<string, string>) => runScenario("t_misc", ["summary"], statsDir, env);
const nativeSources = readdirSync(path.join(root, "native/src"))
  .filter((f) => f.endsWith(".c"))
  .map((f) => readFileSync(path.join(root, "native/src", f), "utf8"))
  .join("\n");

const knobs = KNOBS as readonly KnobDef[];

describe("every knob of src/config/knobs.ts reaches native/src/config.c", () => {
  test.each(knobs.map((k) => [k.env, k]))("%s is read by the interposer", (env) => {
    expect(nativeSources).toContain(`"${env}"`);
  });

  test.each(knobs.map((k) => [k.env, k.accepted, k]))("%s=%s is accepted", (env, value, k) => {
    expect((k as KnobDef).field.safeParse(value).success).toBe(true);
    // The stats file goes to the test's directory whatever the knob under test says.
    const r = run(env === "SPILLOVER_STATS_DIR" ? { [env]: statsDir } : { [env]: value });
    expect(r.stderr).toBe("");
    expect(r.stdout).toContain("ok summary");
    expect(r.code).toBe(0);
  });

  const rejecting = knobs.filter((k) => k.rejected !== undefined);
  test.each(rejecting.map((k) => [k.env, k.rejected ?? "", k]))(
    "%s=%s is rejected by the CLI and by the interposer, with one line",
    (env, value, k) => {
      expect((k as KnobDef).field.safeParse(value).success).toBe(false);
      const r = run({ [env]: value });
      const lines = nonEmptyLines(r.stderr);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(
        new RegExp(`^spillover: ${env}="${value}" is not .*; passing all CUDA calls through$`),
      );
    },
  );
});

describe("what the interposer says about its configuration", () => {
  test("SPILLOVER_VRAM_LIMIT set but empty is an error, not 'no limit'", () => {
    const r = runScenario("t_misc", ["passthrough"], statsDir, { SPILLOVER_VRAM_LIMIT: "" });
    expect(r.stdout).toContain("ok passthrough");
    expect(nonEmptyLines(r.stderr)).toEqual([
      'spillover: SPILLOVER_VRAM_LIMIT="" is not a size (it is set but empty; unset it for the default); passing all CUDA calls through',
    ]);
  });

  test("a limit above the card is lowered to the card with one warning", () => {
    const r = runScenario("t_info", ["capacity"], statsDir, {
      SPILLOVER_VRAM_LIMIT: "2G",
      FAKE_CUDA_VRAM: "1G",
    });
    const lines = nonEmptyLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^spillover\[\d+\]: SPILLOVER_VRAM_LIMIT \(2048 MiB\) is more than device 0 has \(1024 MiB\); using 1024 MiB$/,
    );
  });

  test("SPILLOVER_LIBCUDA that cannot be opened: one line at the default log level", () => {
    const r = run({ SPILLOVER_LIBCUDA: "/nonexistent/libcuda.so" });
    expect(nonEmptyLines(r.stderr)).toEqual([
      'spillover: SPILLOVER_LIBCUDA="/nonexistent/libcuda.so" cannot be opened (No such file or directory); spillover finds no driver there: unset it or point it at the driver\'s libcuda.so.1',
    ]);
    expect(r.stdout).toContain("ok summary");
  });

  test("SPILLOVER_STATS_DIR that does not exist: one warning naming it, the program runs", () => {
    const r = run({ SPILLOVER_STATS_DIR: "/nonexistent/stats" });
    const lines = nonEmptyLines(r.stderr);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^spillover\[\d+\]: SPILLOVER_STATS_DIR: cannot create \/nonexistent\/stats\/spillover-\d+-\d+\.stats \(No such file or directory\); no stats record/,
    );
    expect(r.stdout).toContain("ok summary");
  });
});

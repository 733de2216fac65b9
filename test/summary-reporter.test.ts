// `npm test` on a machine without Chromium: the dashboard test is skipped, and the summary says
// why instead of a bare "1 skipped".
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { expect, it } from "vitest";
import { ROOT } from "./helpers/cli.js";

it("names each skipped test and its reason above the summary line", () => {
  const r = spawnSync(
    process.execPath,
    [
      join(ROOT, "node_modules/vitest/vitest.mjs"),
      "run",
      "test/broker/dashboard.test.ts",
      "--reporter=./test/summary-reporter.ts",
    ],
    {
      cwd: ROOT,
      encoding: "utf8",
      env: { ...process.env, SPILLOVER_TEST_CHROMIUM: "/nonexistent/chromium" },
      timeout: 60_000,
    },
  );
  expect(r.stdout).toContain(
    "skipped: dashboard in headless Chromium > shows live numbers that change as a workload allocates: needs Chromium at /nonexistent/chromium (apt-get install chromium; .ci/run installs it)",
  );
  expect(r.stdout).toMatch(/\n0 passed, 0 failed, 1 skipped\n/);
  expect(r.status).toBe(0);
});

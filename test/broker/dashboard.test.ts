// The dashboard in real headless Chromium (Debian's chromium, driven by playwright-core): the page
// loads, connects to the live stream, and its numbers change while a CUDA program (interposer + fake
// driver) allocates. Keeps a screenshot in test/artifacts/dashboard.png.

import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import {
  HAVE_NATIVE,
  interposedEnv,
  MiB,
  ROOT,
  startTestBroker,
  type TestBroker,
  workloadBinary,
} from "./helpers.js";

// Overridable so test/summary-reporter.test.ts can show what a machine without Chromium prints.
const CHROMIUM = process.env.SPILLOVER_TEST_CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

let broker: TestBroker | undefined;
let proc: ChildProcess | undefined;

afterAll(async () => {
  proc?.kill("SIGKILL");
  await broker?.close();
});

/** Why this machine cannot run the test, or undefined when it can. */
function skipReason(): string | undefined {
  if (!existsSync(CHROMIUM))
    return `needs Chromium at ${CHROMIUM} (apt-get install chromium; .ci/run installs it)`;
  if (!HAVE_NATIVE) return "needs the native build (npm ci, or make -C native)";
  return undefined;
}

describe("dashboard in headless Chromium", () => {
  it("shows live numbers that change as a workload allocates", async (ctx) => {
    const skip = skipReason();
    if (skip !== undefined) ctx.skip(skip);
    broker = await startTestBroker({
      pinned_budget: 512 * MiB,
      grow_step: 16 * MiB,
      initial_grant: 16 * MiB,
      quota: { default: { percent: 50 } },
    });
    const b = broker;
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
    try {
      const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
      const errors: string[] = [];
      page.on("pageerror", (e) => errors.push(String(e)));
      await page.goto(`http://127.0.0.1:${b.handle.httpPort}/`);
      await page.waitForFunction(
        () => document.getElementById("conn")?.textContent === "live",
        null,
        { timeout: 10_000 },
      );
      expect(await page.textContent("#pressure")).toBe("ok");
      expect(await page.textContent("#pinned-budget")).toBe("512MiB");
      expect(await page.textContent("#process-count")).toBe("0");
      expect(await page.locator("canvas").count()).toBeGreaterThanOrEqual(2);

      // 12 x 8 MiB, 250 ms apart: spilled to pinned pages, leased from the broker
      proc = spawn(workloadBinary(), ["12", "8", "250", "hold"], {
        env: interposedEnv(b.socket, b.statsDir),
        stdio: ["pipe", "pipe", "inherit"],
      });
      await page.waitForFunction(
        () => document.getElementById("process-count")?.textContent === "1",
        null,
        { timeout: 10_000 },
      );
      const first = await page.textContent("#total-pinned");
      await page.waitForFunction(
        (v) => document.getElementById("total-pinned")?.textContent !== v,
        first,
        { timeout: 10_000 },
      );
      const second = await page.textContent("#total-pinned");
      expect(second).not.toBe(first);
      // all 96 MiB allocated: VRAM (2 MiB limit) + pinned on the page add up to it
      const mib = (t: string | null) =>
        Number.parseFloat(t ?? "0") *
        (t?.endsWith("GiB") ? 1024 : t?.endsWith("KiB") ? 1 / 1024 : 1);
      for (let i = 0; i < 150; i++) {
        if (
          mib(await page.textContent("#total-pinned")) +
            mib(await page.textContent("#total-vram")) >=
          96
        )
          break;
        await page.waitForTimeout(100);
      }
      const pinned = mib(await page.textContent("#total-pinned"));
      expect(pinned + mib(await page.textContent("#total-vram"))).toBe(96);
      expect(pinned).toBeGreaterThanOrEqual(90);
      const row = page.locator(`#proc-${proc.pid}`);
      expect(mib(await row.locator(".pinned-bytes").textContent())).toBe(pinned);
      expect(await page.textContent("#pinned-leased")).toMatch(/^\d+(\.\d)?MiB$/);
      // the workload's user, with its lease against the 50% quota
      const user = page.locator(`#user-${process.getuid?.()}`);
      expect(await user.locator(".quota").textContent()).toBe("256MiB");
      expect(await user.locator(".leased").textContent()).toBe(
        await page.textContent("#pinned-leased"),
      );
      expect(await page.textContent("#budget-note")).toBe("fixed budget");
      // the workload on the fake driver stages nothing; the fixture record (this test's pid) has
      // every streaming counter set
      expect(await page.locator(`#stream-${proc.pid}`).count()).toBe(0);
      expect(await page.textContent("#total-staged")).toBe("0B");
      const rec = Buffer.from(readFileSync(join(ROOT, "test/fixtures/protocol/stats.bin")));
      rec.writeInt32LE(process.pid, 24);
      writeFileSync(join(b.statsDir, `spillover-${process.getuid?.()}-${process.pid}.stats`), rec);
      const stream = page.locator(`#stream-${process.pid}`);
      await stream.waitFor({ timeout: 10_000 });
      expect(await stream.locator(".staged").textContent()).toBe("48.0GiB");
      expect(await stream.locator(".hits").textContent()).toBe("12800");
      expect(await stream.locator(".late").textContent()).toBe("7");
      expect(await stream.locator(".copy-busy").textContent()).toBe("2.75 s");
      expect(await stream.locator(".fallbacks").textContent()).toBe("2");
      expect(await stream.locator(".budget").textContent()).toBe("10.0GiB");
      expect(await page.textContent("#total-staged")).toBe("48.0GiB");
      expect(await page.locator("#processes th").allTextContents()).not.toContain("swap");
      expect(errors).toEqual([]);
      const dir = join(ROOT, "test/artifacts");
      mkdirSync(dir, { recursive: true });
      await page.screenshot({ path: join(dir, "dashboard.png"), fullPage: true });
    } finally {
      await browser.close();
    }
  }, 60_000);
});

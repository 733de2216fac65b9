// Prints the plain "N passed, N failed, N skipped" line that CI reads (vitest's own summary is
// not in a form CI parses), after one line per skipped test saying why it was skipped.
import type { Reporter, TestModule } from "vitest/node";

export default class SummaryReporter implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const why: string[] = [];
    for (const m of modules) {
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        if (state === "passed") passed++;
        else if (state === "failed") failed++;
        else {
          skipped++;
          const r = t.result();
          const note = r.state === "skipped" ? r.note : undefined;
          why.push(`skipped: ${t.fullName}: ${note ?? "no reason given"}`);
        }
      }
      if (m.state() === "failed" && [...m.children.allTests()].length === 0) failed++;
    }
    if (why.length > 0) process.stdout.write(`\n${why.join("\n")}\n`);
    process.stdout.write(`\n${passed} passed, ${failed} failed, ${skipped} skipped\n`);
  }
}

// The rendered report: claims with verdicts and reasons, per-model tables, charts that exist,
// failures with their error tails, and banners for fixture and smoke data.
import { describe, expect, it } from "vitest";
import { renderReport } from "../../bench/report/report.js";
import { entry, fixture } from "./fixture.js";

const opts = { source: "bench/results/2026-11-27-h100-80gb-hbm3.json", imgDir: "img" };

describe("renderReport", () => {
  const { markdown, images } = renderReport(fixture(), opts);

  it("marks fixture data as not a measurement", () => {
    expect(markdown).toContain("FIXTURE DATA, NOT A MEASUREMENT");
  });

  it("states the four claims with expectation, measurement and verdict", () => {
    expect(markdown).toMatch(
      /\| Decode as a fraction of the physical bound \| >= 0\.9 \| worst 0\.53 \(moe-11g, spillover 50%\) \| \*\*missed\*\* \|/,
    );
    expect(markdown).toMatch(
      /\| Decode speed-up over accelerate's CPU offload \(same VRAM limit\) \| >= 5x \| worst 6\.8x \(dense-8g, 75%\) \| met \|/,
    );
    expect(markdown).toMatch(
      /\| Overhead when the model fits .* \| <= 1% \| worst 0\.6% \(dense-20g\) \| met \|/,
    );
    expect(markdown).toMatch(
      /prefill at 2048 tokens took 8\.8x the copy bound .*streaming weights into VRAM ahead of use is not implemented yet/,
    );
  });

  it("renders each model's facts and results, with token equality against the named reference", () => {
    expect(markdown).toContain(
      "## dense-20g: llama, 10.24 B parameters, 20.47 GB of bfloat16 weights",
    );
    expect(markdown).toMatch(
      /\| llama \| 5120 \| 36 \| 13824 \| 40 \| 8 \| 128 \| 32000 \| 0 \| 0 \| bfloat16 \| 20\.47 GB/,
    );
    expect(markdown).toMatch(/\| spillover 25% \| 7\.27 GB \| 3\.34 \| 3\.59 \| 0\.93 \|/);
    expect(markdown).toMatch(/\| accelerate 25% \| 7\.27 GB \| \*\*timeout\*\* \|/);
    expect(markdown).toContain("Tokens compared against the no spillover run");
    expect(markdown).toContain("equal (21)");
  });

  it("references only charts it produced, and produces the expected ones", () => {
    const refs = [...markdown.matchAll(/!\[[^\]]*\]\(img\/([^)]+)\)/g)].map((m) => m[1]);
    expect(refs.sort()).toEqual([...images.keys()].sort());
    expect([...images.keys()].sort()).toEqual([
      "bench-bound-fraction.svg",
      "bench-decode-dense-20g.svg",
      "bench-decode-dense-8g.svg",
      "bench-decode-moe-11g.svg",
      "bench-prefill-2048.svg",
      "bench-speedup.svg",
    ]);
  });

  it("lists failed workloads with the end of their output", () => {
    expect(markdown).toContain("### jax/spillover-prealloc-default: failed after 8 s");
    expect(markdown).toContain("RESOURCE_EXHAUSTED");
    expect(markdown).toContain("### dense-20g/accelerate-25: timeout after 118 s");
  });

  it("shows the JAX and CuPy correctness table", () => {
    expect(markdown).toMatch(
      /\| jax spillover \| XLA_PYTHON_CLIENT_PREALLOCATE=false \| 4\.29 GB \| 10\.74 GB \| 2\.5x \| ok \| identical \| 17\.18 GB \| 7\.83 GB \| 0\.00 GB \|/,
    );
  });

  it("shows the program's own VMM memory placed in host, apart from the pinned pool", () => {
    const r = renderReport(
      fixture((raw) => {
        const e = entry(raw, "jax/spillover-prealloc-false");
        e.spill_stats.pinned_peak_bytes = 0;
        e.spill_stats.program_vmm_host_bytes = 13956546560;
      }),
      opts,
    );
    expect(r.markdown).toContain("| pinned pool peak | program VMM in host |");
    expect(r.markdown).toMatch(
      /\| jax spillover \| XLA_PYTHON_CLIENT_PREALLOCATE=false \|.*\| 0\.00 GB \| 13\.96 GB \|/,
    );
  });

  it("shows what the streaming engine staged per run, a dash for runs recorded without it", () => {
    const r = renderReport(
      fixture((raw) => {
        Object.assign(entry(raw, "dense-8g/spillover-50").spill_stats, {
          stream_staged_bytes: 6e9,
          stream_late_stages: 31,
        });
      }),
      opts,
    );
    expect(r.markdown).toContain(
      "| TTFT (512) | pinned peak | staged (late) | tokens vs reference |",
    );
    expect(r.markdown).toMatch(/\| spillover 50% \|[^\n]*\| 6\.00 GB \(31\) \|/);
    expect(r.markdown).toMatch(/\| spillover 25% \|[^\n]*GB \| – \|[^|\n]*\|\n/);
  });

  it("says when tokens differ and when the interposer was inactive", () => {
    const r = renderReport(
      fixture((raw) => {
        const e = entry(raw, "dense-8g/spillover-50");
        e.metrics.tokens[0] += 1;
        e.spill_stats = null;
      }),
      opts,
    );
    expect(r.markdown).toMatch(
      /\| spillover 50% \(interposer inactive\) \|.*\*\*differ\*\* from the 1st token on, 64 compared/,
    );
  });

  it("says when a run was merged from parts", () => {
    const r = renderReport(
      fixture((raw) => {
        raw.parts = [
          {
            part: "1/2",
            duration_s: 500,
            created_utc: "2026-11-27T16:00:00+00:00",
            bandwidth: null,
          },
          {
            part: "2/2",
            duration_s: 480,
            created_utc: "2026-11-27T16:10:00+00:00",
            bandwidth: null,
          },
        ];
      }),
      opts,
    );
    expect(r.markdown).toContain(
      "in 2 parts (one GPU call each; bounds use the highest bandwidths the parts measured)",
    );
  });

  it("renders a real (non-fixture) smoke run with its own banner and without bounds when the probe failed", () => {
    const r = renderReport(
      fixture((raw) => {
        raw.fixture = false;
        raw.smoke = true;
        raw.bandwidth = null;
      }),
      opts,
    );
    expect(r.markdown).not.toContain("FIXTURE DATA");
    expect(r.markdown).toContain("**Smoke run**");
    expect(r.markdown).toContain("the bandwidth probe failed: no bounds can be computed");
    expect(r.images.has("bench-bound-fraction.svg")).toBe(false);
  });
});

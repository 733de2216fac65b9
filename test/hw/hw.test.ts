// Hardware side of the planner: hwprobe output -> profile, profile save/load, the built-in tables,
// `spillover bench hw` end to end with a recorded hwprobe and with a real hwprobe build on this
// GPU-less machine (the error path), and the C tool's CPU-only measurement.

import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { profileFromHwprobe } from "../../src/hw/hwprobe.js";
import { buildMachine } from "../../src/hw/machine.js";
import {
  defaultProfilePath,
  loadProfile,
  parseProfile,
  saveProfile,
} from "../../src/hw/profile.js";
import { findGpu, GPUS, parseLink, parseRamBw } from "../../src/hw/table.js";
import { SpilloverError } from "../../src/util/errors.js";
import { ROOT, runCli } from "../helpers/cli.js";

const FIX = join(import.meta.dirname, "fixtures");
// hwprobe's own output on the H100 machine, 2026-11-27 (bench/results/runs/2026-11-27-h100-hwprobe.json).
const H100_FILE = join(FIX, "hwprobe-h100-2026-11-27.json");
const H100 = readFileSync(H100_FILE, "utf8");
const NO_GPU = readFileSync(join(FIX, "hwprobe-no-gpu.json"), "utf8");

function errOf(f: () => unknown): SpilloverError {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(SpilloverError);
    return e as SpilloverError;
  }
  throw new Error("did not throw");
}

describe("hwprobe output -> profile", () => {
  it("maps every measured number", () => {
    const p = profileFromHwprobe(H100, new Date("2026-11-27T12:00:00Z"));
    expect(p.schema).toBe("spillover-hw-profile/1");
    expect(p.measuredAt).toBe("2026-11-27T12:00:00.000Z");
    expect(p.gpu).toMatchObject({
      name: "NVIDIA H100 80GB HBM3",
      pcieGen: 5,
      pcieWidth: 16,
      vramBytes: 85017493504,
      computeCapability: "9.0",
      vramReadGBs: 3050.4,
      h2dGBs: 55.2,
      d2hGBs: 55.16,
      zeroCopyReadGBs: 51.09,
      vmmHostReadGBs: 51.02,
    });
    expect(p.cpu).toMatchObject({ threads: 16, ramReadGBs: 94.95, memTotalBytes: 135148564480 });
    expect(p.cpu.ramReadByThreads).toHaveLength(5);
  });

  it("turns the no-GPU answer into ERR_NO_GPU and garbage into ERR_NATIVE", () => {
    const e = errOf(() => profileFromHwprobe(NO_GPU, new Date()));
    expect(e.code).toBe("ERR_NO_GPU");
    expect(e.message).toMatch(/^bench hw needs an NVIDIA GPU: no CUDA driver/);
    expect(errOf(() => profileFromHwprobe("Segmentation fault", new Date())).code).toBe(
      "ERR_NATIVE",
    );
    const missing = JSON.parse(H100);
    missing.h2d_gbs = null;
    missing.errors = ["cuMemcpyHtoDAsync failed"];
    const e2 = errOf(() => profileFromHwprobe(JSON.stringify(missing), new Date()));
    expect(e2.message).toBe(
      "hwprobe could not measure host-to-device copies: cuMemcpyHtoDAsync failed",
    );
  });

  it("uses the link's max generation (an idle GPU trains down to Gen1)", () => {
    const idle = JSON.parse(H100);
    idle.pcie = { gen: 1, width: 16, max_gen: 5, max_width: 16, source: "nvml" };
    expect(profileFromHwprobe(JSON.stringify(idle), new Date()).gpu.pcieGen).toBe(5);
  });
});

describe("profile files", () => {
  it("defaults to XDG_CONFIG_HOME, else ~/.config", () => {
    expect(defaultProfilePath({ XDG_CONFIG_HOME: "/x/cfg", HOME: "/h" })).toBe(
      "/x/cfg/spillover/hw-profile.json",
    );
    expect(defaultProfilePath({ HOME: "/h" })).toBe("/h/.config/spillover/hw-profile.json");
    expect(defaultProfilePath({ XDG_CONFIG_HOME: "relative", HOME: "/h" })).toBe(
      "/h/.config/spillover/hw-profile.json",
    );
  });

  it("round-trips, and reports a bad file in one line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spill-prof-"));
    const path = join(dir, "sub", "hw-profile.json");
    const p = profileFromHwprobe(H100, new Date(0));
    await saveProfile(path, p);
    expect(await loadProfile(path)).toEqual(p);
    expect(await loadProfile(join(dir, "none.json"))).toBeUndefined();
    writeFileSync(path, "{");
    await expect(loadProfile(path)).rejects.toThrow(
      /hw-profile\.json: not valid JSON \(rerun `spillover bench hw`\)/,
    );
    writeFileSync(path, JSON.stringify({ ...p, gpu: { ...p.gpu, h2dGBs: -1 } }));
    const e = errOf(() => parseProfile(path, readFileSync(path, "utf8")));
    expect(e.code).toBe("ERR_PROFILE");
    expect(e.message).toContain("gpu.h2dGBs");
  });
});

describe("tables", () => {
  it("finds GPUs by id, by name and by the driver's device name", () => {
    expect(findGpu("4090")?.id).toBe("rtx4090");
    expect(findGpu("RTX 3060")?.id).toBe("rtx3060");
    expect(findGpu("NVIDIA H100 80GB HBM3")?.id).toBe("h100");
    expect(findGpu("NVIDIA GeForce RTX 4060 Ti")?.id).toBe("rtx4060ti");
    expect(findGpu("voodoo5")).toBeUndefined();
    for (const g of GPUS) expect(findGpu(g.id)).toBe(g);
  });

  it("parses links and DRAM setups", () => {
    expect(parseLink("gen4")).toEqual({ gen: 4, width: 16, copyGBs: 25 });
    expect(parseLink("gen4x8")).toEqual({ gen: 4, width: 8, copyGBs: 12.5 });
    expect(parseLink("51.2")).toEqual({ copyGBs: 51.2 });
    expect(parseLink("gen9")).toBeUndefined();
    expect(parseLink("gen4x3")).toBeUndefined();
    expect(parseRamBw("ddr4-3200x8")).toEqual({ gbs: 204.8, theoretical: true });
    expect(parseRamBw("DDR5-6000x2")).toEqual({ gbs: 96, theoretical: true });
    expect(parseRamBw("75.8")).toEqual({ gbs: 75.8, theoretical: false });
    expect(parseRamBw("ddr3-1600x2")).toBeUndefined();
  });

  it("builds a machine from the profile, from flags, and refuses neither", () => {
    const p = profileFromHwprobe(H100, new Date(0));
    const m = buildMachine(p, {});
    expect(m).toMatchObject({
      vramGBs: 3050.4,
      vramSource: "measured",
      h2dGBs: 55.2,
      // spillover's own path (VMM host pages) is preferred over plain zero-copy memory.
      zeroCopyGBs: 51.02,
      ramGBs: 94.95,
      ramSource: "measured",
      cpuThreads: 16,
      fp16Tflops: 989,
    });
    // --cpu-threads reads the measured curve: 4 threads 25.75 GB/s, 8 threads 43.52, 6 in between.
    const six = buildMachine(p, { cpuThreads: 6 }).ramGBs;
    expect(six).toBeGreaterThan(25.75);
    expect(six).toBeLessThan(43.52);
    const d = buildMachine(undefined, { gpu: "3060", ramBw: { gbs: 96, theoretical: true } });
    expect(d).toMatchObject({
      gpuName: "RTX 3060 12GB",
      vramGBs: 360,
      vramSource: "spec",
      h2dGBs: 25,
      ramSource: "theoretical",
    });
    expect(d.zeroCopyGBs).toBeCloseTo(25 * (50.8 / 54.5), 5);
    expect(errOf(() => buildMachine(undefined, {})).message).toContain("run `spillover bench hw`");
    // --gpu alone: the table's typical host, said to be assumed (not an error asking for --ram-bw).
    expect(buildMachine(undefined, { gpu: "4090" })).toMatchObject({
      ramGBs: 89.6,
      ramSource: "theoretical",
      cpuThreads: 8,
      assumedHost: "a typical desktop: dual-channel DDR5-5600, 8 CPU threads",
    });
    expect(
      buildMachine(undefined, { gpu: "4090", ramBw: { gbs: 60, theoretical: false } }),
    ).not.toHaveProperty("assumedHost");
    expect(errOf(() => buildMachine(undefined, { gpu: "voodoo" })).message).toMatch(
      /^--gpu "voodoo": unknown GPU/,
    );
  });
});

describe("spillover bench hw", () => {
  let dir: string;
  let probe: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "spill-bench-"));
    // The real tool, built from source like make -C native does.
    probe = join(dir, "hwprobe");
    execFileSync("gcc", [
      "-std=c11",
      "-O2",
      "-Wall",
      "-Wextra",
      "-Werror",
      "-o",
      probe,
      join(ROOT, "native/tools/hwprobe.c"),
      "-ldl",
      "-lpthread",
    ]);
  });

  it("saves the profile from a recorded hwprobe run and plan uses it", async () => {
    const fake = join(dir, "fake-hwprobe.sh");
    writeFileSync(fake, `#!/bin/sh\ncat '${H100_FILE}'\n`);
    chmodSync(fake, 0o755);
    const cfg = join(dir, "cfg");
    const r = await runCli(["bench", "hw", "--hwprobe", fake], { XDG_CONFIG_HOME: cfg });
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    expect(r.out).toContain("host->device copy    55.2 GB/s");
    expect(r.out).toContain(`saved ${join(cfg, "spillover/hw-profile.json")}`);
    const saved = await loadProfile(join(cfg, "spillover/hw-profile.json"));
    expect(saved?.gpu.zeroCopyReadGBs).toBe(51.09);
    const plan = await runCli(["plan", "test/fixtures/models/mixtral-config", "--json"], {
      XDG_CONFIG_HOME: cfg,
    });
    expect(plan.code).toBe(0);
    const json = JSON.parse(plan.out);
    expect(json.machine).toMatchObject({
      vramGBs: 3050.4,
      ramGBs: 94.95,
      vramSource: "measured",
    });
    // Mixtral-8x7B in bf16 (93 GB) does not fit the 80 GB card. This machine's RAM reads at
    // 95 GB/s with 16 threads (66 GB/s as llama.cpp's CPU kernels read it), faster than the
    // 51 GB/s the GPU reads host pages at: computing the overflow experts on the CPU wins.
    expect(json.strategies.find((s: { id: string }) => s.id === "all-vram").feasible).toBe(false);
    expect(json.winner.id).toBe("moe-cpu");
    expect(json.winner.why).toMatch(
      /^CPU offload wins .*your RAM \(95 GB\/s\) is faster than your PCIe link \(51 GB\/s zero-copy\)/,
    );
  });

  it("says plainly that there is no GPU (real hwprobe, no driver)", async () => {
    const r = await runCli(["bench", "hw", "--hwprobe", probe, "--profile", join(dir, "p.json")], {
      SPILLOVER_LIBCUDA: "/nonexistent/libcuda.so.1",
    });
    expect(r.code).not.toBe(0);
    expect(r.out).toBe("");
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toMatch(/^spillover: bench hw needs an NVIDIA GPU: no CUDA driver: /);
  });

  // The CPU-only test double of libcuda (native/test/fake) answers cuInit and device queries but
  // knows none of hwprobe's kernels: bench hw must fail in one line saying it is the test double
  // (not blaming the driver version).
  const fakeCuda = join(ROOT, "native/build/fake/libcuda.so.1");
  it.skipIf(!existsSync(fakeCuda))(
    "says in one line that SPILLOVER_LIBCUDA is the test double, not an old driver",
    async () => {
      const r = await runCli(
        ["bench", "hw", "--hwprobe", probe, "--profile", join(dir, "p2.json")],
        {
          SPILLOVER_LIBCUDA: fakeCuda,
          LD_LIBRARY_PATH: join(ROOT, "native/build/fake"),
        },
      );
      expect(r.code).toBe(1);
      expect(r.err.trim()).toBe(
        "spillover: bench hw needs an NVIDIA GPU: this libcuda is spillover's CPU test double (native/build/fake), not an NVIDIA driver; unset SPILLOVER_LIBCUDA (or LD_LIBRARY_PATH) to measure the NVIDIA driver",
      );
      expect(r.err).not.toContain("CUDA 13 driver");
      expect(existsSync(join(dir, "p2.json"))).toBe(false);
    },
  );

  it("refuses an unknown benchmark and a missing tool in one line", async () => {
    const a = await runCli(["bench", "disk"]);
    expect(a.code).toBe(2);
    expect(a.err).toMatch(/^spillover: bench "disk": unknown benchmark \(available: hw/);
    const b = await runCli(["bench", "hw", "--hwprobe", "/nonexistent/hwprobe"]);
    expect(b.code).toBe(1);
    expect(b.err.trim()).toBe(
      "spillover: hwprobe not found at /nonexistent/hwprobe; build it with make -C native",
    );
  });

  it("measures RAM read bandwidth with every thread count (hwprobe --cpu-only)", () => {
    const out = execFileSync(probe, ["--cpu-only", "--ram-bytes", "64"], { encoding: "utf8" });
    const j = JSON.parse(out);
    expect(j.ok).toBe(true);
    expect(j.cpu.ram_read_gbs).toBeGreaterThan(0);
    const threads = j.cpu.ram_read_by_threads.map((x: { threads: number }) => x.threads);
    expect(threads[0]).toBe(1);
    expect(threads[threads.length - 1]).toBe(j.cpu.threads);
    expect(j.cpu.mem_total_bytes).toBeGreaterThan(0);
  });
});

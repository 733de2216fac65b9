// fake.test.ts: checks that the CPU test double of the CUDA driver (native/test/fake) behaves like
// the real driver where the interposer depends on it: VMM remap semantics, OOM at FAKE_CUDA_VRAM,
// cuGetProcAddress resolution, the demo kernels, NVML agreeing with the driver. Each scenario is a
// C program (fake_selftest) that prints "ok <check>" lines and "PASS <scenario>".
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const fakeDir = path.join(root, "native/build/fake");
const selftest = path.join(fakeDir, "fake_selftest");

function runScenario(
  name: string,
  env: Record<string, string> = {},
): { code: number | null; out: string } {
  const r = spawnSync(selftest, [name], {
    encoding: "utf8",
    env: { ...process.env, LD_LIBRARY_PATH: fakeDir, ...env },
    timeout: 60_000,
  });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

beforeAll(() => {
  execFileSync("make", ["-s", "-C", path.join(root, "native/test/fake")], { stdio: "pipe" });
});

describe("fake libcuda.so.1", () => {
  it("with two GPUs: VRAM per GPU, access descriptors per GPU (a copy on the other GPU faults), peer access for kernels", () => {
    const { code, out } = runScenario("peers", { FAKE_CUDA_DEVICES: "2" });
    expect(out).toContain("ok a copy on device 1 of device 0's page faults");
    expect(out).toContain("ok peer copy bytes equal");
    expect(out).toContain("ok the kernel faults again after disabling");
    expect(out).toContain("PASS peers");
    expect(code).toBe(0);
  });

  it("keeps data with the physical handle across unmap/remap and frees VRAM only when the last mapping goes", () => {
    const { code, out } = runScenario("vmm");
    expect(out).toContain("ok copy before cuMemSetAccess faults");
    expect(out).toContain("ok data followed the handle across the remap");
    expect(out).toContain("ok mapped handles still hold VRAM after release");
    expect(out).toContain("ok VRAM freed when the last mapping goes");
    expect(out).toContain("PASS vmm");
    expect(code).toBe(0);
  });

  it("returns CUDA_ERROR_OUT_OF_MEMORY once FAKE_CUDA_VRAM is used up, for cuMemAlloc and DEVICE cuMemCreate", () => {
    const { code, out } = runScenario("oom", { FAKE_CUDA_VRAM: "64M" });
    expect(out).toContain("ok alloc 32 MiB more is OUT_OF_MEMORY");
    expect(out).toContain("ok DEVICE cuMemCreate beyond VRAM is OOM");
    expect(out).toContain("ok HOST_NUMA cuMemCreate does not use VRAM");
    expect(out).toContain("PASS oom");
    expect(code).toBe(0);
  });

  it("resolves base name + version + flags to this library's versioned and _ptsz symbols", () => {
    const { code, out } = runScenario("procaddr");
    expect(out).toContain("ok cuMemAlloc@13000 -> cuMemAlloc_v2");
    expect(out).toContain("ok cuLaunchKernel@12000 -> cuLaunchKernel_ptsz");
    expect(out).toContain("ok cuMemCreate@10000 -> NULL");
    expect(out).toContain("PASS procaddr");
    expect(code).toBe(0);
  });

  it("binds its cuGetProcAddress table to its own functions even when a preload exports the same names", () => {
    const { code, out } = runScenario("procaddr", {
      LD_PRELOAD: path.join(fakeDir, "fake_shadow.so"),
    });
    expect(out).toContain("ok cuMemAlloc@13000 -> cuMemAlloc_v2");
    expect(out).toContain("PASS procaddr");
    expect(code).toBe(0);
  });

  it("runs the demo's kernels on the CPU and faults on unmapped VA", () => {
    const { code, out } = runScenario("kernels");
    expect(out).toContain("ok verify counts the 2 corrupted words");
    expect(out).toContain("ok a kernel writing unmapped VA faults");
    expect(code).toBe(0);
  });

  it("models CUDA graphs: capture records, launches run every node (child graphs too), exec set-params and update apply", () => {
    const { code, out } = runScenario("graphs");
    expect(out).toContain("ok a captured launch does not run");
    expect(out).toContain("ok a launch ran the kernel, memset and child graph nodes");
    expect(out).toContain("ok the exec ran the new parameters");
    expect(out).toContain("ok a captured graph launch is a child graph node");
    expect(out).toContain("PASS graphs");
    expect(code).toBe(0);
  });

  it("validates copies against allocation bounds", () => {
    const { code, out } = runScenario("copies");
    expect(out).toContain("ok copy past the allocation end");
    expect(code).toBe(0);
  });

  it("refuses HOST_NUMA physical memory under FAKE_CUDA_NO_HOST_NUMA=1", () => {
    const { code, out } = runScenario("nohostnuma", { FAKE_CUDA_NO_HOST_NUMA: "1" });
    expect(out).toContain("ok HOST_NUMA cuMemCreate is NOT_SUPPORTED");
    expect(code).toBe(0);
  });

  it("without the knob, HOST_NUMA works (the same scenario fails)", () => {
    const { code, out } = runScenario("nohostnuma");
    expect(out).toContain("FAIL HOST_NUMA VMM reported unsupported");
    expect(code).toBe(1);
  });

  it("fails cuInit with one clear line on a bad FAKE_CUDA_VRAM", () => {
    const { code, out } = runScenario("copies", { FAKE_CUDA_VRAM: "lots" });
    expect(out).toContain("FAKE_CUDA_VRAM=lots is not a size");
    expect(out).toContain("FAIL cuInit");
    expect(code).toBe(1);
  });
});

describe("fake libnvidia-ml.so.1", () => {
  it("reports the same total and used memory as the fake driver", () => {
    const { code, out } = runScenario("nvml");
    expect(out).toContain("ok NVML total == cuDeviceTotalMem");
    expect(out).toContain("ok NVML used/free follow the fake driver");
    expect(code).toBe(0);
  });
});

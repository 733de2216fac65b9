// doctor's checks with injected inputs (each status reachable), and the real probe against the
// fake driver when the native build has made it.

import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  CHECKS,
  type DoctorInputs,
  type ProbeOutput,
  runChecks,
} from "../../src/cli/commands/doctor-checks.js";
import { parseGpuCsv } from "../../src/gpu/nvidia-smi.js";
import { ROOT } from "../broker/helpers.js";
import { runCli } from "../helpers/cli.js";

const H100 = "0, GPU-abc, NVIDIA H100 80GB HBM3, 81559, 0, 580.95.05, 5, 5, 16, 16\n";
const device = {
  index: 0,
  name: "H100",
  total: 85e9,
  cc: "9.0",
  vmm: 1,
  hostNumaId: 0,
  hostNumaVmm: 1,
};
const probeOk: ProbeOutput = {
  libcuda: "libcuda.so.1",
  driver: true,
  init: 0,
  version: 13000,
  devices: [
    { index: 0, name: "H100", total: 85e9, cc: "9.0", vmm: 1, hostNumaId: 0, hostNumaVmm: 1 },
  ],
  lib: { path: "/x/libspillover.so", loads: true },
};

function inputs(over: Partial<DoctorInputs> = {}): DoctorInputs {
  return {
    gpus: async () => ({ ok: true, gpus: parseGpuCsv(H100), cudaVersion: "13.0" }),
    probe: async () => probeOk,
    meminfo: async () =>
      "MemTotal: 263000000 kB\nMemAvailable: 250000000 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n",
    limits: async () =>
      "Limit Soft Limit Hard Limit Units\nMax locked memory         unlimited            unlimited            bytes\n",
    psi: async () => "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n",
    glibc: () => "2.39",
    library: () => ({ path: "/x/libspillover.so" }),
    preload: async () => undefined,
    broker: async () => "/run/user/1000/spillover/broker.sock",
    ...over,
  };
}

const byName = async (i: DoctorInputs) =>
  Object.fromEntries((await runChecks(i)).map((r) => [r.name, r.result]));

describe("doctor checks", () => {
  it("all pass on a good machine", async () => {
    const r = await byName(inputs());
    for (const c of CHECKS) expect(r[c.name]?.status, c.name).toBe("pass");
    expect(r["NVIDIA driver"]?.detail).toBe(
      "driver 580.95.05, CUDA 13.0; 0: NVIDIA H100 80GB HBM3 79.6GiB",
    );
    expect(r["PCIe link"]?.detail).toBe("0: Gen5 x16 (max Gen5 x16)");
  });

  it("fails without a driver, a library, VMM or host NUMA support, and warns on weak settings", async () => {
    const r = await byName(
      inputs({
        gpus: async () => ({ ok: false, reason: "nvidia-smi not found" }),
        probe: async () => ({ ...probeOk, devices: [{ ...device, hostNumaVmm: 0 }] }),
        library: () => ({ error: "libspillover.so not found" }),
        limits: async () =>
          "Max locked memory         65536                65536                bytes\n",
        meminfo: async () => "MemTotal: 8000000 kB\nMemAvailable: 4000000 kB\n",
        psi: async () => undefined,
        broker: async () => undefined,
        glibc: () => "2.12",
      }),
    );
    expect(r["NVIDIA driver"]).toMatchObject({
      status: "fail",
      detail: "nvidia-smi not found", // not "nvidia-smi: nvidia-smi not found"
      fix: expect.stringContaining("install the NVIDIA driver"),
    });
    // and where to see spillover without a GPU
    expect(r["NVIDIA driver"]?.fix).toContain(
      "`npm run demo` shows spillover at work on its CPU test double (simulated)",
    );
    expect(r["VMM and host NUMA memory"]).toMatchObject({
      status: "fail",
      detail: "no HOST_NUMA cuMemCreate on device 0",
    });
    expect(r["libspillover.so"]).toMatchObject({ status: "fail", fix: "make -C native" });
    expect(r["memlock limit"]).toMatchObject({
      status: "warn",
      detail: expect.stringContaining("cudaHostRegister"),
    });
    expect(r["RAM and swap"]?.status).toBe("warn");
    expect(r["memory pressure (PSI)"]?.status).toBe("warn");
    expect(r.broker?.status).toBe("warn");
    expect(r.glibc?.status).toBe("fail");
  });

  it("warns on a PCIe link below its maximum and fails a library ld.so will not preload", async () => {
    const r = await byName(
      inputs({
        gpus: async () => ({
          ok: true,
          gpus: parseGpuCsv(H100.replace("5, 5, 16, 16", "1, 5, 16, 16")),
        }),
        preload: async () =>
          "ERROR: ld.so: object '/x/libspillover.so' from LD_PRELOAD cannot be preloaded",
      }),
    );
    expect(r["PCIe link"]).toMatchObject({ status: "warn", detail: "0: Gen1 x16 (max Gen5 x16)" });
    expect(r["libspillover.so"]).toMatchObject({
      status: "fail",
      detail: expect.stringContaining("cannot be preloaded"),
    });
  });

  it("a bad streaming knob in the environment stops doctor with one line naming it", async () => {
    const r = await runCli(["doctor"], { PATH: process.env.PATH, SPILLOVER_STREAM_BUDGET: "half" });
    expect(r.code).toBe(2);
    expect(r.out).toBe("");
    expect(r.err).toBe(
      'spillover: SPILLOVER_STREAM_BUDGET="half": expected a positive size such as 512M, 8G or 1.5GiB (bytes if no unit), or a percentage from 1% to 100%\n',
    );
  });

  it("a crashing check is a failure, not a crash", async () => {
    const r = await runChecks(inputs(), [
      { name: "boom", run: async () => Promise.reject(new Error("x")) },
    ]);
    expect(r[0]?.result).toMatchObject({ status: "fail", detail: "check crashed: Error: x" });
  });
});

const probe = join(ROOT, "native/build/spillover-probe");
const fake = join(ROOT, "native/build/fake/libcuda.so.1");

describe.skipIf(!existsSync(probe) || !existsSync(fake))(
  "spillover-probe against the fake driver",
  () => {
    it("reports VMM and host NUMA support and loads the library", () => {
      const lib = join(ROOT, "native/build/libspillover.so");
      const out = JSON.parse(
        execFileSync(probe, ["--lib", lib], {
          env: { ...process.env, SPILLOVER_LIBCUDA: fake },
          encoding: "utf8",
        }),
      ) as ProbeOutput;
      expect(out).toMatchObject({ driver: true, init: 0, lib: { path: lib, loads: true } });
      expect(out.devices?.[0]).toMatchObject({ vmm: 1, hostNumaVmm: 1 });
    });

    it("doctor with SPILLOVER_LIBCUDA at the test double says so, and names a missing libcuda once", async () => {
      const env = { PATH: process.env.PATH, SPILLOVER_LIBCUDA: fake };
      const r = await runCli(["doctor", "--json"], env);
      const checks = Object.fromEntries(
        (JSON.parse(r.out) as { name: string; result: { status: string; detail: string } }[]).map(
          (c) => [c.name, c.result],
        ),
      );
      expect(checks["libcuda loads"]).toMatchObject({
        status: "warn",
        detail: `${fake} is spillover's CPU test double (native/build/fake), not an NVIDIA driver: the checks below describe the double`,
      });
      const missing = await runCli(["doctor", "--json"], {
        PATH: process.env.PATH,
        SPILLOVER_LIBCUDA: "/nonexistent/libcuda.so.1",
      });
      const detail = (
        JSON.parse(missing.out) as { name: string; result: { detail: string } }[]
      ).find((c) => c.name === "libcuda loads")?.result.detail;
      expect(detail).toMatch(/^\/nonexistent\/libcuda\.so\.1: /);
      expect(detail).not.toMatch(/libcuda\.so\.1: \/nonexistent\/libcuda\.so\.1/);
    });

    it("says there is no driver when libcuda is missing", () => {
      const out = JSON.parse(
        execFileSync(probe, [], {
          env: { ...process.env, SPILLOVER_LIBCUDA: "/nonexistent/libcuda.so.1" },
          encoding: "utf8",
        }),
      ) as ProbeOutput;
      expect(out).toMatchObject({
        driver: false,
        error: expect.stringContaining("/nonexistent/libcuda.so.1"),
      });
    });
  },
);

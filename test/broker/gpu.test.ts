// GPU facts from nvidia-smi's CSV (a fake nvidia-smi script stands in for the driver), and the
// broker's status carrying them.

import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parseGpuCsv, queryGpus } from "../../src/gpu/nvidia-smi.js";

function fakeSmi(csv: string): string {
  const d = mkdtempSync(join(tmpdir(), "spillover-smi-"));
  const p = join(d, "nvidia-smi");
  writeFileSync(
    p,
    `#!/bin/sh\ncase "$1" in --query-gpu=*) printf '${csv}';; *) echo '| NVIDIA-SMI 580.95.05   Driver Version: 580.95.05   CUDA Version: 13.0 |';; esac\n`,
  );
  chmodSync(p, 0o755);
  return p;
}

describe("nvidia-smi", () => {
  it("parses the CSV, with [N/A] fields as unknown", () => {
    expect(
      parseGpuCsv(
        "0, GPU-1, NVIDIA H100 80GB HBM3, 81559, 1024, 580.95.05, 5, 5, 16, 16\n1, GPU-2, X, 100, 0, 580, [N/A], [N/A], [N/A], [N/A]\n\n",
      ),
    ).toEqual([
      {
        index: 0,
        uuid: "GPU-1",
        name: "NVIDIA H100 80GB HBM3",
        memoryTotal: 81559 * 2 ** 20,
        memoryUsed: 2 ** 30,
        driverVersion: "580.95.05",
        pcieGenCurrent: 5,
        pcieGenMax: 5,
        pcieWidthCurrent: 16,
        pcieWidthMax: 16,
      },
      {
        index: 1,
        uuid: "GPU-2",
        name: "X",
        memoryTotal: 100 * 2 ** 20,
        memoryUsed: 0,
        driverVersion: "580",
        pcieGenCurrent: undefined,
        pcieGenMax: undefined,
        pcieWidthCurrent: undefined,
        pcieWidthMax: undefined,
      },
    ]);
  });

  it("runs nvidia-smi asynchronously and reads the CUDA version from its banner", async () => {
    const q = await queryGpus({
      NVIDIA_SMI: fakeSmi("0, GPU-1, H100, 81559, 0, 580.95.05, 4, 5, 16, 16\\n"),
    });
    expect(q).toMatchObject({
      ok: true,
      cudaVersion: "13.0",
      gpus: [{ index: 0, pcieGenCurrent: 4 }],
    });
  });

  it("says why when there is no nvidia-smi", async () => {
    expect(await queryGpus({ NVIDIA_SMI: "/nonexistent/nvidia-smi" })).toEqual({
      ok: false,
      reason: "/nonexistent/nvidia-smi not found",
    });
  });
});

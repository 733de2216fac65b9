// The hook table (native/src/hooks.def, which includes fenced.def) is the one list of hooked names:
// native/tools/check_lib.sh holds the library's cu*/nvml* exports to it, and t_paths checks every
// name in it through dlsym instead of keeping its own list.
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, test } from "vitest";
import { build, buildScenarios, root, runScenario } from "./helpers.js";

const src = path.join(root, "native/src");

/** The hooked names, as the C preprocessor expands hooks.def. */
function hookNames(def: string): { cu: string[]; nvml: string[] } {
  const out = execFileSync(
    "cc",
    ["-E", "-P", "-x", "c", `-I${src}`, "-DSP_HOOK_CU(n)=CU n", "-DSP_HOOK_NVML(n)=NVML n", def],
    { encoding: "utf8" },
  );
  const pick = (kind: string) =>
    out
      .split("\n")
      .map((l) => l.trim().split(/\s+/))
      .filter((w) => w[0] === kind && w[1])
      .map((w) => w[1] as string);
  return { cu: pick("CU"), nvml: pick("NVML") };
}

function checkLib(def: string) {
  return spawnSync(
    "sh",
    [
      path.join(root, "native/tools/check_lib.sh"),
      path.join(build, "libspillover.so"),
      path.join(build, "obj"),
      def,
    ],
    { encoding: "utf8" },
  );
}

/** A copy of hooks.def (and the fenced.def it includes) with `edit` applied. */
function editedDef(edit: (text: string) => string): string {
  const d = mkdtempSync(path.join(os.tmpdir(), "spillover-hooks-"));
  copyFileSync(path.join(src, "fenced.def"), path.join(d, "fenced.def"));
  const def = path.join(d, "hooks.def");
  writeFileSync(def, edit(readFileSync(path.join(src, "hooks.def"), "utf8")));
  return def;
}

beforeAll(() => {
  buildScenarios();
});

describe("one hook table", () => {
  test("check_lib.sh: the exported cu*/nvml* names are exactly hooks.def", () => {
    const ok = checkLib(path.join(src, "hooks.def"));
    expect(ok.stderr).toBe("");
    expect(ok.status).toBe(0);
    const extra = checkLib(editedDef((t) => `${t}SP_HOOK_CU(cuNotExportedAnywhere)\n`));
    expect(extra.status).toBe(1);
    expect(extra.stderr).toMatch(/in .*hooks\.def but not exported: cuNotExportedAnywhere/);
    const fewer = checkLib(editedDef((t) => t.replace("SP_HOOK_CU(cuMemGetInfo_v2)\n", "")));
    expect(fewer.status).toBe(1);
    expect(fewer.stderr).toMatch(/exported but not in .*hooks\.def: cuMemGetInfo_v2/);
  });

  test("t_paths checks every name of hooks.def through dlsym on the driver's handles", () => {
    const { cu, nvml } = hookNames(path.join(src, "hooks.def"));
    expect(cu).toContain("cuMemAlloc_v2");
    expect(cu).toContain("cuMemcpyAsync"); // from fenced.def
    const dir = mkdtempSync(path.join(os.tmpdir(), "spillover-hooks-stats-"));
    const r = runScenario("t_paths", ["dlsym"], dir);
    expect(r.stdout).toMatch(
      new RegExp(`ok dlsym cu=${cu.length} \\(\\d+ in this driver\\) nvml=${nvml.length}\\n`),
    );
    expect(r.code).toBe(0);
  });
});

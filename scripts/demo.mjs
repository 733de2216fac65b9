// demo.mjs: `npm run demo`. Runs the proof program (native/build/demo/spill_demo) under the
// spillover interposer: it allocates 3x a VRAM limit, writes and verifies every byte, and prints
// where the pages live. On a machine without an NVIDIA GPU it runs against spillover's CPU test
// double of the driver (native/build/fake) and says so. Builds nothing: `npm install` did.
// Extra arguments go to spill_demo (e.g. `npm run demo -- --json`, `npm run demo -- --bandwidth`).
// Environment: SPILLOVER_VRAM_LIMIT (default 4G on a GPU, 256M simulated; NN% is of the card's
// physical VRAM, as in the interposer, whose budget the demo reads back), SPILLOVER_DEMO_FAKE=1
// forces the test double.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const build = path.join(root, "native/build");
const demo = path.join(build, "demo/spill_demo");
const interposer = path.join(build, "libspillover.so");
const fakeDir = path.join(build, "fake");

/** True when an NVIDIA driver is usable: its control device exists and libcuda.so.1 is known to the loader. */
function hasNvidiaGpu() {
  if (!existsSync("/dev/nvidiactl")) return false;
  const ld = spawnSync("/sbin/ldconfig", ["-p"], { encoding: "utf8" });
  if (ld.status === 0 && ld.stdout.includes("libcuda.so.1")) return true;
  const dirs = [
    "/usr/lib/x86_64-linux-gnu",
    "/usr/lib64",
    "/usr/lib/aarch64-linux-gnu",
    "/usr/local/nvidia/lib64",
  ];
  return dirs.some((d) => existsSync(path.join(d, "libcuda.so.1")));
}

function main() {
  for (const [file, what] of [
    [demo, "the demo program"],
    [interposer, "libspillover.so"],
  ]) {
    if (!existsSync(file)) {
      console.error(
        `spillover demo: ${what} is not built (${path.relative(root, file)}); run \`npm install\` or \`make -C native\` first`,
      );
      return 1;
    }
  }
  const simulated = process.env.SPILLOVER_DEMO_FAKE === "1" || !hasNvidiaGpu();
  const env = {
    ...process.env,
    LD_PRELOAD: [interposer, process.env.LD_PRELOAD].filter(Boolean).join(":"),
  };
  if (simulated) {
    if (!existsSync(path.join(fakeDir, "libcuda.so.1"))) {
      console.error(
        "spillover demo: the CPU test double is not built (native/build/fake); run `make -C native` first",
      );
      return 1;
    }
    console.log("No NVIDIA GPU found: running against spillover's CPU test double (simulated)");
    env.LD_LIBRARY_PATH = [fakeDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(":");
    env.FAKE_CUDA_VRAM = process.env.FAKE_CUDA_VRAM ?? "1G";
    env.SPILLOVER_VRAM_LIMIT = process.env.SPILLOVER_VRAM_LIMIT ?? "256M";
  } else {
    env.SPILLOVER_VRAM_LIMIT = process.env.SPILLOVER_VRAM_LIMIT ?? "4G";
  }
  const args = process.argv.slice(2);
  // The CPU double copies with memcpy: keep the bandwidth mode's buffers small there.
  if (simulated && args.includes("--bandwidth")) {
    if (!args.includes("--bw-size")) args.push("--bw-size", "256M");
    if (!args.includes("--copy-size")) args.push("--copy-size", "64M");
  }
  if (!args.includes("--json")) {
    console.log(
      `running ${[path.relative(root, demo), ...args].join(" ")} with SPILLOVER_VRAM_LIMIT=${env.SPILLOVER_VRAM_LIMIT}`,
    );
  }
  const r = spawnSync(demo, args, { env, stdio: "inherit" });
  if (r.error) {
    console.error(`spillover demo: could not run ${demo}: ${r.error.message}`);
    return 1;
  }
  return r.status ?? 1;
}

process.exitCode = main();

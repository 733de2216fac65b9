// interposer.test.ts: runs the C scenario programs of native/test/t_*.c under
// LD_PRELOAD=libspillover.so against the CPU fake driver (native/test/fake). Each test is one
// scenario: the program exits 0 and prints "ok <scenario>" only if every check in it held.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { build, buildScenarios, MiB, type Ran, runScenario } from "./helpers.js";

let statsDir = "";

// helpers.ts's budget (64 MiB of VRAM, 16 MiB reserve: large allocations get 48 MiB, then host
// pages), with first-come placement (SPILLOVER_MIGRATE=0) unless a test turns placement by use
// on: the mechanics tests count pages.
function run(prog: string, args: string[], env: Record<string, string> = {}): Ran {
  return runScenario(prog, args, statsDir, { SPILLOVER_MIGRATE: "0", ...env });
}

function expectOk(r: Ran, line: string): void {
  expect(r.stdout + r.stderr).toContain(line);
  expect(r.stdout).not.toContain("FAIL");
  expect(r.code).toBe(0);
}

beforeAll(() => {
  buildScenarios();
  statsDir = mkdtempSync(path.join(os.tmpdir(), "spillover-stats-"));
});

afterAll(() => {
  if (statsDir) rmSync(statsDir, { recursive: true, force: true });
});

describe("libspillover.so interception", () => {
  test("the runtime's bootstrap (dlopen + cuGetProcAddress_v2 by base name) gets every hook", () => {
    const r = run("t_paths", ["bootstrap"]);
    expectOk(r, "ok bootstrap");
    expect(r.stdout).toContain(`bootstrap total=${(64 + 128) * MiB}`);
  });

  test("dlsym on libcuda/NVML handles, RTLD_DEFAULT, RTLD_NEXT and the PLT reach the hooks; other names untouched", () => {
    expectOk(run("t_paths", ["dlsym"]), "ok dlsym");
  });

  test("without the interposer the same checks fail (the scenarios can fail)", () => {
    const r = run("t_paths", ["bootstrap"], { LD_PRELOAD: "" });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain("FAIL");
  });
});

describe("tiered allocations", () => {
  test("fits -> driver; past the VRAM budget -> VRAM pages, then pinned host pages, straddling", () => {
    expectOk(run("t_tiers", ["place"]), "ok place");
  });

  test("freed pages go back to their pools and are reused without new cuMemCreate", () => {
    expectOk(run("t_tiers", ["reuse"]), "ok reuse");
  });

  test("CUDA_ERROR_OUT_OF_MEMORY exactly when the VRAM and pinned budgets are spent", () => {
    expectOk(run("t_tiers", ["oom"], { SPILLOVER_PINNED_LIMIT: "64M" }), "ok oom");
  });

  test("memcpy and memset across the VRAM/host boundary keep every byte", () => {
    expectOk(run("t_tiers", ["copy"]), "ok copy");
  });

  test("cuMemFreeAsync defers the release to the stream; pages are reused after", () => {
    expectOk(run("t_tiers", ["async"]), "ok async");
  });

  test("the program's own cuMemCreate: whole within the budget, split into VRAM and host pages past it, both counted", () => {
    expectOk(run("t_tiers", ["vmm"]), "ok vmm");
  });

  // Placement alone: the streaming engine off, or whether a function stages would depend on how
  // fast this machine runs the fake's kernels (a staged range ranks below ranges read in place).
  const PLACEMENT = { SPILLOVER_MIGRATE: "1", SPILLOVER_STREAM: "0" };

  test("a host range that launches keep naming moves into VRAM once there is room; one named once long before stays", () => {
    expectOk(run("t_migrate", ["promote"], PLACEMENT), "ok promote");
  });

  test("VRAM full above the reserve: an unused range's VRAM pages go to host so a hot range can move in, bytes kept", () => {
    expectOk(run("t_migrate", ["evict"], PLACEMENT), "ok evict");
  });

  test("SPILLOVER_MIGRATE=0: the same launches move nothing", () => {
    expectOk(run("t_migrate", ["off"], { SPILLOVER_MIGRATE: "0" }), "ok off");
  });

  // The streaming engine: pages stay where they are put (SPILLOVER_MIGRATE=0), and every function
  // stages after its timed launches (SPILLOVER_STREAM_RATIO=0: the fake's CPU kernels are no
  // measure of a GPU's re-reading).
  const STREAM = { SPILLOVER_MIGRATE: "0", SPILLOVER_STREAM: "1", SPILLOVER_STREAM_RATIO: "0" };
  test("stream: a host range read by repeated launches is staged and the kernels see its exact words", () => {
    expectOk(run("t_stream", ["exact"], STREAM), "ok exact");
  });

  test("stream: a kernel writes the staged copy; a copy out of the range sees the written words", () => {
    expectOk(run("t_stream", ["written"], STREAM), "ok written");
  });

  test("stream: ranges cycling through a smaller arena are staged ahead, and written pages come back", () => {
    expectOk(run("t_stream", ["ring"], STREAM), "ok ring");
  });

  test("stream: two streams read the same staged range", () => {
    expectOk(run("t_stream", ["streams"], STREAM), "ok streams");
  });

  test("stream: a failed staging copy falls back to reading in place, counted", () => {
    expectOk(
      run("t_stream", ["fallback"], { ...STREAM, FAKE_CUDA_FAIL_ASYNC_COPY: "1" }),
      "ok fallback",
    );
  });

  test("stream: a staged range freed while written: nothing of it reaches the next range", () => {
    expectOk(run("t_stream", ["free"], STREAM), "ok free");
  });

  test("stream: an arena idle for a second goes back to placement and is made again when staging resumes", () => {
    expectOk(run("t_stream", ["idle"], STREAM), "ok idle");
  });

  test("stream: a launch that does not stage unstages a written range first and reads its words", () => {
    expectOk(run("t_stream", ["readonce"], STREAM), "ok readonce");
  });

  test("stream: graph replays read the words staging launches wrote, also with placement off", () => {
    expectOk(run("t_stream", ["graph"], STREAM), "ok graph");
  });

  test("stream: five streams reading and writing one staged range see the last words written", () => {
    expectOk(run("t_stream", ["fivestreams"], STREAM), "ok fivestreams");
  });

  test("stream: a launch in a second context of the device reads the words a staging launch wrote", () => {
    expectOk(run("t_stream", ["otherctx"], STREAM), "ok otherctx");
  });

  test.each(["exact", "written", "ring"])(
    "stream with SPILLOVER_STREAM_COPY=kernel (the SMs copy and hash): %s",
    (scenario) => {
      expectOk(
        run("t_stream", [scenario], { ...STREAM, SPILLOVER_STREAM_COPY: "kernel" }),
        `ok ${scenario}`,
      );
    },
  );

  test("stream: after graph replays read the ranges in place, staging rounds are staged ahead again", () => {
    expectOk(run("t_stream", ["phases"], STREAM), "ok phases");
  });

  test("stream: ranges read forward then backward every round are staged ahead, at the turns too", () => {
    expectOk(run("t_stream", ["turns"], STREAM), "ok turns");
  });

  test("SPILLOVER_STREAM=0: nothing staged, the same words", () => {
    expectOk(run("t_stream", ["off"], { ...STREAM, SPILLOVER_STREAM: "0" }), "ok off");
  });

  test("placement: a fresh allocation that does not fit evicts the coldest VRAM pages first", () => {
    expectOk(run("t_placement", ["fresh"], { SPILLOVER_MIGRATE: "1" }), "ok fresh");
  });

  test("placement: the program's cuMemCreate split across tiers, mapped, unmapped, remapped and mapped twice", () => {
    expectOk(run("t_placement", ["vmm"], { SPILLOVER_MIGRATE: "1" }), "ok vmm");
  });

  test("placement: host pages of a program mapping that launches keep naming move into VRAM", () => {
    expectOk(run("t_placement", ["vmm-hot"], { SPILLOVER_MIGRATE: "1" }), "ok vmm-hot");
  });

  test("placement: an exportable cuMemCreate stays one VRAM handle; a cold range leaves to make room", () => {
    expectOk(run("t_placement", ["exportable"], { SPILLOVER_MIGRATE: "1" }), "ok exportable");
  });

  test("placement: a repeating step moves no page after warm-up", () => {
    expectOk(run("t_placement", ["steady"], { SPILLOVER_MIGRATE: "1" }), "ok steady");
  });

  test("a host range named only by graph nodes (captured kernel, copy, memset; a child graph's kernel node) moves into VRAM after graph launches, bytes kept", () => {
    expectOk(run("t_graph", ["promote"], { SPILLOVER_MIGRATE: "1" }), "ok promote");
  });

  test("SPILLOVER_MIGRATE=0: graph launches move nothing", () => {
    expectOk(run("t_graph", ["off"], { SPILLOVER_MIGRATE: "0" }), "ok off");
  });

  test("a graph whose kernel node was re-pointed (cuGraphExecKernelNodeSetParams) charges the new range, not the old", () => {
    expectOk(run("t_graph", ["setparams"], { SPILLOVER_MIGRATE: "1" }), "ok setparams");
  });

  test("a graph exec updated from another graph (cuGraphExecUpdate) charges the new range, not the old", () => {
    expectOk(run("t_graph", ["update"], { SPILLOVER_MIGRATE: "1" }), "ok update");
  });

  test("a graph kernel node re-pointed through cuGraphExecNodeSetParams charges the new range, not the old", () => {
    expectOk(run("t_graph", ["generic"], { SPILLOVER_MIGRATE: "1" }), "ok generic");
  });

  test("graph memset and child-graph nodes re-pointed on the exec charge their new ranges, not the old", () => {
    expectOk(run("t_graph", ["setnodes"], { SPILLOVER_MIGRATE: "1" }), "ok setnodes");
  });

  test("a graph launched into a stream being captured runs no placement pass; launched after, its range moves", () => {
    expectOk(run("t_graph", ["capture"], { SPILLOVER_MIGRATE: "1" }), "ok capture");
  });

  test("16 threads allocating and freeing at once lose and share no page", () => {
    expectOk(run("t_threads", []), "ok threads");
  });

  test("a forked child starts clean and allocates independently of its parent", () => {
    const r = run("t_fork", []);
    expect(r.stdout).toContain("child ok");
    expectOk(r, "ok fork");
  });
});

describe("two GPUs (FAKE_CUDA_DEVICES=2)", () => {
  const two = { FAKE_CUDA_DEVICES: "2" };

  test("per-GPU limits and reserves from the list form (0:64M,1:96M): each GPU reports and spends its own", () => {
    const r = run("t_mgpu", ["limits"], {
      ...two,
      SPILLOVER_VRAM_LIMIT: "0:64M,1:96M",
      SPILLOVER_VRAM_RESERVE: "0:16M,1:0",
    });
    expectOk(r, "ok limits");
  });

  test("a tiered range of GPU 0 (VRAM and host pages) copied to GPU 1 and back (cuMemcpyPeer, cuMemcpyDtoD, cuMemcpy): every byte equal", () => {
    expectOk(run("t_mgpu", ["copy"], { ...two, SPILLOVER_PINNED_LIMIT: "512M" }), "ok copy");
  });

  test("after cuCtxEnablePeerAccess a kernel on GPU 1 reads GPU 0's tiered range, also after its pages moved; disabling takes it away", () => {
    expectOk(run("t_mgpu", ["peer"], { ...two, SPILLOVER_MIGRATE: "1" }), "ok peer");
  });

  test("a kernel on GPU 1 naming its own range first, then GPU 0's range that GPU 0's engine staged and wrote, adds into the written words", () => {
    const r = run("t_mgpu", ["peerstaged"], {
      ...two,
      SPILLOVER_MIGRATE: "0",
      SPILLOVER_STREAM_RATIO: "0",
    });
    expectOk(r, "ok peerstaged");
  });

  test("an exportable cuMemCreate on GPU 1 past its limit stays one VRAM handle and exports; GPU 1's cold pages make room", () => {
    const r = run("t_mgpu", ["exportable"], {
      ...two,
      SPILLOVER_VRAM_LIMIT: "0:256M,1:64M",
      SPILLOVER_MIGRATE: "1",
    });
    expectOk(r, "ok exportable");
  });

  test("with one GPU in use a copy makes no driver call of ours; a second GPU's first copy grants access once", () => {
    expectOk(run("t_mgpu", ["onegpu"], two), "ok onegpu");
  });

  test("a bad entry in a per-GPU list prints one line naming it and everything passes through", () => {
    const r = run("t_misc", ["passthrough"], { SPILLOVER_VRAM_LIMIT: "0:8G,x:1G" });
    expectOk(r, "ok passthrough");
    expect(nonEmpty(r.stderr)).toEqual([
      'spillover: SPILLOVER_VRAM_LIMIT="0:8G,x:1G" is not a size or a per-GPU list (entry "x:1G": use GPU:SIZE such as 0:8G,1:12G, each GPU 0-7 once, sizes in bytes, K/M/G/T or NN%); passing all CUDA calls through',
    ]);
  });
});

function nonEmpty(s: string): string[] {
  return s.split("\n").filter((l) => l.length > 0);
}

describe("placement policy alone (policy.c, no driver)", () => {
  const scenarios: [string, string][] = [
    ["trade", "a hot host range trades places with a range 4x+ colder in full VRAM"],
    ["hysteresis", "ranges of similar use never trade places (no ping-pong in a repeating step)"],
    [
      "evict",
      "a fresh allocation takes the least used, then least recently used range's tail first",
    ],
    [
      "room",
      "with free room, host pages of ranges named since the last pass come in and nothing leaves; one use never trades",
    ],
    [
      "streamed",
      "a range the streaming engine stages ranks below ranges read in place (they take its VRAM, never the reverse) and above unnamed ones",
    ],
  ];
  for (const [scenario, title] of scenarios) {
    test(title, () => {
      const r = spawnSync(path.join(build, "t_policy"), [scenario], {
        encoding: "utf8",
        timeout: 10_000,
      });
      expectOk({ code: r.status, stdout: r.stdout, stderr: r.stderr }, `ok ${scenario}`);
    });
  }
});

describe("what the program is told", () => {
  test("cuMemGetInfo, cuDeviceTotalMem (v1, v2) and NVML (v1, v2) agree on total and free", () => {
    const r = run("t_info", ["capacity"]);
    expectOk(r, "ok capacity");
    expect(r.stdout).toContain(`total=${(64 + 128) * MiB}`);
  });

  test("a tiered pointer answers pointer attributes and address range like device memory", () => {
    expectOk(run("t_info", ["attrs"]), "ok attrs");
  });

  test("cuIpcGetMemHandle on a tiered pointer is CUDA_ERROR_NOT_SUPPORTED", () => {
    expectOk(run("t_info", ["ipc"]), "ok ipc");
  });
});

describe("robustness and reporting", () => {
  test("bad arguments: driver's codes for NULL/zero; double, interior and foreign frees refused", () => {
    expectOk(run("t_misc", ["badargs"]), "ok badargs");
  });

  test("a malformed variable prints exactly one line and everything passes through", () => {
    const r = run("t_misc", ["passthrough"], { SPILLOVER_VRAM_LIMIT: "12X" });
    expectOk(r, "ok passthrough");
    const lines = r.stderr.split("\n").filter((l) => l.length > 0);
    expect(lines).toEqual([
      'spillover: SPILLOVER_VRAM_LIMIT="12X" is not a size (use bytes or a number with K/M/G/T, or NN%); passing all CUDA calls through',
    ]);
  });

  test("SPILLOVER_DISABLE=1 passes everything through silently", () => {
    const r = run("t_misc", ["passthrough"], { SPILLOVER_DISABLE: "1" });
    expectOk(r, "ok passthrough");
    expect(r.stderr).toBe("");
  });

  test("a card without host-NUMA VMM: allocations and capacity are the driver's", () => {
    const r = run("t_misc", ["notiering"], { FAKE_CUDA_NO_HOST_NUMA: "1", SPILLOVER_LOG: "warn" });
    expectOk(r, "ok notiering");
    expect(r.stderr).toContain("lacks VMM with host NUMA memory");
  });

  test("SPILLOVER_LOG=info prints one summary line at exit", () => {
    const r = run("t_misc", ["summary"], { SPILLOVER_LOG: "info" });
    expectOk(r, "ok summary");
    const lines = r.stderr.split("\n").filter((l) => l.includes("summary:"));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /summary: vram 8 MiB \(peak 8\), pinned 12 MiB \(peak 12\), passthrough 0 MiB \(peak 40\).*allocs 3 \(tiered 1, passthrough 1\), frees 1, .*ooms 1/,
    );
  });

  test("the stats record: decoded live by the program, exited=1 at exit, kept only on request", () => {
    const kept = run("t_misc", ["stats"], { SPILLOVER_KEEP_STATS: "1" });
    expectOk(kept, "ok stats");
    const pid = Number(/ok stats pid=(\d+)/.exec(kept.stdout)?.[1]);
    const uid = process.getuid?.() ?? 0;
    const file = path.join(statsDir, `spillover-${uid}-${pid}.stats`);
    const buf = readFileSync(file);
    expect(buf.length).toBe(4096);
    expect(buf.readBigUInt64LE(0)).toBe(0x3153544154535053n); // SP_STATS_MAGIC
    expect(buf.readBigUInt64LE(16) % 2n).toBe(0n); // seq even
    expect(buf.readInt32LE(24)).toBe(pid);
    expect(buf.readUInt32LE(52)).toBe(1); // exited
    // gpu[0] starts after header 64 + pinned 80 + counters 128 + cmdline 256 = 528
    const gpu = 528;
    expect(buf.readBigUInt64LE(gpu + 8)).toBe(BigInt(64 * MiB)); // vram_limit
    expect(buf.readBigUInt64LE(gpu + 32)).toBe(BigInt(30 * MiB)); // tier_bytes[PINNED] at exit
    const gone = run("t_misc", ["stats"]);
    expectOk(gone, "ok stats");
    const pid2 = Number(/ok stats pid=(\d+)/.exec(gone.stdout)?.[1]);
    expect(existsSync(path.join(statsDir, `spillover-${uid}-${pid2}.stats`))).toBe(false);
  });
});

describe("the pinned limit without a broker", () => {
  // t_hostmem writes a simulated proc/meminfo and cgroup tree under SPILLOVER_TEST_HOST_ROOT
  const hostEnv = () => ({
    SPILLOVER_TEST_HOST_ROOT: mkdtempSync(path.join(os.tmpdir(), "spillover-host-")),
    SPILLOVER_PINNED_LIMIT: "",
    SPILLOVER_HOST_RESERVE: "16M",
    SPILLOVER_LOG: "info",
  });

  test("host budget follows a growing MemAvailable: the pool grows past its first limit", () => {
    const r = run("t_hostmem", ["grow"], hostEnv());
    expectOk(r, "ok grow");
    expect(r.stderr).toContain("pinned limit 64 -> 160 MiB (room 112 MiB of 2048 MiB");
  });

  test("host budget follows the cgroup limit where it is lower, and its raise", () => {
    const r = run("t_hostmem", ["cgroup"], hostEnv());
    expectOk(r, "ok cgroup");
    expect(r.stderr).toContain("pinned limit 80 -> 208 MiB (room 144 MiB of 256 MiB");
  });

  test("an explicit SPILLOVER_PINNED_LIMIT is never exceeded however the host grows", () => {
    const r = run("t_hostmem", ["explicit"], { ...hostEnv(), SPILLOVER_PINNED_LIMIT: "64M" });
    expectOk(r, "ok explicit");
    expect(r.stderr).not.toContain("pinned limit 64 ->");
  });
});

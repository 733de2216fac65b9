// `spillover run` as a real process: LD_PRELOAD and budgets reach the child (and its children),
// the exit status and signals pass through, a missing program is 127, a missing library one line.

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { childEnv } from "../../src/config/child-env.js";
import { findLibrary } from "../../src/config/library.js";
import { loadConfig } from "../../src/config/load.js";
import { ROOT, startTestBroker, type TestBroker } from "../broker/helpers.js";

let lib: string;
let other: string;

beforeAll(() => {
  // A do-nothing library stands in for libspillover.so: these tests are about the CLI.
  const d = mkdtempSync(join(tmpdir(), "spillover-run-"));
  writeFileSync(join(d, "empty.c"), "int spillover_test_marker;\n");
  lib = join(d, "libempty.so");
  execFileSync("gcc", ["-shared", "-fPIC", join(d, "empty.c"), "-o", lib]);
  other = join(d, "libother.so");
  execFileSync("gcc", ["-shared", "-fPIC", join(d, "empty.c"), "-o", other]);
});

function cli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): {
  proc: ChildProcess;
  done: Promise<{ code: number | null; signal: string | null; out: string; err: string }>;
} {
  const proc = spawn(process.execPath, ["--import", "tsx", join(ROOT, "src/cli/bin.ts"), ...args], {
    env: { PATH: process.env.PATH, HOME: "/nonexistent", SPILLOVER_LIB: lib, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  proc.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on("data", (d: Buffer) => {
    err += d.toString();
  });
  const done = new Promise<{
    code: number | null;
    signal: string | null;
    out: string;
    err: string;
  }>((resolve) => {
    proc.on("close", (code, signal) => resolve({ code, signal, out, err }));
  });
  return { proc, done };
}

describe("spillover run", () => {
  it("preloads the library first, passes budgets to the child and its children, and exits with its status", async () => {
    const r = await cli(
      [
        "run",
        "--vram-limit",
        "90%",
        "--pinned-limit",
        "1G",
        "--log",
        "debug",
        "--no-broker",
        "--",
        "sh",
        "-c",
        'sh -c "echo $LD_PRELOAD $SPILLOVER_VRAM_LIMIT $SPILLOVER_PINNED_LIMIT $SPILLOVER_LOG $SPILLOVER_BROKER"; exit 7',
      ],
      { LD_PRELOAD: other },
    ).done;
    expect(r.err).toBe("");
    expect(r.out.trim()).toBe(`${lib}:${other} 90% 1073741824 debug off`);
    expect(r.code).toBe(7);
  });

  it("passes a per-GPU --vram-limit list (0:8G,1:12G) to the child as SPILLOVER_VRAM_LIMIT", async () => {
    const r = await cli([
      "run",
      "--vram-limit",
      "0:8G,1:12G",
      "--vram-reserve",
      "1:10%",
      "--no-broker",
      "--",
      "sh",
      "-c",
      "echo $SPILLOVER_VRAM_LIMIT $SPILLOVER_VRAM_RESERVE",
    ]).done;
    expect(r.err).toBe("");
    expect(r.out.trim()).toBe(`0:${8 * 2 ** 30},1:${12 * 2 ** 30} 1:10%`);
    expect(r.code).toBe(0);
  });

  it("a bad entry of a per-GPU --vram-limit list is one line naming it, and nothing runs", async () => {
    const r = await cli(["run", "--vram-limit", "0:8G,9:1G", "--no-broker", "--", "echo", "ran"])
      .done;
    expect(r.out).toBe("");
    const lines = r.err.split("\n").filter((l) => l.length > 0);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('entry "9:1G" is not GPU:SIZE');
    expect(r.code).not.toBe(0);
  });

  it("passes SPILLOVER_MIGRATE, KEEP_STATS and DISABLE set in the config file to the child", async () => {
    const d = mkdtempSync(join(tmpdir(), "spillover-run-cfg-"));
    const cfg = join(d, "config.toml");
    writeFileSync(cfg, 'migrate = false\nkeep_stats = true\ndisable = 0\nthreshold = "4M"\n');
    const r = await cli([
      "run",
      "--config",
      cfg,
      "--no-broker",
      "--",
      "sh",
      "-c",
      "echo $SPILLOVER_MIGRATE $SPILLOVER_KEEP_STATS $SPILLOVER_DISABLE $SPILLOVER_THRESHOLD",
    ]).done;
    expect(r.err).toBe("");
    expect(r.out.trim()).toBe("0 1 0 4194304");
    expect(r.code).toBe(0);
  });

  it("passes the streaming engine's knobs: --no-stream and --stream-budget, or the config file's", async () => {
    const show = ["--", "sh", "-c", "printenv SPILLOVER_STREAM SPILLOVER_STREAM_BUDGET; echo end"];
    const none = await cli(["run", "--no-broker", ...show]).done;
    expect(none.out.trim()).toBe("end"); // unset: the interposer's defaults, on and 25% of the limit
    const flags = await cli(["run", "--no-broker", "--no-stream", "--stream-budget", "2G", ...show])
      .done;
    expect(flags.err).toBe("");
    expect(flags.out.trim().split("\n")).toEqual(["0", String(2 * 2 ** 30), "end"]);
    const d = mkdtempSync(join(tmpdir(), "spillover-run-cfg-"));
    const cfg = join(d, "config.toml");
    writeFileSync(cfg, 'stream = true\nstream_budget = "30%"\n');
    const file = await cli(["run", "--config", cfg, "--no-broker", ...show]).done;
    expect(file.out.trim().split("\n")).toEqual(["1", "30%", "end"]);
    expect(file.code).toBe(0);
  });

  it("sets SPILLOVER_SOCKET when a broker answers", async () => {
    const b: TestBroker = await startTestBroker({}, { http: false });
    try {
      const r = await cli(["run", "--", "sh", "-c", "echo $SPILLOVER_SOCKET"], {
        SPILLOVER_SOCKET: b.socket,
      }).done;
      expect(r.out.trim()).toBe(b.socket);
      expect(r.code).toBe(0);
    } finally {
      await b.close();
    }
  });

  it.each(["TERM", "INT", "HUP"] as const)(
    "forwards SIG%s to the program and exits with its status",
    async (sig) => {
      const c = cli([
        "run",
        "--",
        "sh",
        "-c",
        `trap "echo got-${sig}; exit 42" ${sig}; echo ready; while :; do sleep 0.05; done`,
      ]);
      await new Promise<void>((resolve) => {
        c.proc.stdout?.on("data", (d: Buffer) => {
          if (d.toString().includes("ready")) resolve();
        });
      });
      c.proc.kill(`SIG${sig}`);
      const r = await Promise.race([
        c.done,
        new Promise<never>((_, reject) =>
          setTimeout(() => {
            let tree = "";
            try {
              tree = execFileSync(
                "sh",
                [
                  "-c",
                  `ps -o pid,ppid,stat,wchan:20,cmd -g $(ps -o sid= -p ${c.proc.pid}) 2>&1; grep -E 'Sig(Blk|Ign|Cgt)' /proc/${c.proc.pid}/status`,
                ],
                { encoding: "utf8" },
              );
            } catch (e) {
              tree = String(e);
            }
            reject(new Error(`no exit 10 s after SIG${sig}:\n${tree}`));
          }, 10_000),
        ),
      ]);
      expect(r.out).toContain(`got-${sig}`);
      expect(r.code).toBe(42);
    },
  );

  it("exits 128+signal when the program is killed", async () => {
    const r = await cli(["run", "--", "sh", "-c", "kill -9 $$"]).done;
    expect(r.code).toBe(137);
  });

  it("a program that does not exist: one line, 127", async () => {
    const r = await cli(["run", "--", "no-such-program-xyz", "a"]).done;
    expect(r.code).toBe(127);
    expect(r.err).toBe("spillover: no-such-program-xyz: command not found\n");
  });

  it("no command: one line, exit 2", async () => {
    const r = await cli(["run"]).done;
    expect(r.code).toBe(2);
    expect(r.err.trim().split("\n")).toHaveLength(1);
    expect(r.err).toContain("name the program to run after --");
  });

  it("a missing library: one line with the fix", async () => {
    const r = await cli(["run", "--", "true"], { SPILLOVER_LIB: "/nonexistent/libspillover.so" })
      .done;
    expect(r.code).toBe(1);
    expect(r.err).toBe(
      'spillover: SPILLOVER_LIB="/nonexistent/libspillover.so": no such file; point it at libspillover.so or unset it\n',
    );
  });
});

describe("run's pure parts", () => {
  it("finds the library in native/build/ when SPILLOVER_LIB is unset, else says how to build it", () => {
    expect(
      findLibrary({}, (p) => p === "/pkg/native/build/libspillover.so", [
        "/pkg/dist/native/build/libspillover.so",
        "/pkg/native/build/libspillover.so",
      ]),
    ).toBe("/pkg/native/build/libspillover.so");
    expect(() => findLibrary({}, () => false, ["/a/native/build/libspillover.so"])).toThrow(
      /make -C native/,
    );
  });

  it("does not repeat the library in LD_PRELOAD and drops SPILLOVER_SOCKET with --no-broker", async () => {
    const c = await loadConfig({
      env: {},
      systemFile: null,
      userFile: null,
      flags: { use_broker: "off" },
    });
    const env = childEnv(
      c,
      { LD_PRELOAD: "/l/libspillover.so /x.so", SPILLOVER_SOCKET: "/s" },
      "/l/libspillover.so",
      "/s",
    );
    expect(env.LD_PRELOAD).toBe("/l/libspillover.so:/x.so");
    expect(env.SPILLOVER_SOCKET).toBeUndefined();
    expect(env.SPILLOVER_BROKER).toBe("off");
  });
});

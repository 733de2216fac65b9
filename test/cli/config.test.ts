// Configuration: precedence of the layers, and one line per bad key naming the source, the value
// and what is accepted, with exit status 2 through the CLI.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config/load.js";
import { runCli } from "../helpers/cli.js";

function tmp(files: Record<string, string>): string {
  const d = mkdtempSync(join(tmpdir(), "spillover-cfg-"));
  for (const [n, t] of Object.entries(files)) writeFileSync(join(d, n), t);
  return d;
}

function cli(argv: string[], env: NodeJS.ProcessEnv = {}) {
  return runCli(argv, { PATH: process.env.PATH, ...env });
}

describe("config precedence", () => {
  it("flags > env > --config > user > system > defaults", async () => {
    const d = tmp({
      "system.toml":
        'vram_limit = "1G"\nvram_reserve = "1M"\npinned_limit = "1M"\nthreshold = "1M"\nlog = "error"\n[broker]\nhttp_port = 1\n',
      "user.toml":
        'vram_limit = "2G"\nvram_reserve = "2M"\npinned_limit = "2M"\nthreshold = "2M"\n',
      "cfg.toml": 'vram_limit = "3G"\nvram_reserve = "3M"\npinned_limit = "3M"\n',
    });
    const c = await loadConfig({
      env: { SPILLOVER_VRAM_LIMIT: "4G", SPILLOVER_VRAM_RESERVE: "4M" },
      configFile: join(d, "cfg.toml"),
      userFile: join(d, "user.toml"),
      systemFile: join(d, "system.toml"),
      flags: { vram_limit: "90%" },
    });
    expect(c.vram_limit).toEqual({ percent: 90 });
    expect(c.vram_reserve).toEqual({ bytes: 4 * 2 ** 20 });
    expect(c.pinned_limit).toEqual({ bytes: 3 * 2 ** 20 });
    expect(c.threshold).toBe(2 * 2 ** 20);
    expect(c.log).toBe("error");
    expect(c.broker.http_port).toBe(1);
    expect(c.broker.http_host).toBe("127.0.0.1"); // default
    expect(c.use_broker).toBe("auto");
  });

  it("finds the user file under XDG_CONFIG_HOME", async () => {
    const d = tmp({});
    const { mkdirSync } = await import("node:fs");
    mkdirSync(join(d, "spillover"));
    writeFileSync(join(d, "spillover", "config.toml"), "[broker]\npinned_budget = 1073741824\n");
    const c = await loadConfig({ env: { XDG_CONFIG_HOME: d }, systemFile: null });
    expect(c.broker.pinned_budget).toBe(2 ** 30);
  });
});

describe("bad configuration: one line per bad key, exit 2", () => {
  it.each([
    [
      'vram_limit = "8X"',
      /cfg\.toml: vram_limit = "8X": expected a positive size such as 512M, 8G or 1\.5GiB .*percentage/,
    ],
    ['vram_limit = "150%"', /vram_limit = "150%": expected/],
    ["pinned_limit = -5", /pinned_limit = -5: expected a size/],
    ['log = "loud"', /log = "loud": expected one of off, error, warn, info, debug/],
    ['use_broker = "maybe"', /use_broker = "maybe": expected one of auto, off/],
    [
      "[broker]\nhttp_port = 70000",
      /broker\.http_port = 70000: expected a whole number from 0 to 65535/,
    ],
    ["[broker]\npsi_warn = 101", /broker\.psi_warn = 101: expected a number from 0 to 100/],
    ["[broker]\nsystem = 3", /broker\.system = 3: expected true or false/],
    ["colour = 1", /cfg\.toml: colour: unknown key/],
    ["[broker]\nport = 1", /cfg\.toml: broker\.port: unknown key/],
    ["broker = 5", /broker: expected a table/],
    ["vram_limit = ", /cfg\.toml:1:14: not valid TOML: invalid value$/],
  ])("%s", async (toml, re) => {
    const d = tmp({ "cfg.toml": toml });
    const r = await cli(["status", "--config", join(d, "cfg.toml")]);
    expect(r.code).toBe(2);
    const lines = r.err.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^spillover: /);
    expect(lines[0]).toMatch(re);
  });

  it("reports every bad key, one line each", async () => {
    const d = tmp({ "cfg.toml": 'vram_limit = "x"\nlog = "y"\n' });
    const r = await cli(["run", "--config", join(d, "cfg.toml"), "--", "true"], {
      SPILLOVER_HTTP_PORT: "http",
    });
    expect(r.code).toBe(2);
    const lines = r.err.trim().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines.every((l) => l.startsWith("spillover: "))).toBe(true);
    expect(r.err).toContain('SPILLOVER_HTTP_PORT="http": expected a whole number from 0 to 65535');
  });

  it("names the env var", async () => {
    const r = await cli(["run", "--", "true"], { SPILLOVER_VRAM_RESERVE: "lots" });
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(
      'spillover: SPILLOVER_VRAM_RESERVE="lots": expected a size such as 512M, 8G or 1.5GiB (bytes if no unit), or a percentage from 1% to 100%, or a per-GPU list such as 0:8G,1:12G',
    );
  });

  it.each([
    ["SPILLOVER_MIGRATE", "maybe", "expected 1 or 0 (true or false in a config file)"],
    ["SPILLOVER_DISABLE", "yes", "expected 1 or 0 (true or false in a config file)"],
    ["SPILLOVER_KEEP_STATS", "true", "expected 1 or 0 (true or false in a config file)"],
    ["SPILLOVER_STREAM", "on", "expected 1 or 0 (true or false in a config file)"],
    [
      "SPILLOVER_STREAM_BUDGET",
      "lots",
      "expected a positive size such as 512M, 8G or 1.5GiB (bytes if no unit), or a percentage from 1% to 100%",
    ],
    [
      "SPILLOVER_STREAM_BUDGET",
      "150%",
      "expected a positive size such as 512M, 8G or 1.5GiB (bytes if no unit), or a percentage from 1% to 100%",
    ],
    [
      "SPILLOVER_STREAM_BUDGET",
      "0",
      "expected a positive size such as 512M, 8G or 1.5GiB (bytes if no unit), or a percentage from 1% to 100%",
    ],
    [
      "SPILLOVER_VRAM_LIMIT",
      "",
      "expected a positive size such as 512M, 8G or 1.5GiB (bytes if no unit), or a percentage from 1% to 100%, or a per-GPU list such as 0:8G,1:12G",
    ],
  ])("run rejects %s=%j with one line, as the interposer would", async (name, value, why) => {
    const r = await cli(["run", "--", "true"], { [name]: value });
    expect(r.code).toBe(2);
    expect(r.err).toBe(`spillover: ${name}=${JSON.stringify(value)}: ${why}\n`);
  });

  it("a TOML syntax error names the line and column", async () => {
    const d = tmp({ "cfg.toml": 'log = "warn"\nvram_limit = \n' });
    const r = await cli(["run", "--config", join(d, "cfg.toml"), "--", "true"]);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toMatch(/^spillover: .*cfg\.toml:2:14: not valid TOML: invalid value$/);
  });

  it("a bad --stream-budget is one line naming the flag, and a bad stream_budget in a config file names the file and key", async () => {
    const r = await cli(["run", "--stream-budget", "25", "--", "true"]);
    expect(r.code).toBe(0); // 25 bytes: a size without a unit
    const bad = await cli(["run", "--stream-budget", "quarter", "--", "true"]);
    expect(bad.code).toBe(2);
    expect(bad.err).toBe(
      'spillover: --stream-budget "quarter": expected a positive size such as 512M, 8G or 1.5GiB (bytes if no unit), or a percentage from 1% to 100%\n',
    );
    const d = tmp({ "cfg.toml": "stream = 2\n" });
    const f = await cli(["run", "--config", join(d, "cfg.toml"), "--", "true"]);
    expect(f.code).toBe(2);
    const lines = f.err.trim().split("\n");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /cfg\.toml: stream = 2: expected 1 or 0 \(true or false in a config file\)$/,
    );
  });

  it("names the flag", async () => {
    const r = await cli(["run", "--pinned-limit", "12Q", "--", "true"]);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(
      'spillover: --pinned-limit "12Q": expected a size such as 512M, 8G or 1.5GiB (bytes if no unit), or a percentage from 1% to 100%',
    );
    const r2 = await cli(["broker", "--http-port", "99999"]);
    expect(r2.code).toBe(2);
    expect(r2.err.trim()).toMatch(
      /^spillover: --http-port "99999": expected a whole number from 0 to 65535$/,
    );
  });

  it("a missing --config file is an error, a missing user file is not", async () => {
    const r = await cli(["status", "--config", "/nonexistent/x.toml"]);
    expect(r.code).toBe(2);
    expect(r.err.trim()).toBe(
      "spillover: /nonexistent/x.toml: cannot read the config file (ENOENT)",
    );
  });
});

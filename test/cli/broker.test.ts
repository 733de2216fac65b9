// `spillover broker` as a real process: starts on the given socket, logs JSON lines to stderr,
// serves the C client, warns about a non-loopback HTTP address, and stops cleanly on SIGTERM.

import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { brokerClientBinary, parseClientLines, ROOT, waitFor } from "../broker/helpers.js";

describe("spillover broker", () => {
  it("serves clients, logs JSON lines and stops on SIGTERM, removing its sockets", async () => {
    const dir = mkdtempSync(join(tmpdir(), "spillover-cli-broker-"));
    const sock = join(dir, "run", "broker.sock");
    const p = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(ROOT, "src/cli/bin.ts"),
        "broker",
        "--socket",
        sock,
        "--http-port",
        "0",
        "--http-host",
        "0.0.0.0",
        "--pinned-budget",
        "1G",
      ],
      { env: { PATH: process.env.PATH, HOME: "/nonexistent" }, stdio: ["ignore", "pipe", "pipe"] },
    );
    let err = "";
    p.stderr?.on("data", (d: Buffer) => {
      err += d.toString();
    });
    const exited = new Promise<number | null>((r) => p.once("close", (code) => r(code)));
    await waitFor(
      () => err,
      (e) => e.includes('"broker started"'),
      15_000,
    );
    const out = await new Promise<string>((resolve) =>
      execFile(
        brokerClientBinary(),
        ["hello 1 1048576", "grow 1048576", "bye"],
        { env: { ...process.env, SPILLOVER_SOCKET: sock } },
        (_e, o) => resolve(o),
      ),
    );
    expect(parseClientLines(out)[0]).toMatchObject({
      op: "hello",
      connected: "1",
      lease: "1048576",
    });
    p.kill("SIGTERM");
    expect(await exited).toBe(0);
    expect(existsSync(sock)).toBe(false);
    expect(existsSync(join(dir, "run", "http.sock"))).toBe(false);
    const lines = err
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { level: string; msg: string; [k: string]: unknown });
    expect(lines.map((l) => l.msg)).toEqual(
      expect.arrayContaining([
        "broker started",
        "client connected",
        "client disconnected",
        "broker stopped",
      ]),
    );
    expect(lines.find((l) => l.level === "warn")?.msg).toMatch(
      /HTTP API is reachable beyond this machine/,
    );
    expect(lines.find((l) => l.msg === "broker started")).toMatchObject({
      socket: sock,
      pinned_budget: 2 ** 30,
    });
  }, 30_000);
});

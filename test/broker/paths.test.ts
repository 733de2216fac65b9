// Socket directory rules: owned by us, not writable by others (0700 for a user broker).

import { chmodSync, mkdirSync, mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  checkSocketDir,
  clientSocketCandidates,
  prepareSocketDir,
  userSocketPath,
} from "../../src/broker/paths.js";

const dir = (
  over: Partial<{ isDirectory: boolean; isSymlink: boolean; uid: number; mode: number }> = {},
) => ({ isDirectory: true, isSymlink: false, uid: 1000, mode: 0o40700, ...over });

describe("socket paths", () => {
  it("uses XDG_RUNTIME_DIR, else /tmp/spillover-UID", () => {
    expect(userSocketPath({ XDG_RUNTIME_DIR: "/run/user/1000" }, 1000)).toBe(
      "/run/user/1000/spillover/broker.sock",
    );
    expect(userSocketPath({}, 1000)).toBe("/tmp/spillover-1000/broker.sock");
    expect(clientSocketCandidates({}, 1000)).toEqual([
      "/tmp/spillover-1000/broker.sock",
      "/run/spillover/broker.sock",
    ]);
    expect(clientSocketCandidates({}, 1000, "/x.sock")).toEqual(["/x.sock"]);
  });

  it("accepts only a private directory of ours", () => {
    expect(checkSocketDir("/d", dir(), 1000, false)).toBeUndefined();
    expect(checkSocketDir("/d", dir({ uid: 0 }), 1000, false)).toMatch(
      /owned by uid 0, not by you/,
    );
    expect(checkSocketDir("/d", dir({ mode: 0o40777 }), 1000, false)).toMatch(/world-writable/);
    expect(checkSocketDir("/d", dir({ mode: 0o40750 }), 1000, false)).toMatch(/chmod 700/);
    expect(checkSocketDir("/d", dir({ isSymlink: true }), 1000, false)).toMatch(/symbolic link/);
    expect(checkSocketDir("/d", dir({ isDirectory: false }), 1000, false)).toMatch(
      /not a directory/,
    );
    expect(checkSocketDir("/d", dir({ uid: 0, mode: 0o40750 }), 1000, true)).toBeUndefined(); // system: root's 0750 dir
    expect(checkSocketDir("/d", dir({ uid: 0, mode: 0o40777 }), 1000, true)).toMatch(
      /world-writable/,
    );
  });

  it("creates the directory 0700 and refuses a loose one", async () => {
    const base = mkdtempSync(join(tmpdir(), "spillover-paths-"));
    const uid = process.getuid?.() ?? 0;
    await prepareSocketDir(join(base, "new", "broker.sock"), uid, false);
    const loose = join(base, "loose");
    mkdirSync(loose);
    chmodSync(loose, 0o777);
    await expect(prepareSocketDir(join(loose, "broker.sock"), uid, false)).rejects.toThrow(
      /world-writable/,
    );
    symlinkSync(join(base, "new"), join(base, "link"));
    await expect(prepareSocketDir(join(base, "link", "broker.sock"), uid, false)).rejects.toThrow(
      /symbolic link/,
    );
  });
});

describe("system broker socket", () => {
  it("is 0660 with the configured group, in a 0750 directory", async () => {
    const { statSync } = await import("node:fs");
    const { startTestBroker } = await import("./helpers.js");
    const gid = process.getgid?.() ?? 0;
    const group = String(gid); // a numeric group is accepted when /etc/group has no name for it
    const b = await startTestBroker({ system: true, group }, { http: false });
    try {
      const st = statSync(b.socket);
      expect(st.mode & 0o777).toBe(0o660);
      expect(st.gid).toBe(gid);
      expect(statSync(join(b.socket, "..")).mode & 0o777).toBe(0o750);
    } finally {
      await b.close();
    }
  });
});

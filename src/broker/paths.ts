// Where the broker socket lives, and the permission checks on its directory. The same resolution
// order as the C client (native/src/broker_client.c): SPILLOVER_SOCKET, the user's socket, the
// system socket.

import { constants } from "node:fs";
import { chmod, lstat, mkdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { SpilloverError } from "../util/errors.js";

export const SYSTEM_SOCKET = "/run/spillover/broker.sock";

export function userSocketPath(env: NodeJS.ProcessEnv, uid: number): string {
  if (env.XDG_RUNTIME_DIR) return join(env.XDG_RUNTIME_DIR, "spillover", "broker.sock");
  return `/tmp/spillover-${uid}/broker.sock`;
}

/** The broker's HTTP API on a Unix socket, beside its protocol socket. */
export function apiSocketPath(socketPath: string): string {
  return join(dirname(socketPath), "http.sock");
}

/** Candidate sockets a client tries, in order. */
export function clientSocketCandidates(
  env: NodeJS.ProcessEnv,
  uid: number,
  configured?: string,
): string[] {
  if (configured) return [configured];
  const out = [userSocketPath(env, uid)];
  if (env.XDG_RUNTIME_DIR) out.push(`/tmp/spillover-${uid}/broker.sock`);
  out.push(SYSTEM_SOCKET);
  return out;
}

export interface DirStat {
  readonly isDirectory: boolean;
  readonly isSymlink: boolean;
  readonly uid: number;
  readonly mode: number;
}

/**
 * Pure check of the socket directory: a real directory, owned by us (or root for the system
 * directory), and not writable by others. Returns a one-line problem, or undefined if fine.
 */
export function checkSocketDir(
  dir: string,
  st: DirStat,
  myUid: number,
  system: boolean,
): string | undefined {
  if (st.isSymlink)
    return `${dir} is a symbolic link; remove it or set --socket to a path in a directory you own`;
  if (!st.isDirectory) return `${dir} is not a directory; remove it or set --socket elsewhere`;
  if (st.uid !== myUid && !(system && st.uid === 0)) {
    return `${dir} is owned by uid ${st.uid}, not by you (uid ${myUid}); refusing to put the broker socket there`;
  }
  if (st.mode & constants.S_IWOTH)
    return `${dir} is world-writable (mode ${(st.mode & 0o777).toString(8)}); run chmod o-w ${dir}`;
  if (!system && st.mode & 0o077)
    return `${dir} has mode ${(st.mode & 0o777).toString(8)}; run chmod 700 ${dir}`;
  return undefined;
}

/** Creates (0700 user, 0750 system) or checks the socket's directory. Throws ERR_BROKER on a problem. */
export async function prepareSocketDir(
  socketPath: string,
  myUid: number,
  system: boolean,
): Promise<void> {
  const dir = dirname(socketPath);
  const mode = system ? 0o750 : 0o700;
  try {
    await mkdir(dir, { mode });
    await chmod(dir, mode); // the umask may have taken bits away
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "EEXIST") {
      throw new SpilloverError("ERR_BROKER", `cannot create ${dir}: ${(e as Error).message}`);
    }
  }
  const st = await lstat(dir);
  const problem = checkSocketDir(
    dir,
    { isDirectory: st.isDirectory(), isSymlink: st.isSymbolicLink(), uid: st.uid, mode: st.mode },
    myUid,
    system,
  );
  if (problem) throw new SpilloverError("ERR_BROKER", problem);
}

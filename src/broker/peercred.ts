// Who is on the other end of a broker connection, as the kernel says (SO_PEERCRED), not as the
// client says. Node has no SO_PEERCRED, so a small addon built with the rest of native/
// (native/addon/peercred.c -> native/build/peercred.node, beside libspillover.so) reads it.
// The reader is injectable: tests stand in for other users without being them.

import type net from "node:net";
import { findNativeTool } from "../config/library.js";
import { SpilloverError } from "../util/errors.js";

export interface PeerCred {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

/** Returns the credentials of the process that connected `sock`, or throws (one line why). */
export type PeerCredReader = (sock: net.Socket) => PeerCred;

interface Addon {
  peerCred(fd: number): PeerCred;
}

let cached: PeerCredReader | undefined;

/** The socket's fd: libuv keeps it on the handle of an accepted Unix socket. */
function socketFd(sock: net.Socket): number {
  const fd = (sock as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== "number" || fd < 0) throw new Error("the connection has no file descriptor");
  return fd;
}

/** Loads native/build/peercred.node once; throws ERR_NATIVE naming the fix when it is missing. */
export function kernelPeerCred(env: NodeJS.ProcessEnv = process.env): PeerCredReader {
  if (cached) return cached;
  const path = findNativeTool("peercred.node", env);
  if (!path)
    throw new SpilloverError(
      "ERR_NATIVE",
      "peercred.node not found beside libspillover.so: the broker needs it to read peer credentials; build it with make -C native (npm ci does)",
    );
  const mod = { exports: {} as Partial<Addon> };
  try {
    process.dlopen(mod, path);
  } catch (e) {
    throw new SpilloverError(
      "ERR_NATIVE",
      `cannot load ${path} (${(e as Error).message.split("\n")[0]}); rebuild it with make -C native`,
    );
  }
  const addon = mod.exports;
  if (typeof addon.peerCred !== "function")
    throw new SpilloverError(
      "ERR_NATIVE",
      `${path} has no peerCred(); rebuild it with make -C native`,
    );
  const read = addon.peerCred.bind(addon);
  cached = (sock) => read(socketFd(sock));
  return cached;
}

// How the CLI finds and talks to a running broker: which protocol socket answers, and GETs on its
// HTTP API through the Unix socket beside it (no TCP port needed).

import http from "node:http";
import net from "node:net";
import { apiSocketPath, clientSocketCandidates } from "./paths.js";

export function socketAnswers(path: string, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(path);
    const t = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, timeoutMs);
    s.once("connect", () => {
      clearTimeout(t);
      s.destroy();
      resolve(true);
    });
    s.once("error", () => {
      clearTimeout(t);
      resolve(false);
    });
  });
}

/** The first candidate socket with a broker behind it. */
export async function findBroker(
  env: NodeJS.ProcessEnv,
  uid: number,
  configured?: string,
): Promise<string | undefined> {
  for (const p of clientSocketCandidates(env, uid, configured))
    if (await socketAnswers(p)) return p;
  return undefined;
}

export function apiGet(
  socketPath: string,
  path: string,
  timeoutMs = 2000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get(
      { socketPath: apiSocketPath(socketPath), path, timeout: timeoutMs },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timed out")));
    req.on("error", reject);
  });
}

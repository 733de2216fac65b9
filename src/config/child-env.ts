// The environment `spillover run` gives its child: LD_PRELOAD with libspillover.so first, every
// interposer knob of the merged configuration as its SPILLOVER_* variable (knobs.ts), and
// SPILLOVER_SOCKET when a broker answers. Pure: the caller decides which library and socket.

import { KNOBS, knobEnv } from "./knobs.js";
import type { Config } from "./schema.js";

export function childEnv(
  config: Config,
  env: NodeJS.ProcessEnv,
  lib: string,
  brokerSocket: string | undefined,
): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  const existing = (env.LD_PRELOAD ?? "").split(/[:\s]+/).filter((p) => p !== "" && p !== lib);
  out.LD_PRELOAD = [lib, ...existing].join(":");
  for (const k of KNOBS) {
    const v = (config as Record<string, unknown>)[k.key];
    if (v !== undefined) out[k.env] = knobEnv(k, v);
  }
  if (config.use_broker === "off") {
    delete out.SPILLOVER_SOCKET;
  } else if (brokerSocket) {
    out.SPILLOVER_SOCKET = brokerSocket;
  }
  return out;
}

// The environment `spillover run` gives its child: LD_PRELOAD with libspillover.so first, the
// SPILLOVER_* budgets from the merged configuration, and SPILLOVER_SOCKET when a broker answers.
// Pure: the caller decides which library and socket.

import { sizeEnv } from "./load.js";
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
  if (config.vram_limit) out.SPILLOVER_VRAM_LIMIT = sizeEnv(config.vram_limit);
  if (config.vram_reserve !== undefined) out.SPILLOVER_VRAM_RESERVE = String(config.vram_reserve);
  if (config.pinned_limit !== undefined) out.SPILLOVER_PINNED_LIMIT = String(config.pinned_limit);
  if (config.host_reserve !== undefined) out.SPILLOVER_HOST_RESERVE = String(config.host_reserve);
  if (config.threshold !== undefined) out.SPILLOVER_THRESHOLD = String(config.threshold);
  if (config.log) out.SPILLOVER_LOG = config.log;
  if (config.stats_dir !== "/dev/shm") out.SPILLOVER_STATS_DIR = config.stats_dir;
  if (config.use_broker === "off") {
    out.SPILLOVER_BROKER = "off";
    delete out.SPILLOVER_SOCKET;
  } else if (brokerSocket) {
    out.SPILLOVER_BROKER = "auto";
    out.SPILLOVER_SOCKET = brokerSocket;
  }
  return out;
}

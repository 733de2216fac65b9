// `spillover broker`: the machine's lease holder, in the foreground (systemd runs it the same way).
// Logs JSON lines to stderr; stops cleanly on SIGINT/SIGTERM.

import { startBroker } from "../../broker/daemon.js";
import { jsonLogger } from "../../broker/log.js";
import { SYSTEM_SOCKET, userSocketPath } from "../../broker/paths.js";
import { loadConfig } from "../../config/load.js";
import { defineCommand } from "../command.js";
import { knobFlagLayer } from "../flags.js";
import { uid } from "./shared.js";

const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1"]);

export const brokerCommand = defineCommand({
  name: "broker",
  summary:
    "run the broker: pinned-memory and VRAM leases, pressure watchdog, metrics and dashboard",
  flags: [
    "system",
    "socket",
    "httpPort",
    "httpHost",
    "pinnedBudget",
    "hostReserve",
    "log",
    "config",
  ],
  async run({ flags, io }) {
    const config = await loadConfig({
      env: io.env,
      configFile: flags.config,
      uses: ["socket", "host_reserve", "stats_dir", "log", "broker"],
      flags: {
        ...knobFlagLayer({ socket: flags.socket, hostReserve: flags.hostReserve }),
        "broker.system": flags.system ? true : undefined,
        "broker.http_port": flags.httpPort,
        "broker.http_host": flags.httpHost,
        "broker.pinned_budget": flags.pinnedBudget,
      },
    });
    const level = flags.log ?? "info";
    const log = jsonLogger(
      io.stderr,
      level === "off" ? "off" : (level as "debug" | "info" | "warn" | "error"),
    );
    const b = config.broker;
    if (!LOOPBACK.has(b.http_host)) {
      log.log(
        "warn",
        "HTTP API is reachable beyond this machine: it shows every process's command line and memory",
        { http_host: b.http_host },
      );
    }
    const socketPath = config.socket ?? (b.system ? SYSTEM_SOCKET : userSocketPath(io.env, uid()));
    const handle = await startBroker({
      config: b,
      socketPath,
      hostReserve: config.host_reserve,
      statsDir: config.stats_dir,
      log,
    });
    await new Promise<void>((resolve) => {
      const stop = (sig: NodeJS.Signals) => {
        log.log("info", "signal received", { signal: sig });
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        resolve();
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    await handle.close();
    return { exitCode: 0 };
  },
});

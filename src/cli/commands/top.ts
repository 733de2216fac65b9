// `spillover top`: a live terminal view refreshed every 500 ms in the alternate screen; q or
// Ctrl-C quits and restores the terminal. The screen itself is renderFrame (top-frame.ts).

import { sampleMemory } from "../../broker/pressure.js";
import { loadConfig } from "../../config/load.js";
import { type CommandIO, defineCommand } from "../command.js";
import { collectStatus } from "./status.js";
import { renderFrame, type TopState } from "./top-frame.js";

const ENTER = "\x1b[?1049h\x1b[?25l";
const LEAVE = "\x1b[?25h\x1b[?1049l";

async function state(
  env: NodeJS.ProcessEnv,
  socket: string | undefined,
  statsDir: string,
): Promise<TopState> {
  const status = await collectStatus({ env, socket, statsDir });
  return { now: new Date(), status, memory: status.broker ? undefined : await sampleMemory() };
}

function size(io: CommandIO): { cols: number; rows: number } {
  return { cols: io.stdout.columns ?? 100, rows: io.stdout.rows ?? 30 };
}

export const topCommand = defineCommand({
  name: "top",
  summary: "live view of processes, tiers and RAM pressure (q to quit)",
  flags: ["once", "socket", "config"],
  async run({ flags, io }) {
    const config = await loadConfig({
      env: io.env,
      configFile: flags.config,
      uses: ["socket", "stats_dir"],
      flags: { socket: flags.socket },
    });
    const get = () => state(io.env, config.socket, config.stats_dir);
    if (flags.once || !io.stdout.isTTY) {
      const { cols, rows } = size(io);
      const lines = renderFrame(await get(), cols, rows);
      while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
      return { output: lines.join("\n"), exitCode: 0 };
    }
    io.stdout.write(ENTER);
    let stop: () => void = () => undefined;
    const stopped = new Promise<void>((resolve) => {
      stop = resolve;
    });
    const onKey = (d: Buffer | string) => {
      const s = d.toString();
      if (s.includes("q") || s.includes("Q") || s.includes("\x03")) stop();
    };
    const onSignal = () => stop();
    io.stdin.setRawMode?.(true);
    io.stdin.on("data", onKey);
    io.stdin.resume();
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
    try {
      let running = true;
      void stopped.then(() => {
        running = false;
      });
      while (running) {
        const { cols, rows } = size(io);
        const lines = renderFrame(await get(), cols, rows);
        if (!running) break;
        io.stdout.write(`\x1b[H${lines.join("\x1b[K\r\n")}\x1b[K\x1b[J`);
        await Promise.race([stopped, new Promise((r) => setTimeout(r, 500))]);
      }
    } finally {
      io.stdin.off("data", onKey);
      io.stdin.setRawMode?.(false);
      io.stdin.pause();
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      io.stdout.write(LEAVE);
    }
    return { exitCode: 0 };
  },
});

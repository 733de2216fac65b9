// Finds the processes that use spillover by their stats records (/dev/shm/spillover-<uid>-<pid>.stats),
// skipping records whose process is gone (stale files of crashed programs).

import { stat } from "node:fs/promises";
import { listStatsFiles, readStatsFile } from "../protocol/stats.js";
import { type ProcessView, processView } from "./view.js";

export interface ScanOptions {
  readonly dir: string;
  /** Only this uid's records (undefined: everyone's, as the system broker reads them). */
  readonly uid?: number | undefined;
  readonly procRoot?: string;
}

export async function pidAlive(pid: number, procRoot = "/proc"): Promise<boolean> {
  try {
    await stat(`${procRoot}/${pid}`);
    return true;
  } catch {
    return false;
  }
}

export interface ScanResult {
  readonly processes: ProcessView[];
  /** Files that could not be read or decoded, with the reason (shown by `status --verbose`). */
  readonly problems: { path: string; reason: string }[];
}

export async function scanProcesses(o: ScanOptions): Promise<ScanResult> {
  const files = await listStatsFiles(o.dir, o.uid);
  const processes: ProcessView[] = [];
  const problems: { path: string; reason: string }[] = [];
  await Promise.all(
    files.map(async (f) => {
      if (!(await pidAlive(f.pid, o.procRoot))) return;
      const r = await readStatsFile(f.path);
      if (!r.ok) {
        problems.push({ path: f.path, reason: r.reason });
        return;
      }
      // A record whose pid field disagrees with its name belongs to a recycled pid's predecessor.
      if (r.record.pid !== f.pid) {
        problems.push({ path: f.path, reason: `record is for pid ${r.record.pid}` });
        return;
      }
      processes.push(processView(r.record));
    }),
  );
  processes.sort((a, b) => a.pid - b.pid);
  return { processes, problems };
}

// Finds the dashboard's files: dist/web/ beside the bundled CLI (npm run build puts them there),
// else dist-web/ in the repository, else builds web/main.ts in memory with esbuild (development).

import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export interface DashboardAssets {
  readonly html: string;
  readonly js: string;
  readonly css: string;
}

function candidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  // bundled: dist/spillover.mjs -> dist/web; source: src/broker -> ../../dist-web
  return [join(here, "web"), resolve(here, "../../dist-web")];
}

function repoRoot(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), "../..");
}

let cached: Promise<DashboardAssets | undefined> | undefined;

export function loadDashboardAssets(): Promise<DashboardAssets | undefined> {
  cached ??= load();
  return cached;
}

async function load(): Promise<DashboardAssets | undefined> {
  for (const dir of candidates()) {
    if (existsSync(join(dir, "app.js")) && existsSync(join(dir, "index.html"))) {
      return {
        html: await readFile(join(dir, "index.html"), "utf8"),
        js: await readFile(join(dir, "app.js"), "utf8"),
        css: existsSync(join(dir, "app.css")) ? await readFile(join(dir, "app.css"), "utf8") : "",
      };
    }
  }
  return buildInMemory(repoRoot());
}

/** Builds web/ with esbuild without writing files; also used by scripts/build.mjs. */
export async function buildInMemory(root: string): Promise<DashboardAssets | undefined> {
  const entry = join(root, "web", "main.ts");
  if (!existsSync(entry)) return undefined;
  const spec = "esbuild"; // a variable, so the CLI bundle does not pull esbuild in
  let esbuild: typeof import("esbuild");
  try {
    esbuild = (await import(spec)) as typeof import("esbuild");
  } catch {
    return undefined;
  }
  const r = await esbuild.build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    target: "es2022",
    write: false,
    minify: true,
    logLevel: "silent",
  });
  const js = r.outputFiles[0]?.text ?? "";
  const req = createRequire(join(root, "package.json"));
  const css = await readFile(req.resolve("uplot/dist/uPlot.min.css"), "utf8");
  const html = await readFile(join(root, "web", "index.html"), "utf8");
  return { html, js, css };
}

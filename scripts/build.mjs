// Bundles the CLI (and broker) into one ESM file, dist/spillover.mjs, that runs on Node 20 with no
// node_modules beside it: the form carried to the GPU machine.
import { build } from "esbuild";

await build({
  entryPoints: ["src/cli/bin.ts"],
  outfile: "dist/spillover.mjs",
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  sourcemap: false,
  banner: {
    js: "#!/usr/bin/env node\nimport { createRequire as __spilloverRequire } from 'node:module'; const require = __spilloverRequire(import.meta.url);",
  },
  logLevel: "warning",
});

// The broker's dashboard (web/) next to the bundle: dist/web/{index.html,app.js,app.css}, found by
// src/broker/assets.ts, so `node dist/spillover.mjs broker` serves it with no node_modules.
{
  const { mkdirSync, writeFileSync, readFileSync } = await import("node:fs");
  const web = await build({
    entryPoints: ["web/main.ts"],
    bundle: true,
    format: "esm",
    target: "es2022",
    minify: true,
    write: false,
    logLevel: "warning",
  });
  mkdirSync("dist/web", { recursive: true });
  writeFileSync("dist/web/app.js", web.outputFiles[0].text);
  writeFileSync("dist/web/app.css", readFileSync("node_modules/uplot/dist/uPlot.min.css"));
  writeFileSync("dist/web/index.html", readFileSync("web/index.html"));
}

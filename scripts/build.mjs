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

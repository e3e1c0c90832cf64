#!/usr/bin/env node
// In a clone (src/ is there, and so is the dev dependency tsx) the CLI runs the TypeScript sources:
// an edit never meets a stale build, and no build step is needed. The published package ships no
// src/ and runs the compiled dist/ (built by `prepack`), so it needs neither tsx nor TypeScript.
import { existsSync } from "node:fs";

const sources = new URL("../src/cli/main.ts", import.meta.url);
const compiled = new URL("../dist/cli/main.js", import.meta.url);

async function registerTsx() {
  try {
    (await import("tsx/esm/api")).register();
    return true;
  } catch {
    return false; // a git checkout installed without dev dependencies: use dist/ if built
  }
}

const entry = existsSync(sources) && (await registerTsx()) ? sources : compiled;
if (!existsSync(entry)) {
  process.stderr.write("tollgate: dist/ is not built and tsx is not installed: run `npm run build`\n");
  process.exit(1);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));

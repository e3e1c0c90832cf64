#!/usr/bin/env node
// Runs every *.test.ts under src/ and test/ (or the paths given) with node:test through tsx.
// test/reliability is the separate `npm run test:reliability` suite: walked only when named.
import { spawnSync } from "node:child_process";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function findTests(dir, out) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      if (name !== "reliability") findTests(path, out);
    } else if (name.endsWith(".test.ts")) out.push(path);
  }
  return out;
}

const args = process.argv.slice(2);
const flags = args.filter((arg) => arg.startsWith("--"));
const paths = args.filter((arg) => !arg.startsWith("--"));
const roots = paths.length > 0 ? paths : ["src", "test"];
const files = roots.flatMap((root) => (statSync(root).isDirectory() ? findTests(root, []) : [root])).sort();
const result = spawnSync(
  process.execPath,
  // A test that hangs fails after 10 minutes instead of holding the run until CI's own limit.
  [
    "--import",
    "tsx",
    "--test",
    "--test-reporter=spec",
    "--test-concurrency=2",
    "--test-timeout=600000",
    ...flags,
    ...files,
  ],
  { stdio: "inherit" },
);
process.exit(result.status ?? 1);

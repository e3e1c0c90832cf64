#!/usr/bin/env node
// The reliability suite (test/reliability): replay, crash, outages, hostile input, walk-away, load.
// One file at a time (they measure time and memory); `--quick` for the short CI run.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";

const root = "test/reliability";
const args = process.argv.slice(2);
const quick = args.includes("--quick");
const rest = args.filter((arg) => arg !== "--quick");
const flags = rest.filter((arg) => arg.startsWith("--"));
const paths = rest.filter((arg) => !arg.startsWith("--"));
const files =
  paths.length > 0
    ? paths
    : readdirSync(root)
        .filter((name) => name.endsWith(".test.ts"))
        .sort()
        .map((name) => join(root, name));
const result = spawnSync(
  process.execPath,
  ["--import", "tsx", "--test", "--test-reporter=spec", "--test-concurrency=1", ...flags, ...files],
  { stdio: "inherit", env: { ...process.env, TOLLGATE_RELIABILITY_QUICK: quick ? "1" : "0" } },
);
process.exit(result.status ?? 1);

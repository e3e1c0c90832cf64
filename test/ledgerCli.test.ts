import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openLedger } from "../src/ledger/index.js";
import { paymentAt } from "../src/ledger/testkit/paymentLifecycle.js";
import { runMain } from "./support/runMain.js";

const tempDirs: string[] = [];
after(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

test("tollgate ledger writes every amount with the asset's six decimals, totals and payments alike", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tollgate-ledger-cli-"));
  tempDirs.push(dir);
  const dataDir = join(dir, "ledger");
  const ledger = await openLedger({ dataDir });
  try {
    // Authorized $0.05, charged $0.001234: the figures a trimmed format would write with 2 and 6 decimals.
    await paymentAt(ledger.payments, "settled");
  } finally {
    await ledger.close();
  }
  const run = await runMain(["ledger", "--data-dir", dataDir], { DATABASE_URL: undefined });
  assert.equal(run.code, 0, run.stderr);
  const amounts: string[] = run.stdout.match(/\$[0-9.]+/g) ?? [];
  assert.ok(amounts.includes("$0.050000") && amounts.includes("$0.001234"), run.stdout);
  for (const amount of amounts) assert.match(amount, /^\$[0-9]+\.[0-9]{6}$/, run.stdout);
});

test("tollgate ledger prints a row's words from outside with their control characters written out: one row, one line, no terminal escape", async () => {
  const dir = await mkdtemp(join(tmpdir(), "tollgate-ledger-cli-"));
  tempDirs.push(dir);
  const dataDir = join(dir, "ledger");
  const ledger = await openLedger({ dataDir });
  try {
    // A tool's error naming the buyer's argument: a title escape, a screen clear and a forged row after a line break.
    const claimed = await paymentAt(ledger.payments, "claimed");
    await ledger.payments.markFailed(
      claimed.id,
      "tool lookup failed: Error: no such key \u001b]0;owned\u0007\u001b[2J\n  #999 forged settled\u009b31m",
    );
  } finally {
    await ledger.close();
  }
  const run = await runMain(["ledger", "--data-dir", dataDir], { DATABASE_URL: undefined });
  assert.equal(run.code, 0, run.stderr);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is looked for
  assert.doesNotMatch(run.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, JSON.stringify(run.stdout));
  const rows = run.stdout.split("\n").filter((line) => line.startsWith("  #"));
  assert.equal(rows.length, 1, run.stdout);
  assert.ok(
    rows[0]?.includes("no such key \\u001b]0;owned\\u0007\\u001b[2J\\u000a  #999 forged settled\\u009b31m"),
    run.stdout,
  );
  // --json is as safe on a terminal (C1 written out too, as JSON escapes), and reads back the same words.
  const json = await runMain(["ledger", "--data-dir", dataDir, "--json"], { DATABASE_URL: undefined });
  assert.equal(json.code, 0, json.stderr);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: the control characters are what is looked for
  assert.doesNotMatch(json.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/, JSON.stringify(json.stdout));
  assert.ok(json.stdout.includes("settled\\u009b31m"), json.stdout);
  const report = JSON.parse(json.stdout) as { recent: Array<{ error: string | null }> };
  assert.equal(
    report.recent[0]?.error,
    "tool lookup failed: Error: no such key \u001b]0;owned\u0007\u001b[2J\n  #999 forged settled\u009b31m",
  );
});

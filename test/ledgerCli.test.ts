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

import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { ledgerLockPath, openLedger } from "./openLedger.js";
import { captureLogger } from "./testkit/captureLogger.js";
import { claimInput, payerAddress, transactionHash } from "./testkit/ledgerHarness.js";

const tempDirs: string[] = [];
after(async () => {
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

test("keeps payments, debts and settlements across close and reopen of a data directory", async () => {
  const parent = await mkdtemp(join(tmpdir(), "tollgate-ledger-"));
  tempDirs.push(parent);
  const dataDir = join(parent, "ledger");
  const debtor = payerAddress(0xd0d);
  const debtClaim = claimInput({ payer: debtor, maxAtomic: 2n ** 80n });
  const pendingClaim = claimInput();
  const settlementKey = { network: "eip155:31337", payer: debtor, nonce: 77n };

  const firstLog = captureLogger();
  const first = await openLedger({ dataDir, logger: firstLog.logger });
  const claimed = await first.payments.claim(debtClaim);
  assert.ok(claimed.claimed);
  const id = claimed.payment.id;
  await first.payments.markServing(id);
  await first.payments.recordUsage(
    id,
    {
      promptTokens: 10,
      completionTokens: 20,
      units: { input_tokens: 6, cached_input_tokens: 4, output_tokens: 20 },
    },
    2n ** 79n,
  );
  await first.payments.markSettling(id);
  await first.payments.markDebt(id, "facilitator unreachable");
  const pending = await first.payments.claim(pendingClaim);
  assert.ok(pending.claimed);
  await first.payments.markServing(pending.payment.id);
  await first.settlements.begin(settlementKey, 5n);
  await first.settlements.complete(settlementKey, {
    transaction: transactionHash(1),
    result: { success: true },
  });
  await first.close();
  assert.ok(firstLog.records.some((record) => record.msg === "ledger: migrations applied"));

  const secondLog = captureLogger();
  const second = await openLedger({ dataDir, logger: secondLog.logger });
  try {
    assert.equal(
      secondLog.records.some((record) => record.msg === "ledger: migrations applied"),
      false,
      "migrations are not applied twice",
    );
    assert.equal(await second.payments.hasOpenDebt("eip155:31337", debtor), true);
    assert.equal(
      await second.payments.allocateUnlessInDebt({ network: "eip155:31337", payer: debtor }),
      undefined,
      "a debt marked before the restart still refuses the payer",
    );
    const fresh = await second.payments.allocateUnlessInDebt({
      network: "eip155:31337",
      payer: payerAddress(0xf1),
    });
    assert.ok(fresh !== undefined && fresh > pending.payment.id, "ids go on after the last one written");
    const replay = await second.payments.claim(debtClaim);
    assert.ok(!replay.claimed);
    assert.equal(replay.existing.status, "debt");
    assert.equal(replay.existing.chargeAtomic, 2n ** 79n);
    assert.deepEqual(replay.existing.usage, { input_tokens: 6, cached_input_tokens: 4, output_tokens: 20 });
    assert.deepEqual(
      (await second.payments.pendingForRecovery()).map((p) => [p.id, p.status]),
      [[pending.payment.id, "serving"]],
    );
    const again = await second.settlements.begin(settlementKey, 5n);
    assert.ok(!again.started);
    assert.equal(again.existing.transaction, transactionHash(1));
  } finally {
    await second.close();
  }
});

test("opens an in-memory ledger for memory://", async () => {
  const ledger = await openLedger({ dataDir: "memory://" });
  try {
    assert.ok((await ledger.payments.claim(claimInput())).claimed);
    assert.equal((await ledger.payments.recent()).length, 1);
  } finally {
    await ledger.close();
  }
});

test("one process at a time opens a data directory: another waits, is refused in words it can act on, and loses nothing; a lock left by a stopped process is taken over", async () => {
  const parent = await mkdtemp(join(tmpdir(), "tollgate-ledger-"));
  tempDirs.push(parent);
  const dataDir = join(parent, "ledger");
  const reader = await openLedger({ dataDir });
  assert.ok((await reader.payments.claim(claimInput())).claimed);
  // A gateway starting while a command reads the directory: it would otherwise write rows the reader's
  // close throws away.
  await assert.rejects(
    openLedger({ dataDir, lockTimeoutMs: 200 }),
    (error: Error & { code?: string }) =>
      error.code === "TOLLGATE_LEDGER_FAILED" &&
      /the ledger in .* is open in process \d+: .*stop it first/.test(error.message),
  );
  await reader.close();
  const gateway = await openLedger({ dataDir, lockTimeoutMs: 200 });
  assert.ok((await gateway.payments.claim(claimInput())).claimed);
  await gateway.close();

  // A process killed while it held the directory left its lock behind.
  const stoppedPid = Number(
    execFileSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]),
  );
  await writeFile(ledgerLockPath(dataDir), String(stoppedPid));
  const after = await openLedger({ dataDir, lockTimeoutMs: 200 });
  try {
    assert.equal((await after.payments.recent()).length, 2, "both processes' rows are there");
  } finally {
    await after.close();
  }
  await assert.rejects(readFile(ledgerLockPath(dataDir), "utf8"), "the lock goes with the close");

  // An earlier run under this same process id (a container's pid 1, killed) left its lock: taken over too.
  await writeFile(ledgerLockPath(dataDir), String(process.pid));
  const restarted = await openLedger({ dataDir, lockTimeoutMs: 200 });
  await restarted.close();
});

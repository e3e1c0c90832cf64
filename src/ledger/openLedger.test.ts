import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { openLedger } from "./openLedger.js";
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

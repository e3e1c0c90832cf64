import assert from "node:assert/strict";
import { beforeEach, describe, test } from "node:test";
import type { AuthorizationKeyInput } from "../normalizeAuthorizationKey.js";
import type { SettlementLog } from "../SettlementLog.js";
import { type LedgerHarness, payerAddress, transactionHash } from "./ledgerHarness.js";

let nextNonce = 1n;
function freshKey(): AuthorizationKeyInput {
  return { network: "eip155:31337", payer: payerAddress(0x5e7), nonce: nextNonce++ };
}

const settleResponse = (transaction: string, amount: bigint) => ({
  success: true,
  payer: payerAddress(0x5e7),
  transaction,
  network: "eip155:31337",
  amount: amount.toString(),
});

/** The facilitator's settlement log, run against each SQL adapter. */
export function describeSettlementLog(label: string, current: () => LedgerHarness): void {
  describe(`SettlementLog (${label})`, () => {
    let harness: LedgerHarness;
    let settlements: SettlementLog;
    beforeEach(async () => {
      harness = current();
      settlements = harness.ledger.settlements;
      await harness.reset();
    });

    test("begins a settlement once; a second begin sees the first", async () => {
      const key = freshKey();
      const first = await settlements.begin(key, 31_337n);
      assert.ok(first.started);
      assert.equal(first.settlement.status, "in_flight");
      assert.equal(first.settlement.amountAtomic, 31_337n);
      const second = await settlements.begin(
        { ...key, payer: key.payer.toUpperCase().replace("0X", "0x") },
        99n,
      );
      assert.ok(!second.started);
      assert.equal(second.existing.id, first.settlement.id);
      assert.equal(second.existing.amountAtomic, 31_337n, "the second amount does not overwrite the first");
    });

    test("lets exactly one of 20 concurrent begins start", async () => {
      const key = freshKey();
      const results = await Promise.all(Array.from({ length: 20 }, () => settlements.begin(key, 1n)));
      assert.equal(results.filter((result) => result.started).length, 1);
    });

    test("returns the first result to every later caller once complete", async () => {
      const key = freshKey();
      await settlements.begin(key, 2n ** 100n);
      const result = settleResponse(transactionHash(1), 2n ** 100n);
      const done = await settlements.complete(key, { transaction: transactionHash(1), result });
      assert.equal(done.status, "succeeded");
      assert.equal(done.transaction, transactionHash(1));
      assert.deepEqual(done.result, result);
      assert.ok(done.completedAt instanceof Date);
      const again = await settlements.begin(key, 2n ** 100n);
      assert.ok(!again.started);
      assert.equal(again.existing.status, "succeeded");
      assert.deepEqual(again.existing.result, result);
      assert.equal(again.existing.amountAtomic, 2n ** 100n);
      assert.deepEqual(await settlements.get(key), done);
    });

    test("refuses to complete or fail a settlement twice, or one never begun", async () => {
      const key = freshKey();
      await settlements.begin(key, 5n);
      await settlements.complete(key, {
        transaction: transactionHash(2),
        result: settleResponse(transactionHash(2), 5n),
      });
      await assert.rejects(
        settlements.complete(key, { transaction: transactionHash(3), result: {} }),
        /cannot move from succeeded to succeeded/,
      );
      await assert.rejects(settlements.fail(key, { result: {} }), /cannot move from succeeded to failed/);
      assert.equal((await settlements.get(key))?.transaction, transactionHash(2));
      await assert.rejects(settlements.fail(freshKey(), { result: {} }), /never begun/);
    });

    test("records a zero amount with no transaction", async () => {
      const key = freshKey();
      await settlements.begin(key, 0n);
      const done = await settlements.complete(key, { transaction: "", result: settleResponse("", 0n) });
      assert.equal(done.status, "succeeded");
      assert.equal(done.transaction, null);
    });

    test("retries a failed settlement, but never a succeeded or in-flight one", async () => {
      const key = freshKey();
      await settlements.begin(key, 10n);
      const failed = await settlements.fail(key, {
        result: { success: false, errorReason: "rpc_unreachable" },
      });
      assert.equal(failed.status, "failed");
      assert.deepEqual(failed.result, { success: false, errorReason: "rpc_unreachable" });
      const retried = await settlements.retry(key, 10n);
      assert.ok(retried.started);
      assert.equal(retried.settlement.status, "in_flight");
      assert.equal(retried.settlement.result, null);
      const whileInFlight = await settlements.retry(key, 10n);
      assert.ok(!whileInFlight.started);
      await settlements.complete(key, { transaction: transactionHash(4), result: {} });
      const afterSuccess = await settlements.retry(key, 10n);
      assert.ok(!afterSuccess.started);
      assert.equal(afterSuccess.existing.status, "succeeded");
      await assert.rejects(settlements.retry(freshKey(), 1n), /never begun/);
    });

    test("reopens a success only for the transaction it recorded, back in flight", async () => {
      const key = freshKey();
      await settlements.begin(key, 10n);
      await settlements.complete(key, { transaction: transactionHash(5), result: { success: true } });
      assert.equal(await settlements.reopen(key, transactionHash(6)), false, "another transaction");
      assert.equal((await settlements.get(key))?.status, "succeeded");
      assert.equal(await settlements.reopen(key, transactionHash(5)), true);
      const reopened = await settlements.get(key);
      assert.equal(reopened?.status, "in_flight");
      assert.equal(reopened?.transaction, null);
      assert.equal(await settlements.reopen(key, transactionHash(5)), false, "only once");
      const failedKey = freshKey();
      await settlements.begin(failedKey, 10n);
      await settlements.fail(failedKey, { result: { success: false } });
      assert.equal(
        await settlements.reopen(failedKey, transactionHash(5)),
        false,
        "a failure is not reopened",
      );
    });

    test("lists settlements left in flight, oldest first", async () => {
      const a = freshKey();
      const b = freshKey();
      const c = freshKey();
      await settlements.begin(a, 1n);
      await settlements.begin(b, 2n);
      await settlements.begin(c, 3n);
      await settlements.complete(b, { transaction: transactionHash(5), result: {} });
      assert.deepEqual(
        (await settlements.inFlight()).map((s) => s.amountAtomic),
        [1n, 3n],
      );
      assert.deepEqual(await settlements.inFlight({ startedBefore: new Date(Date.now() - 60_000) }), []);
      assert.equal(await settlements.get(freshKey()), undefined);
    });
  });
}

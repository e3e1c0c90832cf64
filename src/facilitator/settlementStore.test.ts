import assert from "node:assert/strict";
import { test } from "node:test";
import type { SettleResponse } from "@x402/core/types";
import { createMemorySettlementStore } from "./settlementStore.js";

const key = (nonce: number) => ({ network: "eip155:31337", payer: "0xabc", nonce: String(nonce) });
const success = (nonce: number): SettleResponse => ({
  success: true,
  transaction: `0x${nonce.toString(16).padStart(64, "0")}`,
  network: "eip155:31337",
  amount: "10",
});
const failure: SettleResponse = {
  success: false,
  errorReason: "x",
  transaction: "",
  network: "eip155:31337",
};

test("the memory settlement store answers a settlement in flight or done, forgets failures, and keeps only the latest successes", async () => {
  const store = createMemorySettlementStore({ kept: 3 });
  assert.deepEqual(await store.begin(key(1), 10n), { started: true });
  assert.deepEqual(await store.begin(key(1), 10n), { started: false, existing: { status: "in_flight" } });
  await store.succeed(key(1), success(1));
  assert.deepEqual(await store.begin(key(1), 10n), {
    started: false,
    existing: { status: "succeeded", result: success(1) },
  });

  // A failed attempt leaves nothing behind: garbage keys do not pile up, and it may be tried again.
  for (let nonce = 100; nonce < 1_100; nonce++) {
    assert.deepEqual(await store.begin(key(nonce), 10n), { started: true });
    await store.fail(key(nonce), failure);
  }
  assert.deepEqual(await store.begin(key(100), 10n), { started: true });
  await store.fail(key(100), failure);

  // Beyond `kept` successes the oldest is left to the chain (its nonce is spent there).
  for (const nonce of [2, 3, 4]) {
    await store.begin(key(nonce), 10n);
    await store.succeed(key(nonce), success(nonce));
  }
  assert.deepEqual(await store.begin(key(1), 10n), { started: true }, "the oldest success forgotten");
  await store.fail(key(1), failure);
  for (const nonce of [2, 3, 4])
    assert.equal((await store.begin(key(nonce), 10n)).started, false, `success ${nonce} remembered`);
});

test("the memory settlement store reopens a success only for the transaction it recorded, back in flight", async () => {
  const store = createMemorySettlementStore();
  await store.begin(key(7), 10n);
  await store.succeed(key(7), success(7));
  assert.equal(await store.reopen(key(7), success(8).transaction), false, "another transaction");
  assert.equal(await store.reopen(key(7), success(7).transaction), true);
  assert.deepEqual(await store.begin(key(7), 10n), { started: false, existing: { status: "in_flight" } });
  assert.equal(await store.reopen(key(7), success(7).transaction), false, "only once");
  assert.equal(await store.reopen(key(9), success(9).transaction), false, "never settled");
});

import assert from "node:assert/strict";
import { after, test } from "node:test";
import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { silentLogger } from "../errors/index.js";
import { openPgliteHarness, transactionHash } from "../ledger/testkit/ledgerHarness.js";
import { paymentAt } from "../ledger/testkit/paymentLifecycle.js";
import { settleRecordedCharge } from "./settleRecordedCharge.js";

const harness = await openPgliteHarness();
after(() => harness.ledger.close());

/** Settles a recorded charge of 1,234 through a facilitator that answers `answer`; the row and the receipt. */
async function settledBy(answer: Partial<SettleResponse>) {
  const payment = await paymentAt(harness.ledger.payments, "settling");
  const settlement = await settleRecordedCharge({
    ledger: harness.ledger.payments,
    facilitator: {
      verify: async () => ({ isValid: true }),
      getSupported: async () => ({ kinds: [], extensions: [], signers: {} }),
      settle: async (_payload, requirements) => ({
        success: true,
        transaction: "",
        network: requirements.network,
        ...answer,
      }),
    },
    logger: silentLogger,
    paymentId: payment.id,
    payload: payment.paymentPayload as PaymentPayload,
    requirements: payment.paymentRequirements as PaymentRequirements,
    chargeAtomic: 1_234n,
  });
  return { settlement, row: await harness.ledger.payments.get(payment.id) };
}

test("a facilitator's success that shows no transfer of the charge is a failed settlement: the payer owes it", async () => {
  // As a facilitator answers when the buyer settled its own authorization for nothing first.
  const none = await settledBy({ transaction: "" });
  assert.equal(none.settlement.success, false);
  assert.equal(none.settlement.errorReason, "settlement_mismatch");
  assert.equal(none.row?.status, "debt");
  const other = await settledBy({ transaction: transactionHash(7), amount: "1" });
  assert.equal(other.settlement.errorReason, "settlement_mismatch");
  assert.match(other.settlement.errorMessage ?? "", /success for 1, not the charge of 1234/);
  assert.equal(other.row?.status, "debt");

  const honest = await settledBy({ transaction: transactionHash(8), amount: "1234" });
  assert.equal(honest.settlement.success, true);
  assert.equal(honest.row?.status, "settled");
  assert.equal(honest.row?.transaction, transactionHash(8));
});

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  canTransitionPayment,
  isFinalPaymentStatus,
  isPaymentStatus,
  paymentStatuses,
  pendingPaymentStatuses,
} from "./paymentStatus.js";
import { expectedTransitions } from "./testkit/paymentLifecycle.js";

test("allows exactly the moves of the design's status machine", () => {
  for (const from of paymentStatuses) {
    for (const to of paymentStatuses) {
      assert.equal(
        canTransitionPayment(from, to),
        expectedTransitions.has(`${from}>${to}`),
        `${from} → ${to}`,
      );
    }
  }
});

test("treats zero and failed as final, and debt and settled (which the chain may take back) as still open", () => {
  assert.deepEqual(paymentStatuses.filter(isFinalPaymentStatus), ["zero", "failed"]);
  assert.deepEqual(pendingPaymentStatuses, ["claimed", "serving", "metered", "settling"]);
});

test("recognises only the eight statuses", () => {
  assert.equal(paymentStatuses.length, 8);
  assert.ok(paymentStatuses.every(isPaymentStatus));
  assert.equal(isPaymentStatus("pending"), false);
  assert.equal(isPaymentStatus(undefined), false);
});

import type { PaymentLedger, PaymentRecord } from "../PaymentLedger.js";
import type { PaymentStatus } from "../paymentStatus.js";
import { claimInput, transactionHash } from "./ledgerHarness.js";

/** The status machine as the design states it, written out independently of the implementation. */
export const expectedTransitions = new Set([
  "claimed>serving",
  "claimed>failed",
  "serving>metered",
  "serving>failed",
  "metered>settling",
  "settling>settled",
  "settling>zero",
  "settling>debt",
  "debt>settled",
  "settled>debt",
]);

export const usage = { promptTokens: 120, completionTokens: 80 };

/** Drives a freshly claimed payment to `status` through allowed moves only. */
export async function paymentAt(
  payments: PaymentLedger,
  status: PaymentStatus,
  n = 0,
): Promise<PaymentRecord> {
  const { payment } = (await payments.claim(claimInput())) as { payment: PaymentRecord };
  if (status === "claimed") return payment;
  if (status === "failed") return payments.markFailed(payment.id, "backend refused the connection");
  await payments.markServing(payment.id);
  if (status === "serving") return payment;
  await payments.recordUsage(payment.id, usage, 1_234n);
  if (status === "metered") return payment;
  await payments.markSettling(payment.id);
  if (status === "settling") return payment;
  if (status === "settled")
    return payments.markSettled(payment.id, { transaction: transactionHash(n), chargeAtomic: 1_234n });
  if (status === "zero") return payments.markSettled(payment.id, { transaction: "", chargeAtomic: 0n });
  return payments.markDebt(payment.id, "facilitator unreachable");
}

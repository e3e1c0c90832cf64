import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { type Logger, TollgateError } from "../errors/index.js";
import type { PaymentLedger } from "../ledger/index.js";
import type { FacilitatorLike } from "./facilitatorLike.js";

export type ChargeUsage = { promptTokens: number; completionTokens: number; source: "backend" | "tokenizer" };

export type SettleChargeParameters = {
  ledger: PaymentLedger;
  facilitator: FacilitatorLike;
  logger: Logger;
  paymentId: number;
  payload: PaymentPayload;
  requirements: PaymentRequirements;
  usage: ChargeUsage;
  chargeAtomic: bigint;
};

/** How a delivered request's money ended. */
export type ChargeOutcome = { settlement: SettleResponse; chargeAtomic: bigint; usage: ChargeUsage };

/**
 * Records the usage and settles its charge through the facilitator. A failed settlement of a
 * delivered request becomes a debt in the ledger (the payer is refused until it is paid);
 * it never throws for a payment reason, so the response can still carry its receipt.
 */
export async function settleCharge({
  ledger,
  facilitator,
  logger,
  paymentId,
  payload,
  requirements,
  usage,
  chargeAtomic,
}: SettleChargeParameters): Promise<ChargeOutcome> {
  await ledger.recordUsage(
    paymentId,
    { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens },
    chargeAtomic,
  );
  await ledger.markSettling(paymentId);
  let settlement: SettleResponse;
  try {
    settlement = await facilitator.settle(payload, { ...requirements, amount: chargeAtomic.toString() });
  } catch (error) {
    const reason =
      error instanceof TollgateError
        ? error.code.toLowerCase()
        : `facilitator_error: ${(error as Error).message}`.slice(0, 300);
    settlement = { success: false, errorReason: reason, transaction: "", network: requirements.network };
  }
  if (settlement.success) {
    await ledger.markSettled(paymentId, { transaction: settlement.transaction, chargeAtomic });
  } else {
    await ledger.markDebt(paymentId, settlement.errorReason ?? "settlement_failed");
    logger.warn(
      { paymentId, reason: settlement.errorReason, chargeAtomic: chargeAtomic.toString() },
      "settlement failed after delivery; recorded as debt",
    );
  }
  return { settlement: { ...settlement, amount: chargeAtomic.toString() }, chargeAtomic, usage };
}

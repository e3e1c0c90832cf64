import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import type { Logger } from "../errors/index.js";
import type { PaymentLedger } from "../ledger/index.js";
import type { UsageUnit } from "../pricing/index.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import { retryLedgerWrite } from "./retryLedgerWrite.js";
import {
  DEFAULT_SETTLE_TIMEOUT_MS,
  type SettlementOutcome,
  settleRecordedCharge,
} from "./settleRecordedCharge.js";

/** What a delivered request is charged for: token totals, and every unit it used. */
export type ChargeUsage = {
  promptTokens: number;
  completionTokens: number;
  /** Usage per unit, what the charge is computed from. */
  units: Partial<Record<UsageUnit, number>>;
  source: "backend" | "tokenizer";
};

export type SettleChargeParameters = {
  ledger: PaymentLedger;
  facilitator: FacilitatorLike;
  logger: Logger;
  paymentId: number;
  payload: PaymentPayload;
  requirements: PaymentRequirements;
  usage: ChargeUsage;
  chargeAtomic: bigint;
  /** Bound on the wait for the facilitator; see `settleRecordedCharge`. */
  settleTimeoutMs?: number;
  /** Told once the usage and charge are recorded, before settlement starts. */
  onMetered?: () => void;
  /** Told how the settlement ended; see `settleRecordedCharge`. */
  onOutcome?: (outcome: SettlementOutcome) => void;
};

/** How a delivered request's money ended. */
export type ChargeOutcome = { settlement: SettleResponse; chargeAtomic: bigint; usage: ChargeUsage };

/**
 * Records the usage and settles its charge through the facilitator. A failed settlement of a
 * delivered request becomes a debt in the ledger (the payer is refused until it is paid);
 * it never throws for a payment reason, so the response can still carry its receipt. A database
 * that is out while the charge is recorded is waited for, up to the settlement's own bound.
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
  settleTimeoutMs,
  onMetered,
  onOutcome,
}: SettleChargeParameters): Promise<ChargeOutcome> {
  const recorded = (write: () => Promise<unknown>) =>
    retryLedgerWrite({
      write,
      alreadyDone: () => ledger.get(paymentId),
      withinMs: settleTimeoutMs ?? DEFAULT_SETTLE_TIMEOUT_MS,
      paymentId,
      logger,
    });
  await recorded(() =>
    ledger.recordUsage(
      paymentId,
      { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, units: usage.units },
      chargeAtomic,
    ),
  );
  onMetered?.();
  await recorded(() => ledger.markSettling(paymentId));
  const settlement = await settleRecordedCharge({
    ledger,
    facilitator,
    logger,
    paymentId,
    payload,
    requirements,
    chargeAtomic,
    settleTimeoutMs,
    onOutcome,
  });
  return { settlement: { ...settlement, amount: chargeAtomic.toString() }, chargeAtomic, usage };
}

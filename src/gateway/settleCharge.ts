import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import type { Logger } from "../errors/index.js";
import type { PaymentLedger } from "../ledger/index.js";
import type { UsageUnit } from "../pricing/index.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import { paymentRowWriter } from "./retryLedgerWrite.js";
import {
  AUTHORIZATION_LAPSED,
  authorizationLapsed,
  DEFAULT_SETTLE_TIMEOUT_MS,
  SETTLEMENT_PENDING,
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
  /** Who counted the prompt: the backend (its report, believed) or the gateway (`countPromptTokens`). */
  promptSource?: "backend" | "gateway";
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

/** How long a delivered request's charge waits for a database that is out before it is given up. */
export const RECORDING_RETRY_MS = 15 * 60_000;

/**
 * Records the usage and settles its charge through the facilitator. A failed settlement of a
 * delivered request becomes a debt in the ledger (the payer is refused until it is paid);
 * it never throws for a payment reason, so the response can still carry its receipt. A database
 * that is out while the charge is recorded is waited for (`RECORDING_RETRY_MS`); past the
 * settlement's own bound the answer says `settlement_pending`, and the charge is recorded and
 * settled when the database is back.
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
  settleTimeoutMs = DEFAULT_SETTLE_TIMEOUT_MS,
  onMetered,
  onOutcome,
}: SettleChargeParameters): Promise<ChargeOutcome> {
  const startedAt = Date.now();
  const recorded = paymentRowWriter({ ledger, paymentId, withinMs: RECORDING_RETRY_MS, logger });
  const recording = (async () => {
    await recorded(() =>
      ledger.recordUsage(
        paymentId,
        { promptTokens: usage.promptTokens, completionTokens: usage.completionTokens, units: usage.units },
        chargeAtomic,
      ),
    );
    onMetered?.();
    await recorded(() => ledger.markSettling(paymentId));
  })();
  const settle = (timeoutMs: number) =>
    settleRecordedCharge({
      ledger,
      facilitator,
      logger,
      paymentId,
      payload,
      requirements,
      chargeAtomic,
      settleTimeoutMs: timeoutMs,
      onOutcome,
    });
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), settleTimeoutMs);
  });
  try {
    if ((await Promise.race([recording.then(() => "recorded" as const), timedOut])) === "timeout") {
      // The buyer is not kept waiting on the database: its charge is recorded and settled once it is back.
      // One whose authorization lapsed meanwhile can no longer be collected: the seller's outage is its
      // loss, a debt that does not refuse the payer (settled, it would fail as expired, a debt that does).
      recording
        .then(async () => {
          if (!authorizationLapsed(payload)) return settle(settleTimeoutMs);
          await recorded(() => ledger.markDebt(paymentId, AUTHORIZATION_LAPSED, { blocksPayer: false }));
          onOutcome?.({ kind: "debt", reason: AUTHORIZATION_LAPSED });
          logger.warn(
            { paymentId, chargeAtomic: chargeAtomic.toString() },
            "a delivered request's charge was recorded after its authorization lapsed; its payer is not refused for it",
          );
        })
        .catch((error: unknown) =>
          logger.error(
            { paymentId, error: String(error) },
            "a delivered request's charge was never recorded",
          ),
        );
      const pending: SettleResponse = {
        success: false,
        errorReason: SETTLEMENT_PENDING,
        transaction: "",
        network: requirements.network,
      };
      return { settlement: { ...pending, amount: chargeAtomic.toString() }, chargeAtomic, usage };
    }
  } finally {
    clearTimeout(timer);
  }
  const settlement = await settle(Math.max(0, settleTimeoutMs - (Date.now() - startedAt)));
  return { settlement: { ...settlement, amount: chargeAtomic.toString() }, chargeAtomic, usage };
}

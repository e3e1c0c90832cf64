import type { PaymentPayload, PaymentRequirements, SettleResponse } from "@x402/core/types";
import { type Logger, TollgateError } from "../errors/index.js";
import type { PaymentLedger } from "../ledger/index.js";
import type { FacilitatorLike } from "./facilitatorLike.js";
import { paymentRowWriter, retryLedgerWrite } from "./retryLedgerWrite.js";

/** The facilitator's answer when another settle of the same authorization is still in flight. */
export const SETTLEMENT_IN_PROGRESS = "settlement_in_progress";
/** The receipt's reason when the settlement outlived `settleTimeoutMs`; the ledger records it when it ends. */
export const SETTLEMENT_PENDING = "settlement_pending";

/** The reason of a debt whose authorization lapsed before the gateway settled it. */
export const AUTHORIZATION_LAPSED =
  "authorization_lapsed_unsettled: its deadline passed before the gateway settled it (the gateway or its facilitator was down); the charge is the seller's loss, and its payer is not refused for it";

/** Seconds before its deadline an authorization is taken as lapsed: a settlement sent then may be mined after it. */
const LAPSE_MARGIN_SECONDS = 6n;

/** The deadline (unix s) an upto or exact payment's authorization was signed with, when it names one. */
export function authorizationDeadlineOf(payload: PaymentPayload): bigint | undefined {
  const inner = (payload as { payload?: Record<string, unknown> }).payload;
  const permit = inner?.permit2Authorization as { deadline?: unknown } | undefined;
  const auth = inner?.authorization as { validBefore?: unknown } | undefined;
  const value = permit?.deadline ?? auth?.validBefore;
  return typeof value === "string" && /^[0-9]+$/.test(value) ? BigInt(value) : undefined;
}

/** Whether an authorization's deadline has passed, or is too close for a settlement sent now. */
export function authorizationLapsed(payload: PaymentPayload): boolean {
  const deadline = authorizationDeadlineOf(payload);
  return deadline !== undefined && deadline <= BigInt(Math.floor(Date.now() / 1000)) + LAPSE_MARGIN_SECONDS;
}

/** Settlement failures of the seller's making: the facilitator could not send it, or not reach the chain. */
const SELLER_SIDE_REASONS: ReadonlySet<string> = new Set([
  "tollgate_facilitator_unavailable",
  "tollgate_chain_unavailable",
]);

/** The receipt's reason when the facilitator answered success for something else than the charge. */
export const SETTLEMENT_MISMATCH = "settlement_mismatch";

/** Default bound on how long a request waits for its settlement. */
export const DEFAULT_SETTLE_TIMEOUT_MS = 90_000;

export type SettleRecordedChargeParameters = {
  ledger: PaymentLedger;
  facilitator: FacilitatorLike;
  logger: Logger;
  /** A payment in `settling`, whose charge is recorded. */
  paymentId: number;
  payload: PaymentPayload;
  requirements: PaymentRequirements;
  chargeAtomic: bigint;
  /** How long to wait for the facilitator before answering `settlement_pending`; the outcome is still recorded. */
  settleTimeoutMs?: number;
  /**
   * Told how the settlement ended: `settled` as soon as the facilitator confirms (before the row records it),
   * `debt` once the row records the debt.
   */
  onOutcome?: (outcome: SettlementOutcome) => void;
};

/** How a settlement ended, for `onOutcome`. */
export type SettlementOutcome =
  | { kind: "settled"; settlement: SettleResponse }
  | { kind: "debt"; reason: string };

/**
 * Settles a recorded charge through the facilitator and records the outcome: settled (or zero), or a debt
 * when the settlement failed. An in-flight duplicate (`settlement_in_progress`) leaves the row `settling`
 * for recovery to reconcile from the chain. The wait is bounded: past `settleTimeoutMs` this answers
 * `settlement_pending` and the ledger records the real outcome when the facilitator answers.
 */
export async function settleRecordedCharge({
  ledger,
  facilitator,
  logger,
  paymentId,
  payload,
  requirements,
  chargeAtomic,
  settleTimeoutMs = DEFAULT_SETTLE_TIMEOUT_MS,
  onOutcome,
}: SettleRecordedChargeParameters): Promise<SettleResponse> {
  // The facilitator's answer is money that moved (or did not): the database being out must not lose it.
  const recorded = paymentRowWriter({ ledger, paymentId, withinMs: settleTimeoutMs, logger });
  const attempt = (async (): Promise<SettleResponse> => {
    let settlement: SettleResponse;
    try {
      // An in-process facilitator whose settlement log is out has sent nothing: tried again, as its
      // log and the authorization's nonce keep a settlement from ever being made twice.
      settlement = await retryLedgerWrite({
        write: () => facilitator.settle(payload, { ...requirements, amount: chargeAtomic.toString() }),
        withinMs: settleTimeoutMs,
        paymentId,
        logger,
      });
    } catch (error) {
      const reason =
        error instanceof TollgateError
          ? error.code.toLowerCase()
          : `facilitator_error: ${(error as Error).message}`.slice(0, 300);
      settlement = { success: false, errorReason: reason, transaction: "", network: requirements.network };
    }
    // A success that shows no transfer of the charge (no transaction, or another amount) is not this
    // charge's settlement, whatever the facilitator's reasons: it is a failure, recorded as a debt.
    const mismatch = settlement.success ? settlementMismatch(settlement, chargeAtomic) : undefined;
    if (mismatch) {
      logger.warn({ paymentId, transaction: settlement.transaction, amount: settlement.amount }, mismatch);
      settlement = {
        success: false,
        errorReason: SETTLEMENT_MISMATCH,
        errorMessage: mismatch,
        transaction: "",
        network: requirements.network,
      };
    }
    if (settlement.success) {
      // Told once the ledger holds it, so what is counted as settled never runs ahead of the books.
      await recorded(() =>
        ledger.markSettled(paymentId, { transaction: settlement.transaction, chargeAtomic }),
      );
      onOutcome?.({ kind: "settled", settlement });
    } else if (settlement.errorReason === SETTLEMENT_IN_PROGRESS) {
      logger.warn(
        { paymentId },
        "another settlement of this authorization is in flight; recovery reconciles it",
      );
    } else {
      // Failed for the seller's side (its facilitator's wallet without gas, its chain RPC out): still owed,
      // and retried by recovery, but its payer, who caused nothing, is not refused for it.
      const blocksPayer = !SELLER_SIDE_REASONS.has(settlement.errorReason ?? "");
      await recorded(() =>
        ledger.markDebt(paymentId, settlement.errorReason ?? "settlement_failed", { blocksPayer }),
      );
      onOutcome?.({ kind: "debt", reason: settlement.errorReason ?? "settlement_failed" });
      logger.warn(
        { paymentId, reason: settlement.errorReason, chargeAtomic: chargeAtomic.toString() },
        "settlement failed after delivery; recorded as debt",
      );
    }
    return settlement;
  })();

  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), settleTimeoutMs);
  });
  try {
    const settlement = await Promise.race([attempt, timedOut]);
    if (settlement !== undefined) return settlement;
  } finally {
    clearTimeout(timer);
  }
  attempt.catch((error: unknown) =>
    logger.error({ paymentId, error: String(error) }, "late settlement failed to record"),
  );
  logger.warn(
    { paymentId, settleTimeoutMs },
    "settlement outlived its timeout; the ledger records its outcome when the facilitator answers",
  );
  return { success: false, errorReason: SETTLEMENT_PENDING, transaction: "", network: requirements.network };
}

/** Why a successful settlement is not the settlement of `chargeAtomic`, or undefined when it is. */
function settlementMismatch(settlement: SettleResponse, chargeAtomic: bigint): string | undefined {
  if (chargeAtomic === 0n) return undefined;
  if (!settlement.transaction)
    return `the facilitator answered success with no transaction for a charge of ${chargeAtomic}`;
  const amount = settlement.amount;
  if (amount !== undefined && amount !== "" && !(/^[0-9]+$/.test(amount) && BigInt(amount) === chargeAtomic))
    return `the facilitator answered success for ${amount}, not the charge of ${chargeAtomic}`;
  return undefined;
}

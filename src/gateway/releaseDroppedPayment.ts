import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import type { Logger } from "../errors/index.js";
import { isBatchSettlementPayment, sponsoredApprovalOf } from "../facilitator/index.js";
import type { FacilitatorLike } from "./facilitatorLike.js";

export type ReleaseDroppedPaymentParameters = {
  facilitator: FacilitatorLike;
  payload: PaymentPayload;
  requirements: PaymentRequirements;
  logger: Logger;
  /** Bound on the facilitator's answer (ms); default `RELEASE_TIMEOUT_MS`. */
  timeoutMs?: number | undefined;
};

/** How long a release waits for the facilitator before the buyer is answered without it. */
export const RELEASE_TIMEOUT_MS = 10_000;

/**
 * Tells the facilitator that a payment it verified is dropped unsettled (refused after verify, or not
 * served), so that what it holds for the payment is given back: a `tollgate facilitator` holds the
 * payment's EIP-2612 permit nonce from verify to settle, refusing the payer's next payments on that nonce
 * until the permit's deadline, and the sponsored use it took for the permit. Only a payment carrying an
 * EIP-2612 permit holds either. Call it once the payment can no longer be settled (its row is `failed`,
 * or it was never claimed), and never for a replay, whose payment may be being served: the release names
 * the payment. Never throws: a release that fails is logged, and the nonce stays held until its deadline.
 */
export async function releaseDroppedPayment({
  facilitator,
  payload,
  requirements,
  logger,
  timeoutMs = RELEASE_TIMEOUT_MS,
}: ReleaseDroppedPaymentParameters): Promise<void> {
  if (!facilitator.release || isBatchSettlementPayment(requirements)) return;
  if (sponsoredApprovalOf(payload)?.extension !== "eip2612GasSponsoring") return;
  try {
    const released = await facilitator.release(payload, requirements, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (!released.released && released.reason === "settling")
      logger.warn(
        { payer: sponsoredApprovalOf(payload)?.info.from },
        "a dropped payment's settle had begun at the facilitator: its permit nonce stays held until that settle ends",
      );
  } catch (error) {
    logger.warn(
      { error: String(error) },
      "the facilitator could not be told a verified payment was dropped: its permit nonce stays held until the permit's deadline",
    );
  }
}

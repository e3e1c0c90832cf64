import type { ReportedUsage } from "./BuyerEvent.js";
import {
  boundedUsage,
  justifiedChargeAtomic,
  maxCompletionTokensOf,
  type QuotedPrice,
  type RequestEstimate,
} from "./quotedPrice.js";
import type { DisputeReason } from "./SpendStore.js";

export type VerifyChargeParameters = {
  chargedAtomic: bigint;
  /** What the receipt states was charged, when it says: an exact payment moves its price whatever this is. */
  statedAtomic?: bigint | undefined;
  /** The maximum the buyer signed. */
  maxAtomic: bigint;
  /** The usage the seller reported (receipt or response body). */
  usage?: ReportedUsage | undefined;
  /** The prices the seller quoted before the buyer signed (never the receipt's own). */
  price?: QuotedPrice | undefined;
  /** The buyer's own bounds on the request: no honest usage exceeds them. */
  estimate?: RequestEstimate | undefined;
  /**
   * When the seller says it counted the prompt itself (the backend reported none): the most its count
   * can honestly say (`buyerPromptCount`). A charge only a larger prompt explains is flagged.
   */
  promptCountLimit?: number | undefined;
};

export type VerifyChargeReturnType =
  | { ok: true; justifiedAtomic: bigint | undefined }
  | { ok: false; reason: DisputeReason; justifiedAtomic: bigint | undefined; message: string };

/**
 * Trust, but verify: recomputes what the usage justifies at the quoted prices (rounded up, as
 * `costAtomic` does) and flags a charge above it, or above the signed maximum, and a receipt that
 * states another charge than the one that moved (`misstated_charge`). Reported usage
 * beyond the buyer's own bounds (its prompt bound, its output limit × completions) is not believed: the
 * justified charge uses the bounded usage, and a charge only the inflated usage explains is
 * flagged as `usage_above_bound`, as is a charge reported with no usage above what the buyer's own
 * bounds cost at the quoted prices (`expectedMaxAtomic`). A prompt the seller counted itself is held to
 * the buyer's own count of it (`promptCountLimit`): a charge above what that justifies is flagged too.
 */
export function verifyCharge({
  chargedAtomic,
  statedAtomic,
  maxAtomic,
  usage,
  price,
  estimate,
  promptCountLimit,
}: VerifyChargeParameters): VerifyChargeReturnType {
  const reported = usage && price ? justifiedChargeAtomic(usage, price) : undefined;
  const bounded =
    usage && price && estimate
      ? justifiedChargeAtomic(
          boundedUsage(usage, estimate.promptTokenBound, maxCompletionTokensOf(estimate), {
            images: estimate.images,
            inputCharacters: estimate.inputCharacters,
            computeMs: estimate.computeMsBound,
            promptCache: estimate.promptCache,
          }),
          price,
        )
      : reported;
  if (statedAtomic !== undefined && statedAtomic !== chargedAtomic) {
    return {
      ok: false,
      reason: "misstated_charge",
      justifiedAtomic: bounded,
      message: `the receipt states ${statedAtomic} charged where the payment moved ${chargedAtomic}`,
    };
  }
  if (chargedAtomic > maxAtomic) {
    return {
      ok: false,
      reason: "above_maximum",
      justifiedAtomic: bounded,
      message: `charged ${chargedAtomic} above the signed maximum ${maxAtomic}`,
    };
  }
  if (reported !== undefined && chargedAtomic > reported) {
    return {
      ok: false,
      reason: "above_usage",
      justifiedAtomic: bounded,
      message: `charged ${chargedAtomic} where the reported usage justifies ${reported}`,
    };
  }
  if (bounded !== undefined && chargedAtomic > bounded) {
    return {
      ok: false,
      reason: "usage_above_bound",
      justifiedAtomic: bounded,
      message: `charged ${chargedAtomic} for usage above the buyer's own bounds (justified: ${bounded})`,
    };
  }
  if (usage && price && estimate && promptCountLimit !== undefined) {
    const counted = justifiedChargeAtomic(
      boundedUsage(
        usage,
        Math.min(estimate.promptTokenBound, promptCountLimit),
        maxCompletionTokensOf(estimate),
        {
          images: estimate.images,
          inputCharacters: estimate.inputCharacters,
          computeMs: estimate.computeMsBound,
          promptCache: estimate.promptCache,
        },
      ),
      price,
    );
    if (chargedAtomic > counted)
      return {
        ok: false,
        reason: "usage_above_bound",
        justifiedAtomic: counted,
        message: `charged ${chargedAtomic} for a prompt of ${usage.promptTokens} tokens the seller counted itself, above the buyer's own count of ${promptCountLimit} (justified: ${counted})`,
      };
  }
  // With no usage to check, the charge is still held to what the buyer's own bounds cost at the quoted prices.
  if (!usage && price && estimate && chargedAtomic > estimate.expectedMaxAtomic) {
    return {
      ok: false,
      reason: "usage_above_bound",
      justifiedAtomic: estimate.expectedMaxAtomic,
      message: `charged ${chargedAtomic} with no usage reported, above what the buyer's own bounds cost (${estimate.expectedMaxAtomic})`,
    };
  }
  return { ok: true, justifiedAtomic: bounded };
}

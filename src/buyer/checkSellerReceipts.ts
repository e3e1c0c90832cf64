import {
  type CheckSignedReceiptsReturnType,
  checkSignedReceipts,
  signedReceiptsOf,
} from "../protocol/index.js";
import { authorizationOf } from "./authorizationOf.js";
import type { PaymentAttempt, PaymentContext } from "./authorizePayment.js";
import type { ReportedUsage } from "./BuyerEvent.js";
import type { StoredReceipts } from "./SpendStore.js";

export type CheckSellerReceiptsParameters = {
  /** The settlement's `extensions`, from `PAYMENT-RESPONSE` or the stream's receipt. */
  extensions: unknown;
  chargedAtomic: bigint;
  transaction: string;
  network: string;
};

export type CheckSellerReceiptsReturnType = {
  check: CheckSignedReceiptsReturnType;
  /** What to keep with the spend row; undefined when the seller sent no receipt. */
  stored: StoredReceipts | undefined;
  /** The usage the seller signed, when its receipts hold together. */
  signedUsage: ReportedUsage | undefined;
};

/**
 * Checks a settled payment's signed receipts against what the buyer knows: the key the seller
 * publishes in `/v1/models`, its own address, the authorization it signed (nonce, maximum,
 * payTo, asset) and the settlement it read (charge, transaction, network).
 */
export async function checkSellerReceipts(
  context: PaymentContext,
  attempt: PaymentAttempt,
  settled: CheckSellerReceiptsParameters,
): Promise<CheckSellerReceiptsReturnType> {
  const { offer } = attempt.choice;
  const { offerReceipt, usageReceipt } = signedReceiptsOf(settled.extensions);
  // Asking a seller for its key only when it signed something: most x402 sellers sign nothing.
  const signed = offerReceipt !== undefined || usageReceipt !== undefined;
  const check = await checkSignedReceipts(settled.extensions, {
    signer: signed ? await context.receiptSigners.signerFor(attempt.url) : undefined,
    payer: context.payer,
    network: settled.network,
    payTo: offer.payTo,
    asset: offer.asset,
    nonce: authorizationOf(attempt.payload).nonce,
    transaction: settled.transaction,
    chargeAtomic: settled.chargedAtomic,
    maxAtomic: attempt.maxAtomic,
  });
  if (check.status === "absent") return { check, stored: undefined, signedUsage: undefined };
  const stored: StoredReceipts = {
    status: check.status,
    signer: check.signer,
    offerReceipt,
    usageReceipt,
    problems: check.problems,
  };
  const usage = check.status === "invalid" ? undefined : check.usageReceipt?.payload.usage;
  return { check, stored, signedUsage: usage && signedUsageOf(usage) };
}

/**
 * The usage a seller signed, every unit of it (images, `compute_ms`, cached input…): prompt tokens
 * are input and cached input, completion tokens output and reasoning. Undefined when it signed no
 * usage, or a count past what a number holds exactly.
 */
function signedUsageOf(usage: ReadonlyArray<{ unit: string; amount: string }>): ReportedUsage | undefined {
  const units: Record<string, number> = {};
  for (const { unit, amount } of usage) {
    const value = Number(amount);
    if (!Number.isSafeInteger(value)) return undefined;
    units[unit] = value;
  }
  if (Object.keys(units).length === 0) return undefined;
  // One receipt is one request: the quoted price per request applies whether or not the receipt
  // states the request as a unit (receipts from before it did state only its fee).
  units.requests ??= 1;
  return {
    promptTokens:
      (units.input_tokens ?? 0) + (units.cached_input_tokens ?? 0) + (units.cache_write_input_tokens ?? 0),
    completionTokens: (units.output_tokens ?? 0) + (units.reasoning_tokens ?? 0),
    units,
  };
}

import type { x402Client } from "@x402/core/client";
import { TollgateError } from "../errors/index.js";
import {
  encodePaymentSignatureHeader,
  type PaymentPayload,
  type PaymentRequired,
} from "../protocol/index.js";
import { authorizationOf } from "./authorizationOf.js";
import type { BuyerEventListener } from "./BuyerEvent.js";
import type { InferenceRequest } from "./inferenceRequest.js";
import { money, policyRefusedError } from "./policyRefusal.js";
import type { ReceiptSignerBook } from "./receiptSigners.js";
import type { SpendStore } from "./SpendStore.js";
import type { OfferChoice } from "./selectOffer.js";
import type { ReadReceipt } from "./settlePaidResponse.js";
import type { SpendingPolicy } from "./spendingPolicy.js";

/** What a person is asked before a maximum above `confirmAbove` is signed. */
export type ConfirmPaymentRequest = {
  url: string;
  origin: string;
  scheme: string;
  network: string;
  payTo: string;
  maxAtomic: bigint;
  expectedAtomic: bigint | undefined;
  limitAtomic: bigint;
  /** A channel deposit the payment carries: money out of the wallet, refundable, asked about too. */
  depositAtomic?: bigint | undefined;
  /**
   * What the same request already authorized (a payment made at once that the seller answered with a
   * 402, and still holds): asked about with this maximum when the two together pass `confirmAbove`.
   */
  authorizedAtomic?: bigint | undefined;
};

/** Answers whether to sign; true authorizes. */
export type ConfirmPayment = (request: ConfirmPaymentRequest) => boolean | Promise<boolean>;

/** What the paying fetch shares with each payment. */
export type PaymentContext = {
  policy: SpendingPolicy;
  client: x402Client;
  payer: string;
  store: () => Promise<SpendStore>;
  confirm: ConfirmPayment | undefined;
  emit: BuyerEventListener;
  /** The receipt keys sellers publish, to check their signed receipts against. */
  receiptSigners: ReceiptSignerBook;
  /**
   * With an RPC: checks a booked `upto` receipt against its transaction, in the background
   * (`checkSettlementOnChain`); the payer's `idle()` waits for it.
   */
  checkSettlement?: ((attempt: PaymentAttempt, receipt: ReadReceipt) => void) | undefined;
};

/** A signed authorization, reserved in the store, about to be sent. */
export type PaymentAttempt = {
  paymentId: string;
  url: string;
  origin: string;
  choice: OfferChoice;
  maxAtomic: bigint;
  payload: PaymentPayload;
  /** The `PAYMENT-SIGNATURE` header value. */
  header: string;
  firstRequest: boolean;
  request: InferenceRequest | undefined;
  /** The deposit a channel voucher carries into its channel (its first request, or a top-up). */
  depositAtomic?: bigint | undefined;
  /**
   * Called once when the seller's receipt for this payment is read (undefined: none will come),
   * before the charge is checked; a channel payment updates its channel here.
   */
  onReceipt?: ((receipt: PaidReceipt | undefined) => Promise<void>) | undefined;
};

/** What a receipt said, as the paid request's hooks see it. */
export type PaidReceipt = {
  success: boolean;
  chargedAtomic: bigint;
  transaction: string;
  /** The settlement response's `extra` (a channel's `chargedAmount` and `channelState`). */
  extra: Record<string, unknown> | undefined;
};

/**
 * Reserves the maximum against the daily caps (atomically), asks for confirmation above
 * `confirmAbove`, then signs. The offer has passed the stateless policy rules already; a
 * refusal here throws `TOLLGATE_POLICY_REFUSED` with nothing signed and nothing reserved.
 */
export async function authorizePayment(
  context: PaymentContext,
  {
    url,
    origin,
    paymentRequired,
    choice,
    request,
    firstRequest,
    client = context.client,
    channel,
    model = request?.model,
    authorizedAtomic = 0n,
  }: {
    url: string;
    origin: string;
    paymentRequired: PaymentRequired;
    choice: OfferChoice;
    request: InferenceRequest | undefined;
    firstRequest: boolean;
    /** What the spend store names the payment for; default the request's model (a paid tool: its name). */
    model?: string | undefined;
    /** The client that signs (a channel's own); default the paying fetch's. */
    client?: x402Client;
    /** The channel a voucher is signed on, and the deposit it carries. */
    channel?: { channelId: string; depositAtomic: bigint | undefined } | undefined;
    /** What the same request already authorized: with this maximum, judged against `confirmAbove`. */
    authorizedAtomic?: bigint;
  },
): Promise<PaymentAttempt> {
  const { policy, emit } = context;
  const { offer, askedAtomic: maxAtomic, expectedAtomic } = choice;
  const store = await context.store();
  const reserved = await store.reserve({
    origin,
    url,
    payer: context.payer,
    scheme: offer.scheme,
    network: offer.network,
    asset: offer.asset,
    payTo: offer.payTo,
    model,
    maxAtomic,
    expectedAtomic,
    dailyAtomic: policy.daily,
    providerDailyAtomic: policy.providers[origin]?.daily,
  });
  if (!reserved.ok) {
    emit({ type: "refused", url, origin, refusal: reserved.refusal });
    throw policyRefusedError(reserved.refusal);
  }
  const paymentId = reserved.id;
  try {
    const depositAtomic = channel?.depositAtomic;
    if (
      policy.confirmAbove !== undefined &&
      (authorizedAtomic + maxAtomic > policy.confirmAbove || (depositAtomic ?? 0n) > policy.confirmAbove)
    ) {
      const limitAtomic = policy.confirmAbove;
      const what =
        depositAtomic !== undefined && depositAtomic > limitAtomic
          ? `a deposit of ${money(depositAtomic)}`
          : authorizedAtomic > 0n
            ? `maximum ${money(maxAtomic)}, with ${money(authorizedAtomic)} already authorized for this request,`
            : `maximum ${money(maxAtomic)}`;
      const confirmed = context.confirm
        ? await context.confirm({
            url,
            origin,
            scheme: offer.scheme,
            network: offer.network,
            payTo: offer.payTo,
            maxAtomic,
            expectedAtomic,
            limitAtomic,
            ...(depositAtomic !== undefined ? { depositAtomic } : {}),
            ...(authorizedAtomic > 0n ? { authorizedAtomic } : {}),
          })
        : false;
      if (!confirmed) {
        const refusal = {
          rule: "confirmAbove" as const,
          message: context.confirm
            ? `${what} is above confirmAbove ${money(limitAtomic)} and was not confirmed`
            : `${what} is above confirmAbove ${money(limitAtomic)} and no one can confirm it`,
          limitAtomic,
          askedAtomic: maxAtomic,
          expectedAtomic,
          ...(authorizedAtomic > 0n ? { authorizedAtomic } : {}),
          origin,
        };
        emit({ type: "refused", url, origin, refusal });
        throw policyRefusedError(refusal);
      }
    }
    let payload: PaymentPayload;
    try {
      payload = await client.createPaymentPayload({ ...paymentRequired, accepts: [offer] });
    } catch (cause) {
      throw new TollgateError({
        code: "TOLLGATE_PAYMENT_INVALID",
        shortMessage: `could not sign a ${offer.scheme} payment on ${offer.network}: ${(cause as Error).message}`,
        details: { origin, scheme: offer.scheme, network: offer.network },
        cause,
      });
    }
    const terms = authorizationOf(payload);
    await store.authorize(paymentId, {
      nonce: terms.nonce,
      deadline: terms.deadline,
      channelId: channel?.channelId,
      depositAtomic: channel?.depositAtomic,
      channelBaseAtomic: channel ? voucherBaseOf(payload, maxAtomic) : undefined,
    });
    emit({
      type: "authorized",
      paymentId,
      url,
      origin,
      scheme: offer.scheme,
      network: offer.network,
      asset: offer.asset,
      payTo: offer.payTo,
      maxAtomic,
      expectedAtomic,
      firstRequest,
    });
    return {
      paymentId,
      url,
      origin,
      choice,
      maxAtomic,
      payload,
      header: encodePaymentSignatureHeader(payload),
      firstRequest,
      request,
      depositAtomic: channel?.depositAtomic,
    };
  } catch (error) {
    // Nothing left this process: the reservation goes.
    await store.release(paymentId, `not sent: ${(error as Error).message}`);
    throw error;
  }
}

/** The charged cumulative amount a channel voucher was signed on: its maximum minus the request's. */
function voucherBaseOf(payment: PaymentPayload, requestAtomic: bigint): bigint | undefined {
  const signed = (payment.payload as { voucher?: { maxClaimableAmount?: unknown } }).voucher
    ?.maxClaimableAmount;
  if (typeof signed !== "string" || !/^[0-9]+$/.test(signed)) return undefined;
  const base = BigInt(signed) - requestAtomic;
  return base >= 0n ? base : undefined;
}

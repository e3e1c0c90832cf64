import type { PaymentRequired, PaymentRequirements } from "@x402/core/types";
import {
  declareEip2612GasSponsoringExtension,
  declareErc20ApprovalGasSponsoringExtension,
} from "@x402/extensions";
import type { Address } from "viem";
import { unitPricesToStrings } from "../pricing/index.js";
import { type DecodedPaymentPayload, ReasonCode } from "../protocol/index.js";
import type { RequestQuote } from "./quoteRequest.js";
import { routes } from "./routes/index.js";

/** Where and how this gateway is paid. */
export type BillingTerms = {
  network: `eip155:${number}`;
  asset: Address;
  /** EIP-712 domain of the asset (needed by exact with EIP-3009). */
  assetDomain: { name: string; version: string };
  payTo: Address;
  maxTimeoutSeconds: number;
  /** The facilitator allowed to settle upto authorizations (from its `/supported`). */
  facilitatorAddress?: Address;
  /** Gas-sponsoring extensions the facilitator advertises in `/supported` (e.g. `eip2612GasSponsoring`). */
  gasSponsoring?: readonly string[];
};

/**
 * The gas-sponsoring extensions a 402 declares: those the facilitator supports, when an offer
 * settles through Permit2 (upto, or exact with `assetTransferMethod: permit2`).
 * @see https://github.com/x402-foundation/x402/blob/main/specs/extensions/eip2612_gas_sponsoring.md
 */
export function gasSponsoringExtensions(
  offers: readonly PaymentRequirements[],
  terms: BillingTerms,
): Record<string, unknown> | undefined {
  const viaPermit2 = offers.some(
    (offer) =>
      offer.scheme === "upto" || (offer.scheme === "exact" && offer.extra?.assetTransferMethod === "permit2"),
  );
  if (!viaPermit2 || !terms.gasSponsoring?.length) return undefined;
  return {
    ...(terms.gasSponsoring.includes("eip2612GasSponsoring") ? declareEip2612GasSponsoringExtension() : {}),
    ...(terms.gasSponsoring.includes("erc20ApprovalGasSponsoring")
      ? declareErc20ApprovalGasSponsoringExtension()
      : {}),
  };
}

/** Machine-readable prices in an upto offer's `extra.pricing`, so a buyer can check the maximum. */
export type OfferPricing = {
  model: string;
  inputPerMTokAtomic: string;
  outputPerMTokAtomic: string;
  fixedFeeAtomic: string;
  maxOutputTokens: number;
  promptTokenBound: number;
  /** Atomic units per unit scale, every unit this model is priced in (see `UNIT_SCALE`). */
  units: Record<string, string>;
};

/** A quoted request's prices for an offer's `extra.pricing` (upto and channels), so a buyer can check its charge. */
export function offerPricingOf(quote: RequestQuote): OfferPricing {
  return {
    model: quote.model.id,
    inputPerMTokAtomic: String(quote.prices?.input_tokens ?? 0n),
    outputPerMTokAtomic: String(quote.prices?.output_tokens ?? 0n),
    fixedFeeAtomic: String(quote.prices?.requests ?? 0n),
    maxOutputTokens: quote.outputLimit,
    promptTokenBound: quote.promptTokenBound,
    units: unitPricesToStrings(quote.prices ?? {}),
  };
}

/** The payment options for one quoted request: upto for the maximum, exact where priced. */
export function buildOffers(quote: RequestQuote, terms: BillingTerms): PaymentRequirements[] {
  const { model } = quote;
  const offers: PaymentRequirements[] = [];
  if (quote.maxAtomic !== undefined && terms.facilitatorAddress) {
    const pricing = offerPricingOf(quote);
    offers.push({
      scheme: "upto",
      network: terms.network,
      asset: terms.asset,
      amount: quote.maxAtomic.toString(),
      payTo: terms.payTo,
      maxTimeoutSeconds: terms.maxTimeoutSeconds,
      extra: { ...terms.assetDomain, facilitatorAddress: terms.facilitatorAddress, pricing },
    });
  }
  // A fixed price is offered only for requests within its documented bounds.
  if (model.exactPrice !== undefined && quote.exactRefusal === undefined) {
    offers.push({
      scheme: "exact",
      network: terms.network,
      asset: terms.asset,
      amount: model.exactPrice.toString(),
      payTo: terms.payTo,
      maxTimeoutSeconds: terms.maxTimeoutSeconds,
      extra: { ...terms.assetDomain },
    });
  }
  return offers;
}

/** The 402 body: what this request costs and how to pay it. */
export function buildPaymentRequired(
  quote: RequestQuote,
  offers: PaymentRequirements[],
  resourceUrl: string,
  error = "payment required",
  extensions?: Record<string, unknown>,
): PaymentRequired {
  const limit = routes[quote.routeKind].outputTokens ? `, up to ${quote.outputLimit} output tokens` : "";
  return {
    x402Version: 2,
    error,
    resource: {
      url: resourceUrl,
      description: `Inference on ${quote.model.id}${limit}`,
      mimeType: quote.stream ? "text/event-stream" : "application/json",
    },
    accepts: offers,
    ...(extensions ? { extensions } : {}),
  };
}

export type MatchOfferReturnType =
  | { ok: true; requirements: PaymentRequirements; signedMaxAtomic: bigint }
  | { ok: false; reason: string; message: string };

/**
 * The offer a payment answers, with the requirements to verify it against. An upto payment
 * signed for at least this request's maximum is accepted as is, so a buyer that knows the
 * prices can pay on the first request; the charge is still capped by usage.
 */
export function matchOffer(
  payment: DecodedPaymentPayload,
  offers: PaymentRequirements[],
): MatchOfferReturnType {
  const accepted = payment.accepted;
  const offer = offers.find(
    (candidate) =>
      candidate.scheme === accepted.scheme &&
      candidate.network === accepted.network &&
      candidate.asset.toLowerCase() === accepted.asset.toLowerCase() &&
      candidate.payTo.toLowerCase() === accepted.payTo.toLowerCase(),
  );
  if (!offer) {
    return {
      ok: false,
      reason: ReasonCode.unsupportedScheme,
      message: `no offer matches scheme ${accepted.scheme} on ${accepted.network} for asset ${accepted.asset} to ${accepted.payTo}`,
    };
  }
  const raised = priceRaisedSince(accepted, offer);
  if (raised) return { ok: false, reason: ReasonCode.paymentRequirementsMismatch, message: raised };
  if (payment.accepted.scheme === "upto") {
    const { permit2Authorization } = payment.payload as {
      permit2Authorization: { permitted: { amount: string } };
    };
    const signedMaxAtomic = BigInt(permit2Authorization.permitted.amount);
    if (signedMaxAtomic < BigInt(offer.amount)) {
      return {
        ok: false,
        reason: ReasonCode.paymentRequirementsMismatch,
        message: `authorized maximum ${signedMaxAtomic} is below this request's maximum ${offer.amount}`,
      };
    }
    return { ok: true, requirements: { ...offer, amount: signedMaxAtomic.toString() }, signedMaxAtomic };
  }
  return { ok: true, requirements: offer, signedMaxAtomic: BigInt(offer.amount) };
}

/**
 * Why a payment cannot be charged at this offer's prices: a unit the offer prices above what the payment
 * accepted (`extra.pricing.units`, an offer made before a restart with new prices), or undefined. A
 * payment that states no prices, or prices at least these, is charged at these.
 */
function priceRaisedSince(accepted: PaymentRequirements, offer: PaymentRequirements): string | undefined {
  const unitsOf = (requirements: PaymentRequirements) => {
    const units = (requirements.extra?.pricing as { units?: unknown } | undefined)?.units;
    return typeof units === "object" && units !== null ? (units as Record<string, unknown>) : undefined;
  };
  const was = unitsOf(accepted);
  const now = unitsOf(offer);
  if (!was || !now) return undefined;
  for (const [unit, price] of Object.entries(now)) {
    const before = was[unit] ?? "0";
    const beforeAtomic = typeof before === "string" && /^\d{1,40}$/.test(before) ? BigInt(before) : undefined;
    if (beforeAtomic === undefined || BigInt(String(price)) > beforeAtomic)
      return `the prices changed since the offer this payment accepted: ${unit} now costs ${String(price)} atomic units per scale unit, the payment accepted ${typeof before === "string" ? before : "an unreadable price"}; sign again for the offer in this 402`;
  }
  return undefined;
}

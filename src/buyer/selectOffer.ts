import type { PaymentRequirements } from "../protocol/index.js";
import { checkOffer } from "./checkOffer.js";
import type { InferenceRequest } from "./inferenceRequest.js";
import type { PolicyRefusal } from "./policyRefusal.js";
import { estimateRequest, type QuotedPrice, quotedPriceOf, type RequestEstimate } from "./quotedPrice.js";
import type { SpendingPolicy } from "./spendingPolicy.js";

/** An offer the buyer may sign, with what it would authorize and what it expected. */
export type OfferChoice = {
  offer: PaymentRequirements;
  askedAtomic: bigint;
  expectedAtomic: bigint | undefined;
  price: QuotedPrice | undefined;
  estimate: RequestEstimate | undefined;
};

export type SelectOfferReturnType = { ok: true; choice: OfferChoice } | { ok: false; refusal: PolicyRefusal };

/**
 * Picks the offer to sign from a 402's `accepts`: the ones the policy allows, upto before exact
 * (upto charges the usage, not the maximum), then the lowest amount. Channels (batch-settlement)
 * come first when `channelsFirst`, last otherwise; among them ERC-3009 deposits (no approval, no
 * gas) before Permit2 ones. When the policy allows none, answers the refusal of the offer it
 * would have preferred.
 */
export async function selectOffer({
  accepts,
  request,
  policy,
  origin,
  channelsFirst = policy.channels === "prefer",
}: {
  accepts: readonly PaymentRequirements[];
  request: InferenceRequest | undefined;
  policy: SpendingPolicy;
  origin: string;
  /** Rank channels before upto and exact (the policy's `channels: prefer`, or a wallet without Permit2 allowance). */
  channelsFirst?: boolean;
}): Promise<SelectOfferReturnType> {
  const rank = (choice: OfferChoice) => rankOf(choice, channelsFirst);
  const choices = (await Promise.all(accepts.map((offer) => describeOffer(offer, request, accepts)))).sort(
    (a, b) => rank(a) - rank(b) || byAmount(a, b),
  );
  let firstRefusal: PolicyRefusal | undefined;
  for (const choice of choices) {
    const refusal = checkOffer({
      policy,
      origin,
      offer: choice.offer,
      askedAtomic: choice.askedAtomic,
      expectedAtomic: choice.expectedAtomic,
      price: choice.price,
    });
    if (!refusal) return { ok: true, choice };
    // A scheme the buyer cannot pay says less than a rule that refused a payable offer.
    if (!firstRefusal || (firstRefusal.rule === "scheme" && refusal.rule !== "scheme"))
      firstRefusal = refusal;
  }
  return {
    ok: false,
    refusal: firstRefusal ?? { rule: "scheme", message: `${origin} made no offer`, origin },
  };
}

/**
 * What signing `offer` for `request` would authorize, and what the buyer expects it to cost. A
 * channel offer without prices of its own is priced by the same 402's upto offer to the same payee
 * in the same asset (one request, one price), so its charge is checked against the usage all the same.
 */
export async function describeOffer(
  offer: PaymentRequirements,
  request: InferenceRequest | undefined,
  siblings: readonly PaymentRequirements[] = [],
): Promise<OfferChoice> {
  const askedAtomic = BigInt(offer.amount);
  if (offer.scheme !== "upto" && offer.scheme !== "batch-settlement") {
    return { offer, askedAtomic, expectedAtomic: askedAtomic, price: undefined, estimate: undefined };
  }
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  const pricedBy =
    offer.scheme === "batch-settlement" && quotedPriceOf(offer) === undefined
      ? siblings.find(
          (sibling) =>
            sibling.scheme === "upto" &&
            sibling.network === offer.network &&
            same(sibling.asset, offer.asset) &&
            same(sibling.payTo, offer.payTo),
        )
      : undefined;
  const price = quotedPriceOf(pricedBy ?? offer);
  const estimate = price && request ? await estimateRequest(request, price) : undefined;
  return { offer, askedAtomic, expectedAtomic: estimate?.expectedMaxAtomic, price, estimate };
}

function rankOf(choice: OfferChoice, channelsFirst: boolean): number {
  const { scheme, extra } = choice.offer;
  if (scheme === "batch-settlement") {
    const permit2Deposit = extra?.assetTransferMethod === "permit2" ? 1 : 0;
    return (channelsFirst ? 0 : 3) + permit2Deposit;
  }
  const base = channelsFirst ? 2 : 0;
  if (scheme === "upto") return base;
  if (scheme === "exact") return base + 1;
  return 5;
}

function byAmount(a: OfferChoice, b: OfferChoice): number {
  return a.askedAtomic < b.askedAtomic ? -1 : a.askedAtomic > b.askedAtomic ? 1 : 0;
}

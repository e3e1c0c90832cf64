import { findNetworkPreset } from "../chain/index.js";
import type { PaymentRequirements } from "../protocol/index.js";
import { money, type PolicyRefusal } from "./policyRefusal.js";
import type { QuotedPrice } from "./quotedPrice.js";
import type { SpendingPolicy } from "./spendingPolicy.js";

export type CheckOfferParameters = {
  policy: SpendingPolicy;
  /** The provider (URL origin) asking to be paid. */
  origin: string;
  /** The offer; its `maxTimeoutSeconds`, when given, is checked against the policy's. */
  offer: Pick<PaymentRequirements, "scheme" | "network" | "asset" | "payTo"> & {
    maxTimeoutSeconds?: number | undefined;
    /** A channel offer's `extra.withdrawDelay` is checked against `maxWithdrawDelaySeconds`. */
    extra?: Record<string, unknown> | undefined;
  };
  /** The maximum the buyer would authorize (upto) or the price (exact), in atomic units. */
  askedAtomic: bigint;
  /** The buyer's own estimate of the maximum at the quoted prices, when it has one. */
  expectedAtomic?: bigint | undefined;
  /** The prices the offer quotes, checked against the policy's per-image and per-second caps. */
  price?: Pick<QuotedPrice, "units"> | undefined;
};

const SUPPORTED_SCHEMES = new Set(["upto", "exact", "batch-settlement"]);
/** The local devnet (anvil): its USDC is deployed anew with each chain, so a policy without assets pays any token there. */
const DEVNET_NETWORK = "eip155:31337";
/** `maxOverExpected` is compared in thousandths so that 1.5 stays exact in bigint arithmetic. */
const RATIO_SCALE = 1000n;

/**
 * The rules that need no state: the provider allowlist, network, asset, recipient, how long the authorization stays
 * valid, per-call caps and the ratio of the maximum to the expected cost. Daily caps are checked
 * by the spend store, atomically with the reservation; `confirmAbove` by the caller. Answers the
 * first rule that refuses, or undefined.
 */
export function checkOffer({
  policy,
  origin,
  offer,
  askedAtomic,
  expectedAtomic,
  price,
}: CheckOfferParameters): PolicyRefusal | undefined {
  const provider = policy.providers[origin];
  if (policy.onlyProviders && !provider) {
    const listed = Object.keys(policy.providers);
    return {
      rule: "onlyProviders",
      message: `${origin} is not among the policy's providers (${listed.length > 0 ? listed.join(", ") : "none listed"}), and onlyProviders pays no other`,
      origin,
    };
  }
  if (!SUPPORTED_SCHEMES.has(offer.scheme) || !offer.network.startsWith("eip155:")) {
    return {
      rule: "scheme",
      message: `${origin} offers ${offer.scheme} on ${offer.network}; this buyer pays upto, exact or batch-settlement on EVM networks`,
      origin,
    };
  }
  if (offer.scheme === "batch-settlement" && policy.channels === "never") {
    return {
      rule: "scheme",
      message: `${origin} offers batch-settlement (a channel), and the policy says channels: never`,
      origin,
    };
  }
  // A seller that will not refund holds a channel's deposit until the payer's withdrawal ends.
  const withdrawDelay = Number((offer.extra as { withdrawDelay?: unknown } | undefined)?.withdrawDelay);
  if (
    offer.scheme === "batch-settlement" &&
    (!Number.isFinite(withdrawDelay) || withdrawDelay > policy.maxWithdrawDelaySeconds)
  ) {
    return {
      rule: "maxWithdrawDelaySeconds",
      message: `${origin}'s channel would hold a deposit up to ${Number.isFinite(withdrawDelay) ? `${withdrawDelay} s` : "an unstated time"} after a withdrawal starts, above the policy's maxWithdrawDelaySeconds of ${policy.maxWithdrawDelaySeconds} s`,
      origin,
      limitSeconds: policy.maxWithdrawDelaySeconds,
    };
  }
  if (policy.networks && !policy.networks.includes(offer.network)) {
    return {
      rule: "networks",
      message: `${origin} asks for payment on ${offer.network}, not in the policy's networks (${policy.networks.join(", ")})`,
      origin,
      network: offer.network,
    };
  }
  // Unless the policy names its assets, the network's USDC alone (any token on the local devnet, whose
  // USDC is deployed anew; none on another network whose USDC this buyer does not know): every "$" of the
  // policy is a 6-decimal unit, and a token of other worth would make it another amount (a perCall of
  // "$0.05" in a coin worth a thousand dollars, or in 8-decimal wrapped bitcoin).
  const preset = findNetworkPreset(offer.network);
  const usdc = preset?.usdc;
  if (!policy.assets && !usdc && offer.network !== DEVNET_NETWORK) {
    return {
      rule: "assets",
      message: `${origin} asks for payment on ${offer.network}, whose USDC this buyer does not know, in ${offer.asset}: a policy without \`assets\` pays in a known network's USDC alone; name the token in the policy's assets to pay in it`,
      origin,
      asset: offer.asset,
    };
  }
  const assets = policy.assets ?? (usdc ? [usdc] : undefined);
  if (assets && !assets.some((asset) => sameAddress(asset, offer.asset))) {
    return {
      rule: "assets",
      message: policy.assets
        ? `${origin} asks for payment in ${offer.asset}, not in the policy's assets`
        : `${origin} asks for payment in ${offer.asset}, not ${offer.network}'s USDC, the one asset a policy without \`assets\` pays in`,
      origin,
      asset: offer.asset,
    };
  }
  if (provider?.payTo && !provider.payTo.some((payTo) => sameAddress(payTo, offer.payTo))) {
    return {
      rule: "providers.payTo",
      message: `${origin} asks to be paid at ${offer.payTo}, not in its payTo allowlist`,
      origin,
      payTo: offer.payTo,
    };
  }
  const timeouts: Array<[PolicyRefusal["rule"], number | undefined]> = [
    ["maxTimeoutSeconds", policy.maxTimeoutSeconds],
    ["providers.maxTimeoutSeconds", provider?.maxTimeoutSeconds],
  ];
  const askedSeconds = offer.maxTimeoutSeconds;
  for (const [rule, limitSeconds] of timeouts) {
    if (limitSeconds !== undefined && askedSeconds !== undefined && askedSeconds > limitSeconds) {
      return {
        rule,
        message: `${origin} asks for an authorization valid ${askedSeconds} s, above the policy's ${rule} of ${limitSeconds} s`,
        limitSeconds,
        askedSeconds,
        origin,
      };
    }
  }
  const caps: Array<[PolicyRefusal["rule"], bigint | undefined]> = [
    ["perCall", policy.perCall],
    ["providers.perCall", provider?.perCall],
  ];
  for (const [rule, limitAtomic] of caps) {
    if (limitAtomic !== undefined && askedAtomic > limitAtomic) {
      return {
        rule,
        message: `maximum ${money(askedAtomic)} is above the ${rule} cap of ${money(limitAtomic)}`,
        limitAtomic,
        askedAtomic,
        origin,
      };
    }
  }
  // Per-unit caps: `images` is priced per image, `compute_ms` per second (UNIT_SCALE 1000 ms),
  // `input_characters` per 1M characters.
  const unitCaps: Array<[PolicyRefusal["rule"], bigint | undefined, bigint | undefined, string]> = [
    ["maxImagePrice", policy.maxImagePrice, price?.units?.images, "per image"],
    ["maxPricePerSecond", policy.maxPricePerSecond, price?.units?.compute_ms, "per second of compute"],
    [
      "maxCharacterPrice",
      policy.maxCharacterPrice,
      price?.units?.input_characters,
      "per 1M input characters",
    ],
  ];
  for (const [rule, limitAtomic, unitPriceAtomic, per] of unitCaps) {
    if (limitAtomic !== undefined && unitPriceAtomic !== undefined && unitPriceAtomic > limitAtomic) {
      return {
        rule,
        message: `${origin} asks ${money(unitPriceAtomic)} ${per}, above the policy's ${rule} of ${money(limitAtomic)}`,
        limitAtomic,
        askedAtomic,
        unitPriceAtomic,
        origin,
      };
    }
  }
  if (policy.maxOverExpected !== undefined && expectedAtomic !== undefined) {
    const ratio = BigInt(Math.round(policy.maxOverExpected * Number(RATIO_SCALE)));
    if (askedAtomic * RATIO_SCALE > ratio * expectedAtomic) {
      const limitAtomic = (ratio * expectedAtomic) / RATIO_SCALE;
      return {
        rule: "maxOverExpected",
        message: `maximum ${money(askedAtomic)} is more than ${policy.maxOverExpected}× the expected ${money(expectedAtomic)}`,
        limitAtomic,
        askedAtomic,
        expectedAtomic,
        origin,
      };
    }
  }
  return undefined;
}

/**
 * The perCall cap (global or the provider's) that one request passes when, having authorized
 * `authorizedAtomic` already (a payment made at once that the seller answered with a 402 and still
 * holds), it would authorize `askedAtomic` more; undefined when both together fit.
 */
export function callAbovePerCall({
  policy,
  origin,
  authorizedAtomic,
  askedAtomic,
}: {
  policy: SpendingPolicy;
  origin: string;
  authorizedAtomic: bigint;
  askedAtomic: bigint;
}): PolicyRefusal | undefined {
  const caps: Array<[PolicyRefusal["rule"], bigint | undefined]> = [
    ["perCall", policy.perCall],
    ["providers.perCall", policy.providers[origin]?.perCall],
  ];
  for (const [rule, limitAtomic] of caps) {
    if (limitAtomic === undefined || authorizedAtomic + askedAtomic <= limitAtomic) continue;
    return {
      rule,
      message: `${origin} answered the payment made at once for this request with a 402 and holds its authorization until its deadline: already authorized ${money(authorizedAtomic)} for this request, a maximum of ${money(askedAtomic)} more would pass the ${rule} cap of ${money(limitAtomic)}`,
      limitAtomic,
      askedAtomic,
      authorizedAtomic,
      origin,
    };
  }
  return undefined;
}

function sameAddress(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

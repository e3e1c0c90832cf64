import type { PaymentRequirements } from "@x402/core/types";
import type { Logger } from "../errors/index.js";
import { UNIT_SCALE, type UnitPrices, USAGE_UNITS, type UsageUnit } from "../pricing/index.js";
import type { ReceiptSigner } from "./createReceiptSigner.js";
import type { ModelConfig } from "./gatewayConfig.js";
import type { ChargeOutcome, ChargeUsage } from "./settleCharge.js";

/** What a billing session needs to sign its receipts: the signer and what the request was. */
export type SessionReceipts = {
  signer: ReceiptSigner;
  /** The paid resource, as the 402 named it. */
  resourceUrl: string;
  /** The route's path, e.g. `/v1/chat/completions`. */
  route: string;
  /** The authorization's nonce, in decimal. */
  nonce: string;
};

export type SignSettledChargeParameters = {
  outcome: ChargeOutcome;
  receipts: SessionReceipts;
  model: ModelConfig;
  requirements: PaymentRequirements;
  payer: string;
  /** The request's unit prices (the quote's), what the charge was computed at. */
  prices: UnitPrices | undefined;
  /** The most this payment may be charged. */
  capAtomic: bigint;
  logger: Logger;
};

/**
 * Adds the seller's signed receipts to a successful settlement's `extensions`. A failed
 * settlement gets none (x402 issues receipts only on success); a signing failure is logged and
 * leaves the settlement as it was: the buyer is answered either way.
 */
export async function signSettledCharge({
  outcome,
  receipts,
  model,
  requirements,
  payer,
  prices,
  capAtomic,
  logger,
}: SignSettledChargeParameters): Promise<ChargeOutcome> {
  if (!outcome.settlement.success) return outcome;
  const upto = requirements.scheme !== "exact";
  const channel = channelStateOf(outcome.settlement.extra);
  try {
    const extensions = await receipts.signer.sign({
      network: requirements.network as `eip155:${string}`,
      resourceUrl: receipts.resourceUrl,
      route: receipts.route,
      model: model.id,
      scheme: requirements.scheme,
      asset: requirements.asset as `0x${string}`,
      payer: payer as `0x${string}`,
      payTo: requirements.payTo as `0x${string}`,
      nonce: receipts.nonce,
      // Per-token and per-unit pricing (upto, channel vouchers) states every unit the charge was computed
      // from; a fixed price (exact) is a fixed fee with no per-unit price.
      ...(upto
        ? statedUsage(outcome.usage, prices ?? {})
        : { usage: statedUnits(outcome.usage), prices: [], fixedFeeAtomic: requirements.amount }),
      chargeAtomic: outcome.chargeAtomic.toString(),
      maxAtomic: capAtomic.toString(),
      transaction: outcome.settlement.transaction,
      channelId: channel?.channelId,
      cumulativeAtomic: channel?.chargedCumulativeAmount,
    });
    return {
      ...outcome,
      settlement: { ...outcome.settlement, extensions: { ...outcome.settlement.extensions, ...extensions } },
    };
  } catch (error) {
    logger.error({ error: String(error), payer }, "signing the receipts failed; the answer carries none");
    return outcome;
  }
}

/** The usage as the receipt states it: every unit the charge counted, the request itself (`requests: 1`) included. */
function statedUnits(usage: ChargeUsage): Array<{ unit: string; amount: string }> {
  const units: Partial<Record<UsageUnit, number>> =
    Object.keys(usage.units).length > 0
      ? usage.units
      : { input_tokens: usage.promptTokens, output_tokens: usage.completionTokens };
  return USAGE_UNITS.flatMap((unit) => {
    const amount = units[unit];
    return amount === undefined ? [] : [{ unit, amount: String(amount) }];
  });
}

/**
 * The usage, prices and fee a receipt states, so that its own rule
 * (`ceil(Σ amount × perMillionAtomic / 1,000,000) + fixedFeeAtomic`, docs/receipts.md) gives the
 * charge exactly: each unit's price per `UNIT_SCALE` becomes a price per million units (every scale
 * divides a million), and the price per request is the fixed fee (the request is stated as a unit of
 * usage with no price of its own, so it is not counted twice).
 */
function statedUsage(usage: ChargeUsage, prices: UnitPrices) {
  return {
    usage: statedUnits(usage),
    prices: USAGE_UNITS.flatMap((unit) => {
      const price = prices[unit];
      if (unit === "requests" || price === undefined) return [];
      return [{ unit, perMillionAtomic: String(price * (PER_MILLION / UNIT_SCALE[unit])) }];
    }),
    fixedFeeAtomic: String(prices.requests ?? 0n),
  };
}

const PER_MILLION = 1_000_000n;

/** A channel charge's state (`extra.channelState`): the channel and its cumulative charged amount. */
function channelStateOf(
  extra: Record<string, unknown> | undefined,
): { channelId: `0x${string}`; chargedCumulativeAmount: string } | undefined {
  const state = extra?.channelState as { channelId?: unknown; chargedCumulativeAmount?: unknown } | undefined;
  if (typeof state?.channelId !== "string" || !/^0x[0-9a-fA-F]{64}$/.test(state.channelId)) return undefined;
  if (typeof state.chargedCumulativeAmount !== "string") return undefined;
  return {
    channelId: state.channelId as `0x${string}`,
    chargedCumulativeAmount: state.chargedCumulativeAmount,
  };
}

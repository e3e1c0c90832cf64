import type { PaymentRequirements } from "@x402/core/types";
import type { Logger } from "../errors/index.js";
import type { ReceiptSigner } from "./createReceiptSigner.js";
import type { ModelConfig } from "./gatewayConfig.js";
import type { ChargeOutcome } from "./settleCharge.js";

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
  capAtomic,
  logger,
}: SignSettledChargeParameters): Promise<ChargeOutcome> {
  if (!outcome.settlement.success) return outcome;
  // Per-token pricing: upto and channel vouchers; exact is a fixed price.
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
      usage: [
        { unit: "input_tokens", amount: String(outcome.usage.promptTokens) },
        { unit: "output_tokens", amount: String(outcome.usage.completionTokens) },
      ],
      // A fixed price (exact) is stated as a fixed fee with no per-unit price.
      prices: upto
        ? [
            { unit: "input_tokens", perMillionAtomic: String(model.inputPrice ?? 0n) },
            { unit: "output_tokens", perMillionAtomic: String(model.outputPrice ?? 0n) },
          ]
        : [],
      fixedFeeAtomic: upto ? String(model.fixedFee) : requirements.amount,
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

import type { PaymentRequirements } from "@x402/core/types";
import type { ChannelRecord } from "../../ledger/index.js";
import { BATCH_SETTLEMENT, channelStateExtra } from "./createChannelBilling.js";

/** The default order of offers in a 402: upto first (one signature, no deposit), then channels, then exact. */
export const DEFAULT_SCHEME_ORDER = ["upto", "batch-settlement", "exact"] as const;

/** Keeps the offers whose scheme is listed, in the listed order. */
export function orderOffers(
  offers: readonly PaymentRequirements[],
  schemes: readonly string[] = DEFAULT_SCHEME_ORDER,
): PaymentRequirements[] {
  return schemes.flatMap((scheme) => offers.filter((offer) => offer.scheme === scheme));
}

/**
 * The offers of a corrective 402: the channel offer carries the channel's state and the payer's
 * latest voucher, from which `@x402/evm`'s client resyncs (spec: "client out of sync").
 */
export function correctiveOffers(
  offers: readonly PaymentRequirements[],
  channel: ChannelRecord,
): PaymentRequirements[] {
  const hasVoucher = channel.signature !== "0x";
  return offers.map((offer) =>
    offer.scheme === BATCH_SETTLEMENT
      ? {
          ...offer,
          extra: {
            ...offer.extra,
            channelState: channelStateExtra(channel),
            ...(hasVoucher
              ? {
                  voucherState: {
                    signedMaxClaimable: channel.signedMaxAtomic.toString(),
                    signature: channel.signature,
                  },
                }
              : {}),
          },
        }
      : offer,
  );
}

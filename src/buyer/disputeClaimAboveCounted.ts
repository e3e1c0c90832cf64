import { type BookChannelExcessReturnType, bookChannelExcess } from "./bookChannelExcess.js";
import type { BuyerChannel, SpendStore } from "./SpendStore.js";

export type DisputeClaimAboveCountedParameters = {
  channel: BuyerChannel;
  payer: string;
  /** What the contract says the seller has claimed on the channel. */
  totalClaimedAtomic: bigint;
};

/**
 * Compares what a seller claimed on chain with what this buyer counted on the channel: the charged
 * total its receipts gave (or a charge already booked past it), plus the maxima of vouchers still
 * reserved for want of a receipt (claims may lag charges: they are not settled from it). A claim above that
 * took what no receipt said (a seller claiming its latest voucher whole): the difference is booked
 * as spent and disputed (`bookChannelExcess`), once. Answers what it booked, if anything.
 */
export async function disputeClaimAboveCounted(
  store: SpendStore,
  { channel, payer, totalClaimedAtomic }: DisputeClaimAboveCountedParameters,
): Promise<(BookChannelExcessReturnType & { excessAtomic: bigint }) | undefined> {
  const { channelId } = channel;
  let countedAtomic = BigInt(channel.context?.chargedCumulativeAmount ?? "0");
  let pendingAtomic = 0n;
  for (const voucher of await store.channelVouchers(channelId)) {
    if (voucher.status === "reserved") pendingAtomic += voucher.maxAtomic;
    const reached = voucher.baseAtomic + (voucher.chargedAtomic ?? 0n);
    if (voucher.status === "settled" && reached > countedAtomic) countedAtomic = reached;
  }
  const explainedAtomic = countedAtomic + pendingAtomic;
  if (totalClaimedAtomic <= explainedAtomic) return undefined;
  const excessAtomic = totalClaimedAtomic - explainedAtomic;
  const booked = await bookChannelExcess(store, {
    channel,
    payer,
    excessAtomic,
    baseAtomic: explainedAtomic,
    statedAtomic: totalClaimedAtomic,
    message: `the seller claimed ${totalClaimedAtomic} on channel ${channelId} on chain; this buyer's receipts counted ${explainedAtomic}`,
  });
  return booked && { ...booked, excessAtomic };
}

import type { SpendStore } from "./SpendStore.js";

export type BookChannelExcessParameters = {
  channel: {
    channelId: string;
    origin: string;
    url: string;
    network: string;
    asset: string;
    payTo: string;
  };
  payer: string;
  /** What the seller took, or can take, on the channel past what this buyer counted on it. */
  excessAtomic: bigint;
  /** Where on the channel the excess sits (what was counted before it), when known: the channel's later judgments count it. */
  baseAtomic?: bigint | undefined;
  /** The seller's own figure the excess comes from (a stated charged total, a claimed total on chain). */
  statedAtomic: bigint;
  message: string;
};

export type BookChannelExcessReturnType = { paymentId: string; disputeId: number };

/**
 * Books a channel charge no receipt explains as spent (every cap counts it, as a settled voucher
 * charged `excessAtomic` on `baseAtomic`) and disputes it (`above_receipts`).
 */
export async function bookChannelExcess(
  store: SpendStore,
  { channel, payer, excessAtomic, baseAtomic, statedAtomic, message }: BookChannelExcessParameters,
): Promise<BookChannelExcessReturnType | undefined> {
  const { channelId, origin, url, network } = channel;
  // No cap passed: what was taken is booked whatever room is left.
  const booked = await store.reserve({
    origin,
    url,
    payer,
    scheme: "batch-settlement",
    network,
    asset: channel.asset,
    payTo: channel.payTo,
    maxAtomic: excessAtomic,
  });
  if (!booked.ok) return undefined;
  await store.authorize(booked.id, { channelId, channelBaseAtomic: baseAtomic });
  await store.settle(booked.id, { chargedAtomic: excessAtomic });
  await store.note(booked.id, message);
  const disputeId = await store.recordDispute({
    reservationId: booked.id,
    origin,
    reason: "above_receipts",
    chargedAtomic: excessAtomic,
    justifiedAtomic: 0n,
    maxAtomic: excessAtomic,
    network,
    details: { message, url, channelId, statedAtomic: statedAtomic.toString() },
  });
  return { paymentId: booked.id, disputeId };
}

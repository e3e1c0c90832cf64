import type { ChannelRecord } from "./ChannelLedger.js";

/**
 * What a channel's payer owes beyond its escrow: the charges above the balance once all of the
 * balance was claimed (the payer withdrew before the charges were claimed, as a claim found; a balance
 * read alone, which a lagging RPC can give, is not enough: the claim that follows confirms it). 0 when
 * the channel is not short. A payer with a short channel is in debt: it is served again once it
 * deposits into the channel and a claim takes the shortfall.
 */
export function channelShortfallAtomic(
  channel: Pick<ChannelRecord, "chargedAtomic" | "balanceAtomic" | "totalClaimedAtomic">,
): bigint {
  return channel.chargedAtomic > channel.balanceAtomic && channel.totalClaimedAtomic >= channel.balanceAtomic
    ? channel.chargedAtomic - channel.balanceAtomic
    : 0n;
}

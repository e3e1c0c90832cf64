import { TollgateError } from "../../errors/index.js";
import { type ChannelLedger, type ChannelRecord, channelShortfallAtomic } from "../../ledger/index.js";
import { formatMoney } from "../../pricing/index.js";

/** Money the ledger holds on channels of a network other than the gateway's: unclaimed charges and unsettled claims. */
export type OwedElsewhere = { network: string; channels: number; owedAtomic: bigint };

export type RefuseStrandedChannelsParameters = {
  channels: Pick<ChannelLedger, "list">;
  /** CAIP-2 network the gateway bills on: channels of other networks are not its to claim. */
  network: string;
  /** The configured payTo and asset: a claim round takes the channels paying them. */
  receiver: string;
  token: string;
  /**
   * How the gateway claims: the address of the receiver-authorizer key it signs claims with and its claim
   * interval; `"none"` when its config has no `channels` section, so that no claim round runs at all.
   */
  claims: { receiverAuthorizer: string; claimIntervalSeconds: number } | "none";
};

/**
 * Refuses to start a gateway whose config would leave money the ledger holds on channels unclaimed or
 * unsettled: charges on a channel paying another payTo or asset, or naming another receiver-authorizer
 * (its claims and settlements are never made, and its payer can withdraw them), and charges on a channel
 * whose withdrawal delay is shorter than three claim intervals (a payer could withdraw them between two
 * rounds), and any charge or claim at all when the config has no `channels` section (nothing would claim or
 * settle it). The message says how to take them first. Channels of other networks are not this gateway's
 * to claim (one ledger may serve a gateway per network): those holding money are returned, to be told.
 */
export async function refuseStrandedChannels({
  channels,
  network,
  receiver,
  token,
  claims,
}: RefuseStrandedChannelsParameters): Promise<OwedElsewhere[]> {
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  // A short channel's unclaimed charges are its payer's debt, not money a claim can take (its escrow is
  // empty until the payer deposits again): they hold no restart back; its unsettled claims do.
  const owed = (channel: ChannelRecord) =>
    (channel.chargedAtomic > channel.totalClaimedAtomic && channelShortfallAtomic(channel) === 0n) ||
    channel.totalClaimedAtomic > channel.settledAtomic;
  const problems: string[] = [];
  const elsewhere = new Map<string, OwedElsewhere>();
  for (const channel of await channels.list()) {
    if (!owed(channel)) continue;
    if (channel.network !== network) {
      const held = elsewhere.get(channel.network) ?? {
        network: channel.network,
        channels: 0,
        owedAtomic: 0n,
      };
      held.channels += 1;
      held.owedAtomic +=
        (channelShortfallAtomic(channel) > 0n ? 0n : channel.chargedAtomic - channel.totalClaimedAtomic) +
        (channel.totalClaimedAtomic - channel.settledAtomic);
      elsewhere.set(channel.network, held);
      continue;
    }
    // Unclaimed charges a claim can take (none on a short channel), and claims not yet settled.
    const unclaimed =
      channelShortfallAtomic(channel) > 0n ? 0n : channel.chargedAtomic - channel.totalClaimedAtomic;
    const unsettled = channel.totalClaimedAtomic - channel.settledAtomic;
    const amounts = [
      unclaimed > 0n && `${formatMoney(unclaimed)} charged and not claimed`,
      unsettled > 0n && `${formatMoney(unsettled)} claimed and not settled`,
    ].filter((part): part is string => typeof part === "string");
    const holds = `channel ${channel.channelId} holds ${amounts.join(" and ")}`;
    if (claims === "none") {
      problems.push(
        `${holds}, and this config has no channels section: no claim round would take it, and its payer could withdraw it`,
      );
      continue;
    }
    const { receiverAuthorizer, claimIntervalSeconds } = claims;
    const differs = [
      !same(channel.receiver, receiver) && `payTo ${channel.receiver}`,
      !same(channel.token, token) && `asset ${channel.token}`,
      !same(channel.config.receiverAuthorizer, receiverAuthorizer) &&
        `receiver-authorizer ${channel.config.receiverAuthorizer}`,
    ].filter((part): part is string => typeof part === "string");
    if (differs.length > 0)
      problems.push(
        `${holds}, paying ${differs.join(" and ")}, which this config no longer has: it would never be claimed or settled`,
      );
    else if (unclaimed > 0n && channel.config.withdrawDelay < claimIntervalSeconds * 3)
      problems.push(
        `${holds}; its withdrawal delay (${channel.config.withdrawDelay} s) is shorter than three claim intervals (claimIntervalSeconds ${claimIntervalSeconds}), so its payer could withdraw it between two claims`,
      );
  }
  if (problems.length === 0) return [...elsewhere.values()];
  const fix =
    claims === "none"
      ? "Start once more with the channels section, and stop with SIGTERM (it claims and settles everything; tollgate channels shows it), then take it out"
      : "Start once more with the earlier payTo, asset, receiver-authorizer key and claim interval, and stop with SIGTERM (it claims and settles everything; tollgate channels shows it), then change them";
  throw new TollgateError({
    code: "TOLLGATE_CONFIG_INVALID",
    shortMessage: `payment channels: ${problems.length} channel(s) would be left unpaid by this config. ${problems.slice(0, 5).join("; ")}${problems.length > 5 ? `; and ${problems.length - 5} more` : ""}. ${fix}`,
    details: { problems },
  });
}

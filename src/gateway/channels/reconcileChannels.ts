import { type Address, getAddress, type Hex, type PublicClient } from "viem";
import { batchSettlementAbi } from "../../chain/index.js";
import type { ChannelLedger, PaymentLedger } from "../../ledger/index.js";
import { smallerOf } from "./channelPayload.js";
import { readChannelState } from "./readChannelState.js";

export type ReconcileChannelsParameters = {
  channels: ChannelLedger;
  payments: PaymentLedger;
  client: PublicClient;
  settlement: Address;
  network: string;
  asset: string;
  payTo: string;
  /** What the settlement contract transferred to payTo in the range compared (from `reconcileLedger`). */
  channelSettledOnChainAtomic?: bigint | undefined;
};

/** One way the channels in the ledger and the chain disagree. */
export type ChannelDifference =
  /** The channel's charged total is not the sum of its requests' payment rows. */
  | { kind: "channel_rows_mismatch"; channelId: string; chargedAtomic: string; rowsAtomic: string }
  /** More was claimed on chain than was charged: never acceptable. */
  | { kind: "claimed_above_charged"; channelId: string; chargedAtomic: string; claimedOnChainAtomic: string }
  /**
   * The channel's escrow on chain holds less than was charged on it (its payer withdrew before the charges
   * were claimed): the rest cannot be collected until the payer deposits it, a debt.
   */
  | { kind: "channel_shortfall"; channelId: string; chargedAtomic: string; balanceOnChainAtomic: string }
  /** The ledger's record of what was claimed differs from the chain's. */
  | { kind: "claim_unrecorded"; channelId: string; claimedAtomic: string; claimedOnChainAtomic: string }
  /** Claims settled to payTo on chain differ from the transfers to payTo or from the ledger. */
  | {
      kind: "settled_mismatch";
      settledOnChainAtomic: string;
      comparedAtomic: string;
      against: "transfers" | "ledger";
    };

export type ReconcileChannelsReturnType = {
  channelCount: number;
  /**
   * Set when the ledger's channels of this network were recorded on another chain than the client's (a devnet
   * started afresh, and no gateway has run on it yet): then no channel is compared.
   */
  otherChain?: { ledgerGenesisHash: string; chainGenesisHash: string } | undefined;
  chargedAtomic: bigint;
  claimedOnChainAtomic: bigint;
  /** Charged, not claimed yet, and still in the escrows: the next claim's work, not a difference. */
  unclaimedAtomic: bigint;
  settledOnChainAtomic: bigint;
  differences: ChannelDifference[];
};

/**
 * Reconciles payment channels: each channel's charges against its payment rows and its claims
 * on chain (charged = claimed once claimed, never less), and what the contract settled to payTo
 * against the ledger and the transfers.
 */
export async function reconcileChannels({
  channels,
  payments,
  client,
  settlement,
  network,
  asset,
  payTo,
  channelSettledOnChainAtomic,
}: ReconcileChannelsParameters): Promise<ReconcileChannelsReturnType> {
  const same = (a: string, b: string) => a.toLowerCase() === b.toLowerCase();
  const nothing = {
    channelCount: 0,
    chargedAtomic: 0n,
    claimedOnChainAtomic: 0n,
    unclaimedAtomic: 0n,
    settledOnChainAtomic: 0n,
    differences: [],
  };
  const list = (await channels.list()).filter(
    (c) => c.network === network && same(c.token, asset) && same(c.receiver, payTo),
  );
  // No channel here and nothing the contract paid payTo: nothing to compare, and no call to a contract the
  // network may not have. Transfers from it with no channel in the ledger (a lost or wrong data dir) are compared.
  if (list.length === 0 && !(channelSettledOnChainAtomic !== undefined && channelSettledOnChainAtomic > 0n))
    return nothing;
  // A channel's state is only true on the chain it was recorded on.
  const ledgerGenesisHash = await channels.boundChain(network);
  if (ledgerGenesisHash !== undefined) {
    const genesis = await client.getBlock({ blockNumber: 0n });
    if (genesis.hash && !same(genesis.hash, ledgerGenesisHash))
      return { ...nothing, otherChain: { ledgerGenesisHash, chainGenesisHash: genesis.hash } };
  }
  // Payment rows of a channel id that an earlier chain's channel had too: only those after it was set aside count.
  const earlierChainRowsThrough = new Map<string, number>();
  for (const old of await channels.listSetAside()) {
    if (old.network !== network) continue;
    const key = old.channelId.toLowerCase();
    earlierChainRowsThrough.set(key, Math.max(earlierChainRowsThrough.get(key) ?? 0, old.paymentsThroughId));
  }
  const rowsByChannel = new Map<string, bigint>();
  for (const status of ["settled", "zero"] as const) {
    for (let afterId = 0; ; ) {
      const page = await payments.listByStatus(status, { afterId, limit: 1000 });
      for (const row of page) {
        if (row.scheme !== "batch-settlement") continue;
        const channelId = (row.paymentPayload as { payload?: { voucher?: { channelId?: string } } }).payload
          ?.voucher?.channelId;
        if (typeof channelId !== "string") continue;
        const key = channelId.toLowerCase();
        if (row.id <= (earlierChainRowsThrough.get(key) ?? 0)) continue;
        rowsByChannel.set(key, (rowsByChannel.get(key) ?? 0n) + (row.chargeAtomic ?? 0n));
      }
      const last = page.at(-1);
      if (page.length < 1000 || last === undefined) break;
      afterId = last.id;
    }
  }

  const differences: ChannelDifference[] = [];
  let chargedAtomic = 0n;
  let claimedOnChainAtomic = 0n;
  let unclaimedAtomic = 0n;
  let settledInLedger = 0n;
  for (const channel of list) {
    const onchain = await readChannelState(client, settlement, channel.channelId as Hex);
    chargedAtomic += channel.chargedAtomic;
    claimedOnChainAtomic += onchain.totalClaimedAtomic;
    settledInLedger += channel.settledAtomic;
    const collectible = smallerOf(channel.chargedAtomic, onchain.balanceAtomic);
    if (onchain.totalClaimedAtomic < collectible) unclaimedAtomic += collectible - onchain.totalClaimedAtomic;
    if (onchain.balanceAtomic < channel.chargedAtomic)
      differences.push({
        kind: "channel_shortfall",
        channelId: channel.channelId,
        chargedAtomic: channel.chargedAtomic.toString(),
        balanceOnChainAtomic: onchain.balanceAtomic.toString(),
      });
    const rowsAtomic = rowsByChannel.get(channel.channelId.toLowerCase()) ?? 0n;
    if (rowsAtomic !== channel.chargedAtomic)
      differences.push({
        kind: "channel_rows_mismatch",
        channelId: channel.channelId,
        chargedAtomic: channel.chargedAtomic.toString(),
        rowsAtomic: rowsAtomic.toString(),
      });
    if (onchain.totalClaimedAtomic > channel.chargedAtomic)
      differences.push({
        kind: "claimed_above_charged",
        channelId: channel.channelId,
        chargedAtomic: channel.chargedAtomic.toString(),
        claimedOnChainAtomic: onchain.totalClaimedAtomic.toString(),
      });
    else if (onchain.totalClaimedAtomic !== channel.totalClaimedAtomic)
      differences.push({
        kind: "claim_unrecorded",
        channelId: channel.channelId,
        claimedAtomic: channel.totalClaimedAtomic.toString(),
        claimedOnChainAtomic: onchain.totalClaimedAtomic.toString(),
      });
  }
  const [, settledOnChainAtomic] = await client.readContract({
    address: settlement,
    abi: batchSettlementAbi,
    functionName: "receivers",
    args: [getAddress(payTo), getAddress(asset)],
  });
  if (settledOnChainAtomic !== settledInLedger)
    differences.push({
      kind: "settled_mismatch",
      settledOnChainAtomic: settledOnChainAtomic.toString(),
      comparedAtomic: settledInLedger.toString(),
      against: "ledger",
    });
  if (channelSettledOnChainAtomic !== undefined && channelSettledOnChainAtomic !== settledOnChainAtomic)
    differences.push({
      kind: "settled_mismatch",
      settledOnChainAtomic: settledOnChainAtomic.toString(),
      comparedAtomic: channelSettledOnChainAtomic.toString(),
      against: "transfers",
    });
  return {
    channelCount: list.length,
    chargedAtomic,
    claimedOnChainAtomic,
    unclaimedAtomic,
    settledOnChainAtomic,
    differences,
  };
}

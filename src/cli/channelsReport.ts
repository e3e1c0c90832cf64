import { type ChannelLedger, channelShortfallAtomic } from "../ledger/index.js";

/** The money columns of a channel, and of the totals. */
export const channelMoneyFields = [
  "depositedAtomic",
  "balanceAtomic",
  "chargedAtomic",
  "totalClaimedAtomic",
  "settledAtomic",
  "refundedAtomic",
] as const;

type Money = Record<(typeof channelMoneyFields)[number], string>;

/** The report `tollgate channels --json` prints, read the same way from the data dir or through a gateway. */
export type ChannelsReport = {
  totals: { channels: number; shortChannels: number; shortfallAtomic: string } & Money;
  channels: Array<
    {
      channelId: string;
      network: string;
      payer: string;
      unclaimedAtomic: string;
      shortfallAtomic: string;
      /** The chain's time (seconds) the payer's withdrawal was asked for, or null. */
      withdrawRequestedAt: number | null;
      lastRequestAt: string | null;
    } & Money
  >;
  setAside: Array<{
    channelId: string;
    network: string;
    genesisHash: string | null;
    chargedAtomic: string;
    totalClaimedAtomic: string;
    reason: string;
    setAsideAt: string;
  }>;
};

/** Every channel, the totals, and the channels of earlier chains set aside, in plain JSON. */
export async function readChannelsReport(channels: ChannelLedger): Promise<ChannelsReport> {
  const [listed, setAside] = await Promise.all([channels.list(), channels.listSetAside()]);
  const sum = (field: (typeof channelMoneyFields)[number]) =>
    listed.reduce((total, c) => total + c[field], 0n).toString();
  const shortfalls = listed.map(channelShortfallAtomic);
  return {
    totals: {
      channels: listed.length,
      ...(Object.fromEntries(channelMoneyFields.map((field) => [field, sum(field)])) as Money),
      shortChannels: shortfalls.filter((shortfall) => shortfall > 0n).length,
      shortfallAtomic: shortfalls.reduce((total, shortfall) => total + shortfall, 0n).toString(),
    },
    channels: listed.map((c, i) => ({
      channelId: c.channelId,
      network: c.network,
      payer: c.payer,
      ...(Object.fromEntries(channelMoneyFields.map((field) => [field, c[field].toString()])) as Money),
      unclaimedAtomic: (c.chargedAtomic - c.totalClaimedAtomic).toString(),
      shortfallAtomic: shortfalls[i]!.toString(),
      withdrawRequestedAt: c.withdrawRequestedAt || null,
      lastRequestAt: c.lastRequestAt ? new Date(c.lastRequestAt).toISOString() : null,
    })),
    setAside: setAside.map((c) => ({
      channelId: c.channelId,
      network: c.network,
      genesisHash: c.genesisHash,
      chargedAtomic: c.chargedAtomic.toString(),
      totalClaimedAtomic: c.totalClaimedAtomic.toString(),
      reason: c.reason,
      setAsideAt: c.setAsideAt.toISOString(),
    })),
  };
}

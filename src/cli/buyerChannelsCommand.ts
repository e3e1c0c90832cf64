import { createPublicClient, http } from "viem";
import { z } from "zod";
import { type BuyerChannel, type ChannelOnChain, readChannelOnChain } from "../buyer/index.js";
import { TollgateError } from "../errors/index.js";
import { formatMoney } from "../pricing/index.js";
import { exitCodes, parseFlags, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { jsonLine, openCliSpendStore } from "./payCommand.js";

const flagsSchema = z.object({
  buyer: z.boolean().default(false),
  json: z.boolean().default(false),
  rpc: z.url().optional(),
  gateway: z.url().optional(),
});

/** One buyer channel as `tollgate channels --buyer` reports it. */
type ChannelReport = {
  origin: string;
  channelId: string;
  slot: number;
  network: string;
  asset: string;
  payTo: string;
  depositedAtomic: bigint;
  deposits: number;
  /** The buyer's view: balance and charged total (absent once the channel was refunded). */
  balanceAtomic: bigint | null;
  chargedAtomic: bigint | null;
  remainingAtomic: bigint | null;
  /** Read from `--rpc` when the channel is on its chain; null otherwise. */
  onChain: ChannelOnChain | null;
  /** `--rpc`'s chain holds nothing of a channel the buyer holds a balance in (a devnet started afresh). */
  missingOnChain: boolean;
};

/**
 * `tollgate channels --buyer`: the buyer's channels from its spend store (deposits, balance, the
 * charged total, what remains) and, with `--rpc`, what the contract holds (escrow, claimed, a
 * pending withdrawal), with totals.
 */
export async function buyerChannelsCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags("channels", argv, commandFlags.channels, flagsSchema);
  if (!flags.buyer) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: "tollgate channels --buyer lists this buyer's channels (add --buyer)",
    });
  }
  const publicClient = flags.rpc ? createPublicClient({ transport: http(flags.rpc) }) : undefined;
  const rpcNetwork = publicClient ? `eip155:${await publicClient.getChainId()}` : undefined;
  const store = await openCliSpendStore();
  try {
    const origin = flags.gateway ? new URL(flags.gateway).origin : undefined;
    const channels = await store.channels({ origin });
    const reports: ChannelReport[] = [];
    for (const channel of channels) {
      // A channel of another chain than --rpc's is not read there: its id means nothing on it.
      const onChain =
        publicClient && channel.network === rpcNetwork
          ? await readChannelOnChain(publicClient, channel.channelId, channel.withdrawDelay)
          : undefined;
      reports.push(reportOf(channel, onChain));
    }
    const totals = totalsOf(reports);
    if (flags.json) printLine(jsonLine({ channels: reports, totals }));
    else printLine(formatChannels(reports, totals));
    return exitCodes.ok;
  } finally {
    await store.close();
  }
}

/** What a list's channels add up to, per network and asset; a channel missing on chain is left out. */
type Totals = {
  network: string;
  asset: string;
  depositedAtomic: bigint;
  chargedAtomic: bigint;
  remainingAtomic: bigint;
};

function totalsOf(reports: readonly ChannelReport[]): Totals[] {
  const totals = new Map<string, Totals>();
  for (const report of reports) {
    if (report.missingOnChain) continue;
    const key = `${report.network} ${report.asset.toLowerCase()}`;
    const total = totals.get(key) ?? {
      network: report.network,
      asset: report.asset,
      depositedAtomic: 0n,
      chargedAtomic: 0n,
      remainingAtomic: 0n,
    };
    total.depositedAtomic += report.depositedAtomic;
    total.chargedAtomic += report.chargedAtomic ?? 0n;
    total.remainingAtomic += report.remainingAtomic ?? 0n;
    totals.set(key, total);
  }
  return [...totals.values()];
}

function reportOf(channel: BuyerChannel, onChain: ChannelOnChain | undefined): ChannelReport {
  const balance = channel.context?.balance === undefined ? null : BigInt(channel.context.balance);
  const charged =
    channel.context?.chargedCumulativeAmount === undefined
      ? null
      : BigInt(channel.context.chargedCumulativeAmount);
  return {
    origin: channel.origin,
    channelId: channel.channelId,
    slot: channel.slot,
    network: channel.network,
    asset: channel.asset,
    payTo: channel.payTo,
    depositedAtomic: channel.depositedAtomic,
    deposits: channel.deposits,
    balanceAtomic: balance,
    chargedAtomic: charged,
    remainingAtomic: balance === null ? null : balance - (charged ?? 0n),
    onChain: onChain ?? null,
    // The buyer holds a balance the contract never had: a chain started afresh (a devnet) since.
    missingOnChain:
      onChain !== undefined &&
      balance !== null &&
      balance > 0n &&
      onChain.balanceAtomic === 0n &&
      onChain.totalClaimedAtomic === 0n &&
      onChain.pendingWithdrawal === undefined,
  };
}

function formatChannels(reports: ChannelReport[], totals: Totals[]): string {
  if (reports.length === 0) return "no channels: this buyer has paid no seller by channel (batch-settlement)";
  const lines = [`${reports.length} channel${reports.length === 1 ? "" : "s"}`];
  const networks = new Set(reports.map((report) => report.network));
  for (const report of reports) {
    const view =
      report.balanceAtomic === null
        ? "refunded or closed"
        : `balance ${formatMoney(report.balanceAtomic)}, charged ${formatMoney(report.chargedAtomic ?? 0n)}, remaining ${formatMoney(report.remainingAtomic ?? 0n)}`;
    const where = networks.size > 1 ? ` on ${report.network}` : "";
    lines.push(
      `  ${report.origin} #${report.slot} ${report.channelId.slice(0, 10)}…${where}  deposited ${formatMoney(report.depositedAtomic)} (${report.deposits}) — ${view}`,
    );
    if (report.missingOnChain) {
      lines.push(
        "      not on this chain: it holds nothing of this channel (a devnet started afresh?); left out of the totals",
      );
    } else if (report.onChain) {
      const { balanceAtomic, totalClaimedAtomic, pendingWithdrawal } = report.onChain;
      const withdrawal = pendingWithdrawal
        ? `, withdrawal of ${formatMoney(pendingWithdrawal.amountAtomic)} pending until ${pendingWithdrawal.finalizableAt.toISOString()}`
        : "";
      lines.push(
        `      on chain: escrow ${formatMoney(balanceAtomic)}, claimed by the seller ${formatMoney(totalClaimedAtomic)}${withdrawal}`,
      );
    }
  }
  for (const total of totals) {
    const of = totals.length > 1 || networks.size > 1 ? ` on ${total.network} (${total.asset})` : "";
    lines.push(
      `total${of}: deposited ${formatMoney(total.depositedAtomic)}, charged ${formatMoney(total.chargedAtomic)}, remaining ${formatMoney(total.remainingAtomic)}`,
    );
  }
  return lines.join("\n");
}

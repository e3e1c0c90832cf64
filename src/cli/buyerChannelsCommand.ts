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
  onChain: ChannelOnChain | null;
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
  const store = await openCliSpendStore();
  try {
    const origin = flags.gateway ? new URL(flags.gateway).origin : undefined;
    const channels = await store.channels({ origin });
    const reports: ChannelReport[] = [];
    for (const channel of channels) {
      const onChain = publicClient
        ? await readChannelOnChain(publicClient, channel.channelId, channel.withdrawDelay)
        : undefined;
      reports.push(reportOf(channel, onChain));
    }
    const totals = {
      depositedAtomic: reports.reduce((sum, report) => sum + report.depositedAtomic, 0n),
      chargedAtomic: reports.reduce((sum, report) => sum + (report.chargedAtomic ?? 0n), 0n),
      remainingAtomic: reports.reduce((sum, report) => sum + (report.remainingAtomic ?? 0n), 0n),
    };
    if (flags.json) printLine(jsonLine({ channels: reports, totals }));
    else printLine(formatChannels(reports, totals));
    return exitCodes.ok;
  } finally {
    await store.close();
  }
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
  };
}

function formatChannels(
  reports: ChannelReport[],
  totals: { depositedAtomic: bigint; chargedAtomic: bigint; remainingAtomic: bigint },
): string {
  if (reports.length === 0) return "no channels: this buyer has paid no seller by channel (batch-settlement)";
  const lines = [`${reports.length} channel${reports.length === 1 ? "" : "s"}`];
  for (const report of reports) {
    const view =
      report.balanceAtomic === null
        ? "refunded or closed"
        : `balance ${formatMoney(report.balanceAtomic)}, charged ${formatMoney(report.chargedAtomic ?? 0n)}, remaining ${formatMoney(report.remainingAtomic ?? 0n)}`;
    lines.push(
      `  ${report.origin} #${report.slot} ${report.channelId.slice(0, 10)}…  deposited ${formatMoney(report.depositedAtomic)} (${report.deposits}) — ${view}`,
    );
    if (report.onChain) {
      const { balanceAtomic, totalClaimedAtomic, pendingWithdrawal } = report.onChain;
      const withdrawal = pendingWithdrawal
        ? `, withdrawal of ${formatMoney(pendingWithdrawal.amountAtomic)} pending until ${pendingWithdrawal.finalizableAt.toISOString()}`
        : "";
      lines.push(
        `      on chain: escrow ${formatMoney(balanceAtomic)}, claimed by the seller ${formatMoney(totalClaimedAtomic)}${withdrawal}`,
      );
    }
  }
  lines.push(
    `total: deposited ${formatMoney(totals.depositedAtomic)}, charged ${formatMoney(totals.chargedAtomic)}, remaining ${formatMoney(totals.remainingAtomic)}`,
  );
  return lines.join("\n");
}

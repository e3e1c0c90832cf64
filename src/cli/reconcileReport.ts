import { BATCH_SETTLEMENT_ADDRESS } from "@x402/evm";
import { type Address, createPublicClient, http, type PublicClient } from "viem";
import { findNetworkPreset, isTransportError } from "../chain/index.js";
import { TollgateError } from "../errors/index.js";
import {
  type ChannelDifference,
  type GatewayConfig,
  type ReconcileDifference,
  reconcileChannels,
  reconcileLedger,
} from "../gateway/index.js";
import type { Ledger } from "../ledger/index.js";
import { formatMoney } from "../pricing/index.js";

/** What `tollgate reconcile --json` prints: the ledger against the chain, both ways, channels included. */
export type ReconcileReport = {
  ledger: string;
  network: string;
  asset: string;
  payTo: string;
  fromBlock: string;
  toBlock: string;
  settledCount: number;
  settledAtomic: string;
  settledBeforeRange: number;
  transferCount: number;
  transferredAtomic: string;
  differences: ReconcileDifference[];
  channels: {
    count: number;
    chargedAtomic: string;
    claimedOnChainAtomic: string;
    unclaimedAtomic: string;
    settledOnChainAtomic: string;
    otherChain?: { ledgerGenesisHash: string; chainGenesisHash: string };
    differences: ChannelDifference[];
  };
};

/** The blocks to compare, and the RPC to read them from when not the config's. */
export type ReconcileRange = { fromBlock: bigint; toBlock?: bigint | undefined; rpcUrl?: string | undefined };

/** Where the money of a config goes, and where its chain is read: what reconciling needs of it. */
export function reconcileTarget(config: GatewayConfig, rpcOverride?: string) {
  const preset = findNetworkPreset(config.network);
  const asset = config.asset ?? preset?.usdc;
  const rpcUrl = rpcOverride ?? config.rpcUrl ?? preset?.defaultRpcUrl;
  if (!preset || !asset || !rpcUrl) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: "reconcile needs the config's network, asset and rpcUrl (or --rpc)",
    });
  }
  return { network: preset.network, asset, payTo: config.payTo, rpcUrl };
}

/**
 * Reconciles `ledger` (named `description`) with the chain of `config`: its settled payments against the
 * transfers to payTo, and its channels' charges against their claims and settlements. A chain that does
 * not answer is a `TOLLGATE_CHAIN_UNAVAILABLE` naming the RPC.
 */
export async function reconcileReport(
  ledger: Pick<Ledger, "payments" | "channels">,
  description: string,
  config: GatewayConfig,
  { fromBlock, toBlock, rpcUrl: rpcOverride }: ReconcileRange,
): Promise<ReconcileReport> {
  const { network, asset, payTo, rpcUrl } = reconcileTarget(config, rpcOverride);
  const client = createPublicClient({
    transport: http(rpcUrl, { timeout: 30_000, retryCount: 2 }),
  }) as PublicClient;
  try {
    const result = await reconcileLedger({
      payments: ledger.payments,
      client,
      network,
      asset,
      payTo,
      fromBlock,
      toBlock,
      channelSettlement: BATCH_SETTLEMENT_ADDRESS,
    });
    // Channels: charges per channel = rows = claims on chain; claims settled = transfers to payTo.
    const channels = await reconcileChannels({
      channels: ledger.channels,
      payments: ledger.payments,
      client,
      settlement: BATCH_SETTLEMENT_ADDRESS as Address,
      network,
      asset,
      payTo,
      channelSettledOnChainAtomic:
        fromBlock === 0n && toBlock === undefined ? result.chain.channelSettledAtomic : undefined,
    });
    return {
      ledger: description,
      network,
      asset,
      payTo,
      fromBlock: result.fromBlock.toString(),
      toBlock: result.toBlock.toString(),
      settledCount: result.ledger.settledCount,
      settledAtomic: result.ledger.settledAtomic.toString(),
      settledBeforeRange: result.ledger.beforeRangeCount,
      transferCount: result.chain.transferCount,
      transferredAtomic: result.chain.transferredAtomic.toString(),
      differences: result.differences,
      channels: {
        count: channels.channelCount,
        chargedAtomic: channels.chargedAtomic.toString(),
        claimedOnChainAtomic: channels.claimedOnChainAtomic.toString(),
        unclaimedAtomic: channels.unclaimedAtomic.toString(),
        settledOnChainAtomic: channels.settledOnChainAtomic.toString(),
        ...(channels.otherChain ? { otherChain: channels.otherChain } : {}),
        differences: channels.differences,
      },
    };
  } catch (error) {
    if (!isTransportError(error)) throw error;
    throw new TollgateError({
      code: "TOLLGATE_CHAIN_UNAVAILABLE",
      shortMessage: `no chain answers at ${rpcOverride ? "--rpc " : "the config's rpcUrl "}${rpcUrl}: reconcile reads the chain's transfers, so give a reachable RPC (--rpc URL); a tollgate dev chain stops with tollgate dev`,
      details: { rpcUrl },
      cause: error,
    });
  }
}

/** How many differences a report lists (the goal is none). */
export const differenceCount = (report: ReconcileReport): number =>
  report.differences.length + report.channels.differences.length;

const count = (n: number, noun: string) => `${n} ${noun}${n === 1 ? "" : "s"}`;

/** The report as `tollgate reconcile` prints it. */
export function formatReconcileReport(report: ReconcileReport): string[] {
  const money = (atomic: string) => formatMoney(BigInt(atomic));
  const { channels } = report;
  const lines = [
    `Reconciling ${report.ledger} with ${report.network} blocks ${report.fromBlock}–${report.toBlock} (asset ${report.asset}, payTo ${report.payTo})`,
    `  ledger  ${count(report.settledCount, "payment")} settled by transaction (upto, exact), ${money(report.settledAtomic)}` +
      (report.settledBeforeRange > 0 ? ` (${report.settledBeforeRange} settled before the range)` : ""),
    `  chain   ${count(report.transferCount, "transfer")} to payTo outside the channels, ${money(report.transferredAtomic)}`,
    report.differences.length === 0 ? "  differences: none" : `  differences: ${report.differences.length}`,
    ...report.differences.map((difference) => `    ${describeDifference(difference)}`),
  ];
  if (channels.otherChain)
    lines.push(
      `  channels: the ledger's were recorded on the chain whose block 0 is ${channels.otherChain.ledgerGenesisHash}, not on this one (${channels.otherChain.chainGenesisHash}); none compared`,
    );
  lines.push(
    `  channels ${channels.count}: charged ${money(channels.chargedAtomic)}, claimed on chain ${money(channels.claimedOnChainAtomic)} (${money(channels.unclaimedAtomic)} not claimed yet), settled to payTo ${money(channels.settledOnChainAtomic)}`,
    channels.differences.length === 0
      ? "  channel differences: none"
      : `  channel differences: ${channels.differences.length}`,
    ...channels.differences.map((difference) => `    ${describeChannelDifference(difference)}`),
  );
  return lines;
}

function describeDifference(difference: ReconcileDifference): string {
  switch (difference.kind) {
    case "missing_on_chain":
      return difference.transactionOnChain
        ? `payment #${difference.paymentId} settled ${difference.chargeAtomic} from ${difference.payer} in ${difference.transaction}, but that transaction moved nothing of it to payTo`
        : `payment #${difference.paymentId} settled ${difference.chargeAtomic} from ${difference.payer} in ${difference.transaction}, but the chain has no such transaction (its block was reorganised away, or it was never mined): the charge was not collected`;
    case "amount_mismatch":
      return `payment #${difference.paymentId} charged ${difference.chargeAtomic}, but ${difference.transaction} moved ${difference.onChainAtomic}`;
    case "duplicate_transaction":
      return `payments ${difference.paymentIds.map((id) => `#${id}`).join(", ")} all name ${difference.transaction}`;
    case "not_in_ledger":
      return `transfer of ${difference.amountAtomic} from ${difference.from} in ${difference.transaction} (block ${difference.blockNumber}) is in no settled payment${difference.pendingPaymentId === undefined ? "" : ` (payment #${difference.pendingPaymentId} of that payer is still open)`}`;
  }
}

function describeChannelDifference(difference: ChannelDifference): string {
  switch (difference.kind) {
    case "channel_rows_mismatch":
      return `channel ${difference.channelId} charged ${difference.chargedAtomic}, but its payment rows sum to ${difference.rowsAtomic}`;
    case "claimed_above_charged":
      return `channel ${difference.channelId}: ${difference.claimedOnChainAtomic} claimed on chain, above the ${difference.chargedAtomic} charged`;
    case "channel_shortfall":
      return `channel ${difference.channelId} charged ${difference.chargedAtomic}, but its escrow on chain holds ${difference.balanceOnChainAtomic}: its payer withdrew before the charges were claimed and owes the rest`;
    case "claim_unrecorded":
      return `channel ${difference.channelId}: the ledger records ${difference.claimedAtomic} claimed, the chain ${difference.claimedOnChainAtomic}`;
    case "settled_mismatch":
      return `the contract settled ${difference.settledOnChainAtomic} to payTo, the ${difference.against} say ${difference.comparedAtomic}`;
  }
}

import { BATCH_SETTLEMENT_ADDRESS } from "@x402/evm";
import { type Address, createPublicClient, http, type PublicClient } from "viem";
import { z } from "zod";
import { findNetworkPreset, isTransportError } from "../chain/index.js";
import { TollgateError } from "../errors/index.js";
import {
  type ChannelDifference,
  parseGatewayConfig,
  type ReconcileDifference,
  reconcileChannels,
  reconcileLedger,
} from "../gateway/index.js";
import { formatMoney } from "../pricing/index.js";
import { exitCodes, parseFlags, printLine } from "./cliSupport.js";
import { commandFlags } from "./commandFlags.js";
import { readConfigFile } from "./gatewayCommand.js";
import { openCliLedger } from "./openCliLedger.js";

const blockSchema = z.coerce.bigint().refine((value) => value >= 0n, "a block number (0 or more)");
const flagsSchema = z.object({
  config: z.string().default("tollgate.yaml"),
  fromBlock: blockSchema.default(0n),
  toBlock: blockSchema.optional(),
  rpc: z.string().url().optional(),
  dataDir: z.string().optional(),
  json: z.boolean().default(false),
});

/** `tollgate reconcile`: the ledger against the chain, both ways. */
export async function reconcileCommand(argv: string[]): Promise<number> {
  const { flags } = parseFlags(
    "reconcile",
    argv,
    commandFlags.reconcile,
    z.preprocess((values) => {
      const v = values as Record<string, unknown>;
      return { ...v, fromBlock: v["from-block"], toBlock: v["to-block"], dataDir: v["data-dir"] };
    }, flagsSchema),
  );
  const config = parseReconcileConfig(await readConfigFile(flags.config));
  const preset = findNetworkPreset(config.network);
  const asset = config.asset ?? preset?.usdc;
  const rpcUrl = flags.rpc ?? config.rpcUrl ?? preset?.defaultRpcUrl;
  if (!preset || !asset || !rpcUrl) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: "reconcile needs the config's network, asset and rpcUrl (or --rpc)",
    });
  }
  const client = createPublicClient({
    transport: http(rpcUrl, { timeout: 30_000, retryCount: 2 }),
  }) as PublicClient;
  const { ledger, description } = await openCliLedger({
    dataDir: flags.dataDir ?? config.ledger.dataDir ?? ".tollgate/ledger",
    databaseUrlEnv: config.ledger.databaseUrlEnv,
    schema: config.ledger.schema,
  });
  try {
    const result = await reconcileLedger({
      payments: ledger.payments,
      client,
      network: preset.network,
      asset,
      payTo: config.payTo,
      fromBlock: flags.fromBlock,
      toBlock: flags.toBlock,
      channelSettlement: BATCH_SETTLEMENT_ADDRESS,
    });
    // Channels: charges per channel = rows = claims on chain; claims settled = transfers to payTo.
    const channels = await reconcileChannels({
      channels: ledger.channels,
      payments: ledger.payments,
      client,
      settlement: BATCH_SETTLEMENT_ADDRESS as Address,
      network: preset.network,
      asset,
      payTo: config.payTo,
      channelSettledOnChainAtomic:
        (flags.fromBlock ?? 0n) === 0n && flags.toBlock === undefined
          ? result.chain.channelSettledAtomic
          : undefined,
    });
    const differenceCount = result.differences.length + channels.differences.length;
    if (flags.json) {
      printLine(
        JSON.stringify({
          ledger: description,
          network: preset.network,
          asset,
          payTo: config.payTo,
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
        }),
      );
    } else {
      printLine(
        `Reconciling ${description} with ${preset.network} blocks ${result.fromBlock}–${result.toBlock} (asset ${asset}, payTo ${config.payTo})`,
      );
      printLine(
        `  ledger  ${result.ledger.settledCount} settled payments, ${formatMoney(result.ledger.settledAtomic)}` +
          (result.ledger.beforeRangeCount > 0
            ? ` (${result.ledger.beforeRangeCount} settled before the range)`
            : ""),
      );
      printLine(
        `  chain   ${result.chain.transferCount} transfers to payTo, ${formatMoney(result.chain.transferredAtomic)}`,
      );
      printLine(
        result.differences.length === 0
          ? "  differences: none"
          : `  differences: ${result.differences.length}`,
      );
      for (const difference of result.differences) printLine(`    ${describeDifference(difference)}`);
      if (channels.otherChain)
        printLine(
          `  channels: the ledger's were recorded on the chain whose block 0 is ${channels.otherChain.ledgerGenesisHash}, not on this one (${channels.otherChain.chainGenesisHash}); none compared`,
        );
      printLine(
        `  channels ${channels.channelCount}: charged ${formatMoney(channels.chargedAtomic)}, claimed on chain ${formatMoney(channels.claimedOnChainAtomic)} (${formatMoney(channels.unclaimedAtomic)} not claimed yet), settled to payTo ${formatMoney(channels.settledOnChainAtomic)}`,
      );
      printLine(
        channels.differences.length === 0
          ? "  channel differences: none"
          : `  channel differences: ${channels.differences.length}`,
      );
      for (const difference of channels.differences)
        printLine(`    ${describeChannelDifference(difference)}`);
    }
    return differenceCount === 0 ? exitCodes.ok : exitCodes.failure;
  } catch (error) {
    if (!isTransportError(error)) throw error;
    throw new TollgateError({
      code: "TOLLGATE_CHAIN_UNAVAILABLE",
      shortMessage: `no chain answers at ${flags.rpc ? "--rpc " : "the config's rpcUrl "}${rpcUrl}: reconcile reads the chain's transfers, so give a reachable RPC (--rpc URL); a tollgate dev chain stops with tollgate dev`,
      details: { rpcUrl },
      cause: error,
    });
  } finally {
    await ledger.close();
  }
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

/**
 * A gateway config as reconciling reads it: its secrets are not resolved (reconciling needs no key,
 * only where the money goes), and its operator endpoints, whose tokens are secrets too, are left out.
 */
export function parseReconcileConfig(raw: unknown) {
  const {
    dashboard: _dashboard,
    metrics: _metrics,
    ...rest
  } = typeof raw === "object" && raw !== null ? (raw as Record<string, unknown>) : {};
  return parseGatewayConfig(rest);
}

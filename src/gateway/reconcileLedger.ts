import { type Address, erc20Abi, getAddress, type Hex, type PublicClient, parseEventLogs } from "viem";
import type { PaymentLedger, PaymentRecord } from "../ledger/index.js";

export type ReconcileLedgerParameters = {
  payments: PaymentLedger;
  client: PublicClient;
  network: string;
  asset: string;
  payTo: string;
  /** First block to compare (default 0); ledger rows settled before it are counted apart, not compared. */
  fromBlock?: bigint;
  /** Last block (default: the latest). */
  toBlock?: bigint;
  /** Blocks per `eth_getLogs` call; default 10,000. */
  blocksPerQuery?: bigint;
  /**
   * The batch-settlement contract: its transfers to payTo sweep channel claims, which `reconcileChannels`
   * accounts for; they are summed apart (`chain.channelSettledAtomic`), not matched to payment rows.
   */
  channelSettlement?: string;
};

/** One way the ledger and the chain disagree. */
export type ReconcileDifference =
  /**
   * A settled row whose transaction moved nothing (or not this payer's funds) to payTo. `transactionOnChain`
   * false: the chain holds no such transaction (its block was reorganised away, or it was never mined), so
   * the charge was not collected.
   */
  | {
      kind: "missing_on_chain";
      paymentId: number;
      transaction: string;
      payer: string;
      chargeAtomic: string;
      transactionOnChain: boolean;
    }
  /** The transaction moved another amount than the row's charge. */
  | {
      kind: "amount_mismatch";
      paymentId: number;
      transaction: string;
      chargeAtomic: string;
      onChainAtomic: string;
    }
  /** Two settled rows name one transaction. */
  | { kind: "duplicate_transaction"; paymentIds: number[]; transaction: string }
  /** A transfer to payTo that no settled row accounts for (a settlement the ledger lost, or a direct payment). */
  | {
      kind: "not_in_ledger";
      transaction: string;
      from: string;
      amountAtomic: string;
      blockNumber: string;
      /** A row of the same payer still pending or in debt, if one exists: the likely owner of this transfer. */
      pendingPaymentId?: number;
    };

export type ReconcileLedgerReturnType = {
  fromBlock: bigint;
  toBlock: bigint;
  ledger: { settledCount: number; settledAtomic: bigint; beforeRangeCount: number };
  chain: { transferCount: number; transferredAtomic: bigint; channelSettledAtomic: bigint };
  differences: ReconcileDifference[];
};

type Transfer = { transaction: Hex; from: Address; amountAtomic: bigint; blockNumber: bigint };

/**
 * Compares the ledger's settled payments with the `Transfer` logs of the asset to payTo on chain, both ways,
 * and lists every difference (the goal is none): what `tollgate reconcile` prints.
 */
export async function reconcileLedger({
  payments,
  client,
  network,
  asset,
  payTo,
  fromBlock = 0n,
  toBlock,
  blocksPerQuery = 10_000n,
  channelSettlement,
}: ReconcileLedgerParameters): Promise<ReconcileLedgerReturnType> {
  const assetAddress = getAddress(asset);
  const payToAddress = getAddress(payTo);
  const lastBlock = toBlock ?? (await client.getBlockNumber({ cacheTime: 0 }));

  const transfers: Transfer[] = [];
  let channelSettledAtomic = 0n;
  for (let from = fromBlock; from <= lastBlock; from += blocksPerQuery) {
    const to = from + blocksPerQuery - 1n < lastBlock ? from + blocksPerQuery - 1n : lastBlock;
    const logs = await client.getLogs({
      address: assetAddress,
      event: transferEvent,
      args: { to: payToAddress },
      fromBlock: from,
      toBlock: to,
    });
    for (const log of logs) {
      if (channelSettlement && (log.args.from as string).toLowerCase() === channelSettlement.toLowerCase()) {
        channelSettledAtomic += log.args.value ?? 0n;
        continue;
      }
      transfers.push({
        transaction: log.transactionHash,
        from: log.args.from as Address,
        amountAtomic: log.args.value ?? 0n,
        blockNumber: log.blockNumber,
      });
    }
  }
  const byTransaction = new Map<string, Transfer[]>();
  for (const transfer of transfers) {
    const key = transfer.transaction.toLowerCase();
    byTransaction.set(key, [...(byTransaction.get(key) ?? []), transfer]);
  }

  const settled: PaymentRecord[] = [];
  for (let afterId = 0; ; ) {
    const page = await payments.listByStatus("settled", { afterId, limit: 1000 });
    for (const row of page) {
      if (
        row.scheme !== "batch-settlement" &&
        row.network === network &&
        row.asset.toLowerCase() === assetAddress.toLowerCase() &&
        row.payTo.toLowerCase() === payToAddress.toLowerCase()
      )
        settled.push(row);
    }
    const last = page.at(-1);
    if (page.length < 1000 || last === undefined) break;
    afterId = last.id;
  }

  const differences: ReconcileDifference[] = [];
  const accounted = new Set<string>();
  const rowsByTransaction = new Map<string, number[]>();
  let settledAtomic = 0n;
  let settledCount = 0;
  let beforeRangeCount = 0;
  for (const row of settled) {
    const transaction = (row.transaction ?? "").toLowerCase();
    const chargeAtomic = row.chargeAtomic ?? 0n;
    rowsByTransaction.set(transaction, [...(rowsByTransaction.get(transaction) ?? []), row.id]);
    let candidates = byTransaction.get(transaction);
    let transactionOnChain = true;
    if (candidates === undefined) {
      // Not among the range's transfers: outside the range, or missing.
      const inRange = await transferOfReceipt(client, transaction as Hex, assetAddress, payToAddress);
      if (inRange.blockNumber !== undefined && inRange.blockNumber < fromBlock) {
        beforeRangeCount++;
        continue;
      }
      if (inRange.blockNumber !== undefined && inRange.blockNumber > lastBlock) continue;
      candidates = inRange.transfers;
      transactionOnChain = inRange.blockNumber !== undefined;
    }
    settledCount++;
    settledAtomic += chargeAtomic;
    const fromPayer = candidates.filter((transfer) => transfer.from.toLowerCase() === row.payer);
    const exact = fromPayer.find((transfer) => transfer.amountAtomic === chargeAtomic);
    if (exact) {
      accounted.add(transaction);
      continue;
    }
    const [other] = fromPayer;
    if (other) {
      accounted.add(transaction);
      differences.push({
        kind: "amount_mismatch",
        paymentId: row.id,
        transaction: row.transaction ?? "",
        chargeAtomic: chargeAtomic.toString(),
        onChainAtomic: other.amountAtomic.toString(),
      });
      continue;
    }
    differences.push({
      kind: "missing_on_chain",
      paymentId: row.id,
      transaction: row.transaction ?? "",
      payer: row.payer,
      chargeAtomic: chargeAtomic.toString(),
      transactionOnChain,
    });
  }
  for (const [transaction, ids] of rowsByTransaction) {
    if (ids.length > 1 && transaction !== "")
      differences.push({ kind: "duplicate_transaction", paymentIds: ids, transaction });
  }

  const unaccounted = transfers.filter((transfer) => !accounted.has(transfer.transaction.toLowerCase()));
  if (unaccounted.length > 0) {
    const open = [...(await payments.pendingForRecovery()), ...(await payments.openDebts())];
    for (const transfer of unaccounted) {
      const owner = open.find((row) => row.payer === transfer.from.toLowerCase());
      differences.push({
        kind: "not_in_ledger",
        transaction: transfer.transaction,
        from: transfer.from,
        amountAtomic: transfer.amountAtomic.toString(),
        blockNumber: transfer.blockNumber.toString(),
        ...(owner ? { pendingPaymentId: owner.id } : {}),
      });
    }
  }

  return {
    fromBlock,
    toBlock: lastBlock,
    ledger: { settledCount, settledAtomic, beforeRangeCount },
    chain: {
      transferCount: transfers.length,
      transferredAtomic: transfers.reduce((sum, transfer) => sum + transfer.amountAtomic, 0n),
      channelSettledAtomic,
    },
    differences,
  };
}

const transferEvent = erc20Abi.find((item) => item.type === "event" && item.name === "Transfer") as Extract<
  (typeof erc20Abi)[number],
  { type: "event"; name: "Transfer" }
>;

/** The transfers to payTo in one transaction's receipt, and its block; none when it is unknown to the chain. */
async function transferOfReceipt(
  client: PublicClient,
  hash: Hex,
  asset: Address,
  payTo: Address,
): Promise<{ blockNumber?: bigint; transfers: Transfer[] }> {
  if (!/^0x[0-9a-f]{64}$/.test(hash)) return { transfers: [] };
  const receipt = await client.getTransactionReceipt({ hash }).catch((error: unknown) => {
    // Unknown to the chain is a finding; an unreachable RPC is not.
    if ((error as Error).name === "TransactionReceiptNotFoundError") return undefined;
    throw error;
  });
  if (!receipt) return { transfers: [] };
  const transfers = parseEventLogs({ abi: erc20Abi, eventName: "Transfer", logs: receipt.logs, strict: true })
    .filter(
      (log) =>
        log.address.toLowerCase() === asset.toLowerCase() &&
        log.args.to.toLowerCase() === payTo.toLowerCase(),
    )
    .map((log) => ({
      transaction: hash,
      from: log.args.from,
      amountAtomic: log.args.value,
      blockNumber: receipt.blockNumber,
    }));
  return { blockNumber: receipt.blockNumber, transfers };
}

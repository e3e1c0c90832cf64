// Gas per paid request, from the receipts of the run's own transactions on the devnet: upto's settle
// (one per request) against a channel's deposit, claim and settle spread over its requests; and what
// that gas costs the seller as a share of a request's price at stated gas and token prices.
import { createPublicClient, type Hex, http } from "viem";
import { type Summary, summarize } from "./stats.js";

/** One claim transaction and how many channels it claimed. */
export type ClaimGas = { channels: number; gas: number };

export type ChannelGasFigures = {
  /** Gas of the upto settle transactions of the run's paid requests through Tollgate. */
  uptoSettle: Summary;
  /** Gas of the channels' deposit transactions (one per channel). */
  deposit: Summary;
  /** The claim of every channel in one transaction (32 in the bench). */
  claimMany?: ClaimGas;
  /** A claim of one channel alone. */
  claimOne?: ClaimGas;
  /** Gas of the settle transactions (claimed funds to payTo, one transfer however many channels). */
  settle: Summary;
};

/** Reads `gasUsed` of each transaction from the chain node; throws on a failed (reverted) one. */
export async function gasOf(rpcUrl: string, transactions: readonly string[]): Promise<number[]> {
  const client = createPublicClient({ transport: http(rpcUrl) });
  const gas: number[] = [];
  for (let start = 0; start < transactions.length; start += 16) {
    const receipts = await Promise.all(
      transactions
        .slice(start, start + 16)
        .map((hash) => client.getTransactionReceipt({ hash: hash as Hex })),
    );
    for (const receipt of receipts) {
      if (receipt.status !== "success") throw new Error(`transaction ${receipt.transactionHash} reverted`);
      gas.push(Number(receipt.gasUsed));
    }
  }
  return gas;
}

/** Measures the figures from the transactions the run made. */
export async function measureChannelGas({
  rpcUrl,
  uptoTransactions,
  depositTransactions,
  claims,
  settles,
}: {
  rpcUrl: string;
  uptoTransactions: readonly string[];
  depositTransactions: readonly string[];
  claims: ReadonlyArray<{ channels: number; transaction: string }>;
  settles: readonly string[];
}): Promise<ChannelGasFigures> {
  const claimGas = await gasOf(
    rpcUrl,
    claims.map((claim) => claim.transaction),
  );
  const claimed = claims.map((claim, i) => ({ channels: claim.channels, gas: claimGas[i]! }));
  const many = claimed.reduce<ClaimGas | undefined>(
    (best, claim) => (claim.channels > 1 && (!best || claim.channels > best.channels) ? claim : best),
    undefined,
  );
  const one = claimed.find((claim) => claim.channels === 1);
  return {
    uptoSettle: summarize(await gasOf(rpcUrl, uptoTransactions)),
    deposit: summarize(await gasOf(rpcUrl, depositTransactions)),
    ...(many ? { claimMany: many } : {}),
    ...(one ? { claimOne: one } : {}),
    settle: summarize(await gasOf(rpcUrl, settles)),
  };
}

/**
 * Gas per paid request of a channel used for `requests` requests: one deposit, one claim and one
 * settle per channel over those requests; `sharedBy` channels share the claim transaction and the
 * settle (1: the channel claimed and settled alone).
 */
export function channelGasPerRequest(
  {
    deposit,
    claimGas,
    claimChannels,
    settle,
  }: { deposit: number; claimGas: number; claimChannels: number; settle: number },
  requests: number,
): number {
  return (deposit + claimGas / claimChannels + settle / claimChannels) / requests;
}

/** The seller's gas cost in USD. */
export function gasUsd(
  gas: number,
  { gasPriceGwei, nativeUsd }: { gasPriceGwei: number; nativeUsd: number },
) {
  return gas * gasPriceGwei * 1e-9 * nativeUsd;
}

import type { Address, Hex, PublicClient } from "viem";
import { batchSettlementAbi } from "../../chain/index.js";

/** A channel's state on chain. */
export type OnchainChannelState = {
  balanceAtomic: bigint;
  totalClaimedAtomic: bigint;
  /** Unix seconds a withdrawal was initiated; 0 when none. */
  withdrawRequestedAt: number;
  refundNonce: bigint;
};

/** Reads a channel's balance, claims, pending withdrawal and refund nonce from the settlement contract. */
export async function readChannelState(
  chain: PublicClient,
  settlement: Address,
  channelId: Hex,
): Promise<OnchainChannelState> {
  const abi = batchSettlementAbi;
  const args = [channelId] as const;
  const [[balance, totalClaimed], [, initiatedAt], refundNonce] = await Promise.all([
    chain.readContract({ address: settlement, abi, functionName: "channels", args }),
    chain.readContract({ address: settlement, abi, functionName: "pendingWithdrawals", args }),
    chain.readContract({ address: settlement, abi, functionName: "refundNonce", args }),
  ]);
  return {
    balanceAtomic: balance,
    totalClaimedAtomic: totalClaimed,
    withdrawRequestedAt: Number(initiatedAt),
    refundNonce,
  };
}

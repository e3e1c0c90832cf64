import { BATCH_SETTLEMENT_ADDRESS } from "@x402/evm";
import type { Hex, PublicClient } from "viem";
import { batchSettlementAbi } from "../chain/index.js";

/** A channel as the batch-settlement contract holds it. */
export type ChannelOnChain = {
  balanceAtomic: bigint;
  totalClaimedAtomic: bigint;
  /** A withdrawal the payer started, and when it may be finalized. */
  pendingWithdrawal: { amountAtomic: bigint; finalizableAt: Date } | undefined;
};

/** Reads a channel's escrow, claims and pending withdrawal from the contract. */
export async function readChannelOnChain(
  client: Pick<PublicClient, "readContract">,
  channelId: string,
  withdrawDelaySeconds: number,
): Promise<ChannelOnChain> {
  const id = channelId as Hex;
  const [[balanceAtomic, totalClaimedAtomic], [pendingAmount, initiatedAt]] = await Promise.all([
    client.readContract({
      address: BATCH_SETTLEMENT_ADDRESS,
      abi: batchSettlementAbi,
      functionName: "channels",
      args: [id],
    }),
    client.readContract({
      address: BATCH_SETTLEMENT_ADDRESS,
      abi: batchSettlementAbi,
      functionName: "pendingWithdrawals",
      args: [id],
    }),
  ]);
  return {
    balanceAtomic,
    totalClaimedAtomic,
    pendingWithdrawal:
      initiatedAt === 0
        ? undefined
        : {
            amountAtomic: pendingAmount,
            finalizableAt: new Date((initiatedAt + withdrawDelaySeconds) * 1000),
          },
  };
}

import { BATCH_SETTLEMENT_ADDRESS, BATCH_SETTLEMENT_DOMAIN, claimBatchTypes, refundTypes } from "@x402/evm";
import { computeChannelId } from "@x402/evm/batch-settlement/client";
import type { Hex, LocalAccount } from "viem";
import type { ChannelConfigRecord } from "../../ledger/index.js";

/** One entry of a claim: the voucher to redeem and how much of it is claimed in total. */
export type ChannelClaim = {
  voucher: { channel: ChannelConfigRecord; maxClaimableAmount: string };
  signature: Hex;
  totalClaimed: string;
};

/** The EIP-712 domain of the batch-settlement contract on one chain. */
export function settlementDomain(chainId: number) {
  return { ...BATCH_SETTLEMENT_DOMAIN, chainId, verifyingContract: BATCH_SETTLEMENT_ADDRESS } as const;
}

/** The channel id a config hashes to on `network`, lower case. */
export function channelIdOf(config: ChannelConfigRecord, network: string): `0x${string}` {
  return computeChannelId(config, network).toLowerCase() as `0x${string}`;
}

/** The receiver-authorizer's `ClaimBatch` signature over claims, for `claimWithSignature`. */
export function signClaimBatch(
  authorizer: LocalAccount,
  claims: readonly ChannelClaim[],
  network: string,
  chainId: number,
): Promise<Hex> {
  return authorizer.signTypedData({
    domain: settlementDomain(chainId),
    types: claimBatchTypes,
    primaryType: "ClaimBatch",
    message: {
      claims: claims.map((claim) => ({
        channelId: channelIdOf(claim.voucher.channel, network),
        maxClaimableAmount: BigInt(claim.voucher.maxClaimableAmount),
        totalClaimed: BigInt(claim.totalClaimed),
      })),
    },
  });
}

/** The receiver-authorizer's `Refund(channelId, nonce, amount)` signature, for `refundWithSignature`. */
export function signRefund(
  authorizer: LocalAccount,
  channelId: Hex,
  nonce: bigint,
  amountAtomic: bigint,
  chainId: number,
): Promise<Hex> {
  return authorizer.signTypedData({
    domain: settlementDomain(chainId),
    types: refundTypes,
    primaryType: "Refund",
    message: { channelId, nonce, amount: amountAtomic },
  });
}

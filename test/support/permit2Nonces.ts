import { PERMIT2_ADDRESS } from "@x402/evm";
import type { Account, Chain, Transport, WalletClient } from "viem";

/** Permit2's `invalidateUnorderedNonces`: a payer spends one of its own nonces without a transfer. */
const invalidateUnorderedNoncesAbi = [
  {
    type: "function",
    name: "invalidateUnorderedNonces",
    stateMutability: "nonpayable",
    inputs: [
      { name: "wordPos", type: "uint256" },
      { name: "mask", type: "uint256" },
    ],
    outputs: [],
  },
] as const;

/** The payer (the wallet's account) spends its Permit2 `nonce` itself; resolves to the transaction. */
export function spendPermit2Nonce(
  wallet: WalletClient<Transport, Chain | undefined, Account>,
  nonce: bigint,
): Promise<`0x${string}`> {
  return wallet.writeContract({
    chain: wallet.chain ?? null,
    address: PERMIT2_ADDRESS,
    abi: invalidateUnorderedNoncesAbi,
    functionName: "invalidateUnorderedNonces",
    args: [nonce >> 8n, 1n << (nonce & 255n)],
  });
}

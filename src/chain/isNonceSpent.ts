import { PERMIT2_ADDRESS } from "@x402/evm";
import type { Address, Hex, PublicClient } from "viem";

const permit2NonceBitmapAbi = [
  {
    type: "function",
    name: "nonceBitmap",
    stateMutability: "view",
    inputs: [
      { name: "owner", type: "address" },
      { name: "wordPos", type: "uint256" },
    ],
    outputs: [{ name: "", type: "uint256" }],
  },
] as const;

const authorizationStateAbi = [
  {
    type: "function",
    name: "authorizationState",
    stateMutability: "view",
    inputs: [
      { name: "authorizer", type: "address" },
      { name: "nonce", type: "bytes32" },
    ],
    outputs: [{ name: "", type: "bool" }],
  },
] as const;

/** A one-time authorization nonce as the chain keeps it: Permit2's unordered nonce, or a token's EIP-3009 nonce. */
export type OnChainNonce =
  | { kind: "permit2"; owner: Address; nonce: bigint }
  | { kind: "eip3009"; owner: Address; asset: Address; nonce: Hex };

/**
 * True when the nonce is used on chain: Permit2's `nonceBitmap` (word = nonce >> 8, bit = nonce & 255),
 * or the token's EIP-3009 `authorizationState`.
 * @see https://eips.ethereum.org/EIPS/eip-3009
 */
export async function isNonceSpent(client: PublicClient, spent: OnChainNonce): Promise<boolean> {
  if (spent.kind === "eip3009") {
    return client.readContract({
      address: spent.asset,
      abi: authorizationStateAbi,
      functionName: "authorizationState",
      args: [spent.owner, spent.nonce],
    });
  }
  const word = await client.readContract({
    address: PERMIT2_ADDRESS,
    abi: permit2NonceBitmapAbi,
    functionName: "nonceBitmap",
    args: [spent.owner, spent.nonce >> 8n],
  });
  return ((word >> (spent.nonce & 255n)) & 1n) === 1n;
}

import { PERMIT2_ADDRESS } from "@x402/evm";
import { type Address, createPublicClient, type Hex, http, type PublicClient } from "viem";

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

const eip3009StateAbi = [
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

export type AuthorizationOnChain = {
  payer: Address;
  asset: Address;
  /** Decimal Permit2 nonce, or a 0x bytes32 EIP-3009 nonce. */
  nonce: string;
};

/** Reads whether an authorization's nonce has been spent, on one chain. */
export type AuthorizationChecker = {
  chainId(): Promise<number>;
  isUsed(authorization: AuthorizationOnChain): Promise<boolean>;
};

/**
 * Checks authorizations on chain: Permit2's unordered nonce bitmap (`upto`, `exact` via Permit2)
 * or the token's EIP-3009 `authorizationState`.
 * @see https://eips.ethereum.org/EIPS/eip-3009
 */
export function createAuthorizationChecker(rpcUrl: string, client?: PublicClient): AuthorizationChecker {
  const publicClient = client ?? createPublicClient({ transport: http(rpcUrl, { retryCount: 1 }) });
  let chainId: Promise<number> | undefined;
  return {
    chainId() {
      chainId ??= publicClient.getChainId();
      return chainId;
    },
    async isUsed({ payer, asset, nonce }) {
      if (nonce.startsWith("0x")) {
        return publicClient.readContract({
          address: asset,
          abi: eip3009StateAbi,
          functionName: "authorizationState",
          args: [payer, nonce as Hex],
        });
      }
      const value = BigInt(nonce);
      const bitmap = await publicClient.readContract({
        address: PERMIT2_ADDRESS,
        abi: permit2NonceBitmapAbi,
        functionName: "nonceBitmap",
        args: [payer, value >> 8n],
      });
      return ((bitmap >> (value & 0xffn)) & 1n) === 1n;
    },
  };
}

import { type Address, createPublicClient, type Hex, http, type PublicClient } from "viem";
import { isNonceSpent } from "../chain/index.js";

export type AuthorizationOnChain = {
  payer: Address;
  asset: Address;
  /** Decimal Permit2 nonce, or a 0x bytes32 EIP-3009 nonce. */
  nonce: string;
};

/** Reads whether an authorization's nonce has been spent, on one chain. */
export type AuthorizationChecker = {
  chainId(): Promise<number>;
  /** The chain's clock: its latest block's time (unix s), which decides whether a deadline has passed. */
  chainSeconds(): Promise<number>;
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
    async chainSeconds() {
      return Number((await publicClient.getBlock()).timestamp);
    },
    isUsed({ payer, asset, nonce }) {
      return isNonceSpent(
        publicClient,
        nonce.startsWith("0x")
          ? { kind: "eip3009", owner: payer, asset, nonce: nonce as Hex }
          : { kind: "permit2", owner: payer, nonce: BigInt(nonce) },
      );
    },
  };
}

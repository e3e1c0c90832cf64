import { PERMIT2_ADDRESS } from "@x402/evm";
import { erc20Abi, type PublicClient } from "viem";
import { eip2612NoncesAbi } from "../chain/index.js";
import { createChainClock } from "./chainClock.js";

/** What billing reads from the chain before it serves a payment (see `CreateBillingParameters`). */
export type ChainReaders = {
  readPayerFunds: (payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>;
  readPermit2Allowance: (payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>;
  readPermitNonce: (payer: `0x${string}`, asset: `0x${string}`) => Promise<bigint>;
  readChainSeconds: () => Promise<number>;
};

/** The readers billing needs, on `chain`: balances, Permit2 allowances, EIP-2612 nonces, block time. */
export function chainReadersOf(chain: PublicClient): ChainReaders {
  return {
    readPayerFunds: (payer, token) =>
      chain.readContract({ address: token, abi: erc20Abi, functionName: "balanceOf", args: [payer] }),
    readPermit2Allowance: (payer, token) =>
      chain.readContract({
        address: token,
        abi: erc20Abi,
        functionName: "allowance",
        args: [payer, PERMIT2_ADDRESS],
      }),
    readPermitNonce: (payer, token) =>
      chain.readContract({ address: token, abi: eip2612NoncesAbi, functionName: "nonces", args: [payer] }),
    readChainSeconds: createChainClock(async () => Number((await chain.getBlock()).timestamp)),
  };
}

/**
 * The chain client of an in-process Tollgate facilitator (`createFacilitator`) settling on `network`,
 * or undefined for any other facilitator (a remote one has none here).
 */
export function facilitatorChainOf(facilitator: object, network: string): PublicClient | undefined {
  const own = facilitator as { network?: unknown; signer?: { publicClient?: unknown } };
  if (own.network !== network) return undefined;
  const client = own.signer?.publicClient as PublicClient | undefined;
  return typeof client?.readContract === "function" && typeof client.getBlock === "function"
    ? client
    : undefined;
}

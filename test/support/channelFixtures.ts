import { BATCH_SETTLEMENT_ADDRESS } from "@x402/evm";
import type { Address } from "viem";
import type { GatewayConfigInput } from "../../src/gateway/index.js";

/** Where the devnet places the batch-settlement contract. */
export const BATCH_SETTLEMENT_ADDRESS_FOR_TESTS = BATCH_SETTLEMENT_ADDRESS as Address;

/**
 * A test gateway config with payment channels: claims and settles only when a test asks (long
 * intervals), the shortest withdraw delay the contract allows, and a deposit of $1.
 */
export function channelTestConfig(input: GatewayConfigInput): GatewayConfigInput {
  return {
    ...input,
    channels: {
      claimIntervalSeconds: 300,
      settleIntervalSeconds: 3_600,
      minClaimAtomic: 0,
      withdrawDelaySeconds: 900,
      minDeposit: 1_000_000,
    },
  };
}

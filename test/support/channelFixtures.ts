import { BATCH_SETTLEMENT_ADDRESS } from "@x402/evm";
import { type Address, createPublicClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { type Logger, silentLogger } from "../../src/errors/index.js";
import { createChannelSettlement } from "../../src/gateway/channels/index.js";
import type { GatewayConfigInput } from "../../src/gateway/index.js";
import type { GatewayHarness } from "./gatewayHarness.js";

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

/**
 * A claim-and-settle loop over a test gateway's channels that runs only when a test asks (hour-long
 * intervals), signing claims with the devnet's facilitator key (the gateway's receiver-authorizer).
 */
export function testChannelSettlement(
  h: GatewayHarness,
  { minClaimAtomic, logger = silentLogger }: { minClaimAtomic: bigint; logger?: Logger },
) {
  return createChannelSettlement({
    channels: h.gateway.ledger.channels,
    payments: h.gateway.ledger.payments,
    facilitator: h.gateway.facilitator,
    chain: createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) }) as never,
    settlement: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
    network: h.devnet.network,
    chainId: h.devnet.chainId,
    receiver: h.devnet.accounts.payTo.address,
    token: h.devnet.contracts.usdc,
    receiverAuthorizer: privateKeyToAccount(h.devnet.accounts.facilitator.privateKey),
    claimIntervalMs: 3_600_000,
    settleIntervalMs: 3_600_000,
    minClaimAtomic,
    withdrawDelaySeconds: 900,
    logger,
  });
}

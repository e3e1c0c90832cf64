import assert from "node:assert/strict";
import { x402Client } from "@x402/core/client";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from "@x402/core/http";
import type { PaymentRequirements } from "@x402/core/types";
import { BATCH_SETTLEMENT_ADDRESS, type ClientEvmSigner, toClientEvmSigner } from "@x402/evm";
import {
  type BatchSettlementDepositStrategy,
  BatchSettlementEvmScheme,
  computeChannelId,
  signVoucher,
} from "@x402/evm/batch-settlement/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { type Address, createPublicClient, type Hex, http, parseAbi } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { createPayingFetch } from "../../src/buyer/index.js";
import { type Logger, silentLogger } from "../../src/errors/index.js";
import { createChannelSettlement } from "../../src/gateway/channels/index.js";
import type { FacilitatorLike, GatewayConfigInput } from "../../src/gateway/index.js";
import type { GatewayHarness } from "./gatewayHarness.js";
import { mockModelId } from "./mockBackend.js";

/** Where the devnet places the batch-settlement contract. */
export const BATCH_SETTLEMENT_ADDRESS_FOR_TESTS = BATCH_SETTLEMENT_ADDRESS as Address;

/** The settlement contract's `deposit`, for a payer depositing straight on chain through a collector. */
export const depositAbi = parseAbi([
  "function deposit((address payer, address payerAuthorizer, address receiver, address receiverAuthorizer, address token, uint40 withdrawDelay, bytes32 salt) config, uint128 amount, address collector, bytes collectorData)",
]);

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
  {
    minClaimAtomic,
    logger = silentLogger,
    facilitator = h.gateway.facilitator,
    receiverAuthorizerKey = h.devnet.accounts.facilitator.privateKey,
  }: { minClaimAtomic: bigint; logger?: Logger; facilitator?: FacilitatorLike; receiverAuthorizerKey?: Hex },
) {
  return createChannelSettlement({
    channels: h.gateway.ledger.channels,
    payments: h.gateway.ledger.payments,
    facilitator,
    chain: createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) }) as never,
    settlement: BATCH_SETTLEMENT_ADDRESS_FOR_TESTS,
    network: h.devnet.network,
    chainId: h.devnet.chainId,
    receiver: h.devnet.accounts.payTo.address,
    token: h.devnet.contracts.usdc,
    receiverAuthorizer: privateKeyToAccount(receiverAuthorizerKey),
    claimIntervalMs: 3_600_000,
    settleIntervalMs: 3_600_000,
    minClaimAtomic,
    withdrawDelaySeconds: 900,
    logger,
  });
}

/**
 * A buyer whose channel on the test gateway is open (one paid request through the official client),
 * and payment headers for its vouchers, whose parts a hostile test may replace.
 */
export async function openTestChannel(
  h: GatewayHarness,
  {
    body,
    depositStrategy,
    buyer: given,
    salt,
  }: {
    body: string;
    depositStrategy?: BatchSettlementDepositStrategy;
    /** The payer (default a new buyer holding $100); with `salt`, another channel of the same payer. */
    buyer?: { address: Address; privateKey: Hex };
    salt?: Hex;
  },
) {
  const url = `${h.gateway.url}/v1/chat/completions`;
  const buyer = given ?? (await h.devnet.createBuyer(100_000_000n));
  const account = privateKeyToAccount(buyer.privateKey);
  const publicClient = createPublicClient({ chain: anvil, transport: http(h.devnet.rpcUrl) });
  const signer = toClientEvmSigner(account, publicClient);
  const scheme = new BatchSettlementEvmScheme(
    signer,
    depositStrategy || salt
      ? { ...(depositStrategy ? { depositStrategy } : {}), ...(salt ? { salt } : {}) }
      : undefined,
  );
  const payingFetch = wrapFetchWithPayment(
    fetch,
    x402Client.fromConfig({ schemes: [{ network: h.devnet.network, client: scheme }], spendControls: false }),
  );
  const request = { method: "POST", headers: { "content-type": "application/json" }, body };
  const opened = await payingFetch(url, request);
  assert.equal(opened.status, 200, await opened.clone().text());
  const required = decodePaymentRequiredHeader((await fetch(url, request)).headers.get("payment-required")!);
  const offer = required.accepts.find(
    (accept) => accept.scheme === "batch-settlement",
  ) as PaymentRequirements;
  const config = scheme.buildChannelConfig(offer);
  const channelId = computeChannelId(config, h.devnet.network);
  const charged = async () => (await h.gateway.ledger.channels.get(channelId))!.chargedAtomic;
  /** The payment header of a voucher for `cumulativeAtomic`, signed by `by` (default the payer), its parts replaceable. */
  const voucherHeader = async (
    cumulativeAtomic: bigint,
    change: {
      by?: ClientEvmSigner;
      config?: Record<string, unknown>;
      voucher?: Record<string, unknown>;
    } = {},
  ) => {
    const voucher = await signVoucher(
      change.by ?? signer,
      channelId,
      cumulativeAtomic.toString(),
      h.devnet.network,
    );
    return encodePaymentSignatureHeader({
      x402Version: 2,
      resource: required.resource,
      accepted: offer,
      payload: {
        type: "voucher",
        channelConfig: { ...config, ...change.config },
        voucher: { ...voucher, ...change.voucher },
      },
    } as never);
  };
  return {
    offer,
    config,
    buyer,
    payer: buyer.address,
    channelId,
    charged,
    voucherHeader,
    payingFetch,
    requestMax: BigInt(offer.amount),
  };
}

/**
 * A new buyer (funded with $100) paying chats through Tollgate's SDK, by channel where the gateway offers
 * one: `chat` sends one to a gateway (the harness's, or another on the same devnet) and returns its charge.
 */
export async function channelChatBuyer(h: GatewayHarness) {
  const buyer = await h.devnet.createBuyer(100_000_000n);
  const pay = createPayingFetch({
    privateKey: buyer.privateKey,
    rpcUrl: h.devnet.rpcUrl,
    dataDir: "memory://",
  });
  return {
    buyer,
    async chat(gatewayUrl: string, tag: string): Promise<bigint> {
      const response = await pay(`${gatewayUrl}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: mockModelId,
          messages: [{ role: "user", content: `hello ${tag}` }],
          max_tokens: 64,
        }),
      });
      assert.equal(response.status, 200, await response.clone().text());
      await response.text();
      return BigInt(decodePaymentResponseHeader(response.headers.get("payment-response")!).amount ?? "0");
    },
    close: () => pay.close(),
  };
}

// The official @x402/evm batch-settlement client and facilitator, unchanged, against our
// x402 batch-settlement contract and deposit collectors on a real anvil.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme as BatchSettlementClient } from "@x402/evm/batch-settlement/client";
import { BatchSettlementEvmScheme as BatchSettlementFacilitator } from "@x402/evm/batch-settlement/facilitator";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { createFacilitatorSigner } from "../chain/index.js";
import {
  type ChannelConfig,
  type ChannelDevnet,
  freshAccount,
  startChannelDevnet,
} from "./batchSettlementTesting.js";

let net: ChannelDevnet;
let facilitator: BatchSettlementFacilitator;
const authorizer = freshAccount();

const resource = {
  url: "http://127.0.0.1/v1/chat/completions",
  description: "chat",
  mimeType: "application/json",
};

before(async () => {
  net = await startChannelDevnet();
  const signer = createFacilitatorSigner({
    rpcUrl: net.devnet.rpcUrl,
    privateKey: net.devnet.accounts.facilitator.privateKey,
    chainId: net.devnet.chainId,
    pollingIntervalMs: 20,
  });
  facilitator = new BatchSettlementFacilitator(signer, privateKeyToAccount(authorizer.privateKey));
});

after(async () => {
  await net?.devnet.stop();
});

const requirementsFor = (assetTransferMethod?: "permit2"): PaymentRequirements => ({
  scheme: "batch-settlement",
  network: net.devnet.network,
  amount: "1000",
  asset: net.devnet.contracts.usdc,
  payTo: net.devnet.accounts.payTo.address,
  maxTimeoutSeconds: 3600,
  extra: {
    ...facilitator.getExtra(net.devnet.network),
    withdrawDelay: 900,
    name: "USD Coin",
    version: "2",
    ...(assetTransferMethod ? { assetTransferMethod } : {}),
  },
});

/** An official client for a fresh funded buyer (reads the chain through the buyer's public client). */
async function officialClient() {
  const buyer = await net.devnet.createBuyer(1_000_000_000n);
  const signer = toClientEvmSigner(privateKeyToAccount(buyer.privateKey), net.publicClient);
  // A second instance starts cold and recovers the channel from our contract's state.
  return {
    buyer,
    client: new BatchSettlementClient(signer),
    coldClient: () => new BatchSettlementClient(signer),
  };
}

async function pay(
  client: BatchSettlementClient,
  requirements: PaymentRequirements,
): Promise<PaymentPayload> {
  const { payload } = await client.createPaymentPayload(2, requirements);
  return { x402Version: 2, resource, accepted: requirements, payload };
}

type ChannelPayload = {
  type: string;
  channelConfig: ChannelConfig;
  voucher: { channelId: Hex; maxClaimableAmount: string; signature: Hex };
  deposit?: { amount: string };
};
const channelPayloadOf = (payment: PaymentPayload) => payment.payload as unknown as ChannelPayload;

describe("official @x402/evm batch-settlement against our contract", () => {
  for (const method of [undefined, "permit2"] as const) {
    test(`deposit (${method ?? "eip3009"}): client payload verified and settled by the facilitator`, async () => {
      const { buyer, client } = await officialClient();
      const requirements = requirementsFor(method);
      const payment = await pay(client, requirements);
      const payload = channelPayloadOf(payment);
      assert.equal(payload.type, "deposit");
      const depositAmount = BigInt(payload.deposit?.amount ?? "0");
      assert.ok(depositAmount >= 1000n);

      const verified = await facilitator.verify(payment, requirements);
      assert.equal(verified.isValid, true, `${verified.invalidReason} ${verified.invalidMessage ?? ""}`);
      const settled = await facilitator.settle(payment, requirements);
      assert.equal(settled.success, true, `${settled.errorReason} ${settled.errorMessage ?? ""}`);
      assert.match(settled.transaction, /^0x[0-9a-f]{64}$/);
      assert.deepEqual(await net.channelOf(payload.voucher.channelId), {
        balance: depositAmount,
        totalClaimed: 0n,
      });
      assert.equal(await net.devnet.usdcBalance(buyer.address), 1_000_000_000n - depositAmount);
    });
  }

  test("vouchers verify, a claim and a settle go through, a refund returns the rest", async () => {
    const { buyer, client, coldClient } = await officialClient();
    const requirements = requirementsFor();
    const deposit = await pay(client, requirements);
    assert.equal((await facilitator.settle(deposit, requirements)).success, true);
    const { channelConfig: config, voucher: first, deposit: funds } = channelPayloadOf(deposit);
    const balance = BigInt(funds?.amount ?? "0");

    // A client that reads the channel funded on chain signs a voucher-only payload.
    const voucherPayment = await pay(coldClient(), requirements);
    const voucherPayload = channelPayloadOf(voucherPayment);
    assert.equal(voucherPayload.type, "voucher");
    const verified = await facilitator.verify(voucherPayment, requirements);
    assert.equal(verified.isValid, true, String(verified.invalidReason));
    assert.equal((verified.extra as { balance: string }).balance, balance.toString());

    // A voucher above the channel balance is refused by the facilitator.
    const greedy = {
      type: "voucher",
      channelConfig: config,
      voucher: {
        channelId: first.channelId,
        maxClaimableAmount: (balance + 1n).toString(),
        signature: await net.signVoucher(buyer, first.channelId, balance + 1n),
      },
    };
    const refused = await facilitator.verify(
      { x402Version: 2, resource, accepted: requirements, payload: greedy },
      requirements,
    );
    assert.equal(refused.isValid, false);
    assert.equal(refused.invalidReason, "invalid_batch_settlement_evm_cumulative_exceeds_balance");

    // The server charged 700 of the 1,000 the voucher allows: it claims 700.
    const claimPayload = {
      type: "claim",
      claims: [
        {
          voucher: { channel: config, maxClaimableAmount: voucherPayload.voucher.maxClaimableAmount },
          signature: voucherPayload.voucher.signature,
          totalClaimed: "700",
        },
      ],
    };
    const claimed = await facilitator.settle(
      { x402Version: 2, resource, accepted: requirements, payload: claimPayload },
      requirements,
    );
    assert.equal(claimed.success, true, `${claimed.errorReason} ${claimed.errorMessage ?? ""}`);
    assert.deepEqual(await net.channelOf(first.channelId), { balance, totalClaimed: 700n });

    const payTo = net.devnet.accounts.payTo.address;
    const payToBefore = await net.devnet.usdcBalance(payTo);
    const settlePayload = { type: "settle", receiver: payTo, token: net.devnet.contracts.usdc };
    const settled = await facilitator.settle(
      { x402Version: 2, resource, accepted: requirements, payload: settlePayload },
      requirements,
    );
    assert.equal(settled.success, true, `${settled.errorReason} ${settled.errorMessage ?? ""}`);
    assert.equal(settled.amount, "700");
    assert.equal(await net.devnet.usdcBalance(payTo), payToBefore + 700n);

    // Cooperative refund of the rest, signed by the facilitator's authorizer (zero-charge voucher at 700).
    const refundPayload = {
      type: "refund",
      channelConfig: config,
      voucher: {
        channelId: first.channelId,
        maxClaimableAmount: "700",
        signature: await net.signVoucher(buyer, first.channelId, 700n),
      },
      amount: (balance - 700n).toString(),
      refundNonce: "0",
      claims: [],
    };
    const buyerBefore = await net.devnet.usdcBalance(buyer.address);
    const refunded = await facilitator.settle(
      { x402Version: 2, resource, accepted: requirements, payload: refundPayload },
      requirements,
    );
    assert.equal(refunded.success, true, `${refunded.errorReason} ${refunded.errorMessage ?? ""}`);
    assert.equal(await net.devnet.usdcBalance(buyer.address), buyerBefore + balance - 700n);
    assert.deepEqual(await net.channelOf(first.channelId), { balance: 700n, totalClaimed: 700n });
    assert.equal(await net.read("refundNonce", [first.channelId]), 1n);
  });

  test("a refund whose claim rides along is one multicall: claim then refund", async () => {
    const { buyer, client } = await officialClient();
    const requirements = requirementsFor();
    const deposit = await pay(client, requirements);
    assert.equal((await facilitator.settle(deposit, requirements)).success, true);
    const { channelConfig: config, voucher, deposit: funds } = channelPayloadOf(deposit);
    const balance = BigInt(funds?.amount ?? "0");
    const buyerBefore = await net.devnet.usdcBalance(buyer.address);
    const refundPayload = {
      type: "refund",
      channelConfig: config,
      voucher,
      amount: balance.toString(),
      refundNonce: "0",
      claims: [
        {
          voucher: { channel: config, maxClaimableAmount: voucher.maxClaimableAmount },
          signature: voucher.signature,
          totalClaimed: "1000",
        },
      ],
    };
    const refunded = await facilitator.settle(
      { x402Version: 2, resource, accepted: requirements, payload: refundPayload },
      requirements,
    );
    assert.equal(refunded.success, true, `${refunded.errorReason} ${refunded.errorMessage ?? ""}`);
    assert.deepEqual(await net.channelOf(voucher.channelId), { balance: 1000n, totalClaimed: 1000n });
    assert.equal(await net.devnet.usdcBalance(buyer.address), buyerBefore + balance - 1000n);
  });
});

// `tollgate facilitator` serving batch-settlement over HTTP, driven by the official x402 pieces:
// @x402/core's HTTPFacilitatorClient and @x402/evm's batch-settlement client, on the devnet.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { HTTPFacilitatorClient } from "@x402/core/http";
import type { PaymentPayload, PaymentRequirements } from "@x402/core/types";
import { toClientEvmSigner } from "@x402/evm";
import { BatchSettlementEvmScheme as BatchSettlementClient } from "@x402/evm/batch-settlement/client";
import type { Hex } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import {
  type ChannelConfig,
  type ChannelDevnet,
  freshAccount,
  startChannelDevnet,
} from "../src/devnet/batchSettlementTesting.js";
import {
  createFacilitator,
  createFacilitatorClient,
  serveFacilitator,
  settlementKeyOf,
} from "../src/facilitator/index.js";
import { facilitatorAuth, TEST_FACILITATOR_TOKEN } from "./support/facilitatorToken.js";

let net: ChannelDevnet;
let server: Awaited<ReturnType<typeof serveFacilitator>>;
let client: HTTPFacilitatorClient;
// The server's own receiver-authorizer: the facilitator advertises none and signs no claims.
const serverAuthorizer = freshAccount();

const resource = {
  url: "http://127.0.0.1/v1/chat/completions",
  description: "chat",
  mimeType: "application/json",
};

before(async () => {
  net = await startChannelDevnet();
  const facilitator = createFacilitator({
    rpcUrl: net.devnet.rpcUrl,
    privateKey: net.devnet.accounts.facilitator.privateKey,
    network: net.devnet.network,
    pollingIntervalMs: 20,
  });
  server = await serveFacilitator({ facilitator, token: TEST_FACILITATOR_TOKEN, port: 0 });
  client = createFacilitatorClient({ url: server.url, token: TEST_FACILITATOR_TOKEN });
});

after(async () => {
  await server?.close();
  await net?.devnet.stop();
});

const requirements = (): PaymentRequirements => ({
  scheme: "batch-settlement",
  network: net.devnet.network,
  amount: "1000",
  asset: net.devnet.contracts.usdc,
  payTo: net.devnet.accounts.payTo.address,
  maxTimeoutSeconds: 3600,
  extra: { receiverAuthorizer: serverAuthorizer.address, withdrawDelay: 900, name: "USD Coin", version: "2" },
});

type ChannelPayload = {
  type: string;
  channelConfig: ChannelConfig;
  voucher: { channelId: Hex; maxClaimableAmount: string; signature: Hex };
  deposit?: { amount: string };
};
const channelPayloadOf = (payment: PaymentPayload) => payment.payload as unknown as ChannelPayload;
const envelope = (payload: Record<string, unknown>): PaymentPayload => ({
  x402Version: 2,
  resource,
  accepted: requirements(),
  payload,
});

/** A funded buyer's official client, and a cold one that recovers the channel from the chain. */
async function officialClient() {
  const buyer = await net.devnet.createBuyer(1_000_000_000n);
  const signer = toClientEvmSigner(privateKeyToAccount(buyer.privateKey), net.publicClient);
  return {
    buyer,
    client: new BatchSettlementClient(signer),
    coldClient: () => new BatchSettlementClient(signer),
  };
}

async function pay(buyerClient: BatchSettlementClient): Promise<PaymentPayload> {
  const { payload } = await buyerClient.createPaymentPayload(2, requirements());
  return { x402Version: 2, resource, accepted: requirements(), payload };
}

describe("tollgate facilitator serves batch-settlement over HTTP", () => {
  test("/supported lists batch-settlement on the devnet beside upto and exact, with no receiverAuthorizer", async () => {
    const supported = await client.getSupported();
    const kinds = supported.kinds.filter((kind) => kind.network === net.devnet.network);
    const batch = kinds.find((kind) => kind.scheme === "batch-settlement");
    assert.ok(batch, "batch-settlement is advertised");
    assert.equal(batch.extra?.receiverAuthorizer, undefined);
    const upto = kinds.find((kind) => kind.scheme === "upto");
    assert.equal(
      String(upto?.extra?.facilitatorAddress).toLowerCase(),
      net.devnet.accounts.facilitator.address.toLowerCase(),
      "upto still names the facilitator address the gateway reads",
    );
    assert.ok(kinds.some((kind) => kind.scheme === "exact"));
    assert.ok(supported.extensions?.includes("eip2612GasSponsoring"), "gas sponsoring still declared");
  });

  test("verifies and settles an ERC-3009 deposit from the official client, once", async () => {
    const { buyer, client: buyerClient } = await officialClient();
    const deposit = await pay(buyerClient);
    const payload = channelPayloadOf(deposit);
    assert.equal(payload.type, "deposit");
    assert.equal(settlementKeyOf(deposit), undefined, "no upto/exact settlement key for a channel payload");
    const depositAmount = BigInt(payload.deposit?.amount ?? "0");

    const verified = await client.verify(deposit, requirements());
    assert.equal(verified.isValid, true, `${verified.invalidReason} ${verified.invalidMessage ?? ""}`);
    const settled = await client.settle(deposit, requirements());
    assert.equal(settled.success, true, `${settled.errorReason} ${settled.errorMessage ?? ""}`);
    assert.match(settled.transaction, /^0x[0-9a-f]{64}$/);
    assert.deepEqual(await net.channelOf(payload.voucher.channelId), {
      balance: depositAmount,
      totalClaimed: 0n,
    });
    assert.equal(await net.devnet.usdcBalance(buyer.address), 1_000_000_000n - depositAmount);

    // The same deposit again: the spent authorization is refused, nothing more moves.
    const again = await client.settle(deposit, requirements());
    assert.equal(again.success, false);
    assert.deepEqual(await net.channelOf(payload.voucher.channelId), {
      balance: depositAmount,
      totalClaimed: 0n,
    });
  });

  test("verifies a voucher, settles the server's claim and then its settle: payTo gets the claimed amount; a claim that would move nothing sends nothing", async () => {
    const { client: buyerClient, coldClient } = await officialClient();
    const deposit = await pay(buyerClient);
    assert.equal((await client.settle(deposit, requirements())).success, true);
    const { channelConfig: config, voucher: first, deposit: funds } = channelPayloadOf(deposit);
    const balance = BigInt(funds?.amount ?? "0");

    const voucherPayment = await pay(coldClient());
    const voucher = channelPayloadOf(voucherPayment);
    assert.equal(voucher.type, "voucher");
    const verified = await client.verify(voucherPayment, requirements());
    assert.equal(verified.isValid, true, `${verified.invalidReason} ${verified.invalidMessage ?? ""}`);
    assert.equal((verified.extra as { balance: string }).balance, balance.toString());

    const claims = [
      {
        voucher: { channel: config, maxClaimableAmount: voucher.voucher.maxClaimableAmount },
        signature: voucher.voucher.signature,
        totalClaimed: "700",
      },
    ];
    // Without the server's authorizer signature the facilitator has none of its own to add.
    const unsigned = await client.settle(envelope({ type: "claim", claims }), requirements());
    assert.equal(unsigned.success, false);
    assert.equal(unsigned.errorReason, "invalid_batch_settlement_evm_authorizer_not_configured");

    const claimAuthorizerSignature = await net.signClaimBatch(serverAuthorizer, [
      {
        voucher: { channel: config, maxClaimableAmount: BigInt(voucher.voucher.maxClaimableAmount) },
        signature: voucher.voucher.signature,
        totalClaimed: 700n,
      },
    ]);
    const claimed = await client.settle(
      envelope({ type: "claim", claims, claimAuthorizerSignature }),
      requirements(),
    );
    assert.equal(claimed.success, true, `${claimed.errorReason} ${claimed.errorMessage ?? ""}`);
    assert.deepEqual(await net.channelOf(first.channelId), { balance, totalClaimed: 700n });

    // The same claim again, and one of channels that do not exist (claims of 0, signed by any key):
    // the contract would skip every row, so each would land, move nothing, and cost the facilitator gas.
    const facilitatorAddress = net.devnet.accounts.facilitator.address;
    const junk = Array.from({ length: 20 }, () => ({
      voucher: {
        channel: { ...config, payer: freshAccount().address, salt: `0x${"00".repeat(32)}` as Hex },
        maxClaimableAmount: 0n,
      },
      signature: `0x${"11".repeat(65)}` as Hex,
      totalClaimed: 0n,
    }));
    for (const [what, payload] of [
      ["the same claim again", envelope({ type: "claim", claims, claimAuthorizerSignature })],
      [
        "claims of 0 on channels that do not exist",
        envelope({
          type: "claim",
          claims: junk.map((row) => ({
            ...row,
            voucher: { ...row.voucher, maxClaimableAmount: "0" },
            totalClaimed: "0",
          })),
          claimAuthorizerSignature: await net.signClaimBatch(serverAuthorizer, junk),
        }),
      ],
    ] as const) {
      const sentBefore = await net.publicClient.getTransactionCount({ address: facilitatorAddress });
      const again = await client.settle(payload, requirements());
      assert.equal(again.success, false, what);
      assert.equal(again.errorReason, "tollgate_claim_moves_nothing", what);
      assert.equal(again.transaction, "", what);
      assert.equal(
        await net.publicClient.getTransactionCount({ address: facilitatorAddress }),
        sentBefore,
        `${what}: nothing sent`,
      );
    }
    assert.deepEqual(await net.channelOf(first.channelId), { balance, totalClaimed: 700n });

    const payTo = net.devnet.accounts.payTo.address;
    const payToBefore = await net.devnet.usdcBalance(payTo);
    const settled = await client.settle(
      envelope({ type: "settle", receiver: payTo, token: net.devnet.contracts.usdc }),
      requirements(),
    );
    assert.equal(settled.success, true, `${settled.errorReason} ${settled.errorMessage ?? ""}`);
    assert.equal(settled.amount, "700");
    assert.equal(await net.devnet.usdcBalance(payTo), payToBefore + 700n);
  });
});

describe("batch-settlement HTTP edges", () => {
  const post = (url: string, path: string, body: unknown) =>
    fetch(`${url}${path}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...facilitatorAuth },
      body: JSON.stringify(body),
    });

  test("a settle while the chain RPC is unreachable answers 503 with Retry-After", async () => {
    const dead = createFacilitator({
      rpcUrl: "http://127.0.0.1:9",
      privateKey: net.devnet.accounts.facilitator.privateKey,
      network: net.devnet.network,
      rpcTimeoutMs: 1_000,
    });
    const deadServer = await serveFacilitator({ facilitator: dead, token: TEST_FACILITATOR_TOKEN, port: 0 });
    try {
      const payTo = net.devnet.accounts.payTo.address;
      const response = await post(deadServer.url, "/settle", {
        x402Version: 2,
        paymentPayload: envelope({ type: "settle", receiver: payTo, token: net.devnet.contracts.usdc }),
        paymentRequirements: requirements(),
      });
      assert.equal(response.status, 503);
      assert.ok(response.headers.get("retry-after"));
    } finally {
      await deadServer.close();
    }
  });

  test("a batch-settlement body without requirements answers 400 naming the field", async () => {
    const response = await post(server.url, "/settle", {
      x402Version: 2,
      paymentPayload: envelope({ type: "settle" }),
    });
    assert.equal(response.status, 400);
    assert.equal(((await response.json()) as { field?: string }).field, "paymentRequirements");
  });

  test("a batch-settlement payload with a field that cannot be what it names answers 400 naming it, before any chain call", async () => {
    const payTo = net.devnet.accounts.payTo.address;
    const usdc = net.devnet.contracts.usdc;
    for (const [field, payload] of [
      ["paymentPayload.payload.receiver", { type: "settle", receiver: "the seller", token: usdc }],
      ["paymentPayload.payload.token", { type: "settle", receiver: payTo, token: 5 }],
      [
        "paymentPayload.payload.claims",
        { type: "claim", claims: "all of them", claimAuthorizerSignature: "0x" },
      ],
      [
        "paymentPayload.payload.claims.0.totalClaimed",
        { type: "claim", claims: [{ totalClaimed: "1e400" }], claimAuthorizerSignature: "0x" },
      ],
    ] as const) {
      for (const path of ["/settle", "/verify"]) {
        const response = await post(server.url, path, {
          x402Version: 2,
          paymentPayload: envelope(payload),
          paymentRequirements: requirements(),
        });
        assert.equal(response.status, 400, `${path} ${field}`);
        const answer = (await response.json()) as { field?: string; message?: string };
        assert.equal(answer.field, field);
        assert.match(answer.message ?? "", /an address is|a whole number|a list of claims/);
      }
    }
  });

  test("an upto-shaped settle routed to batch-settlement is refused, not settled under an upto key", async () => {
    const settled = await client.settle(
      envelope({ authorization: { from: net.devnet.accounts.payTo.address, nonce: "0x01" } }),
      requirements(),
    );
    assert.equal(settled.success, false);
    assert.equal(settled.errorReason, "invalid_batch_settlement_evm_payload_type");
  });
});

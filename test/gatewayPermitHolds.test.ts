import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { x402Client } from "@x402/core/client";
import { UptoEvmScheme } from "@x402/evm/upto/client";
import { wrapFetchWithPayment } from "@x402/fetch";
import { privateKeyToAccount } from "viem/accounts";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { createFacilitator, createFacilitatorClient, serveFacilitator } from "../src/facilitator/index.js";
import { createPaymentRecovery } from "../src/gateway/index.js";
import { createMemoryPayerQuotas } from "../src/ledger/index.js";
import { authorizationKey, decodePaymentRequiredHeader, type PaymentPayload } from "../src/protocol/index.js";
import { TEST_FACILITATOR_TOKEN } from "./support/facilitatorToken.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId, startMockBackend } from "./support/mockBackend.js";
import { finalRow, postJson } from "./support/paidRequests.js";
import { recordingFetch } from "./support/recordingFetch.js";

// A Tollgate gateway on `tollgate facilitator`'s HTTP API (which holds each EIP-2612 permit nonce from
// verify to settle), paid by a fresh wallet (USDC, no Permit2 approval, no gas) with EIP-2612 permits.
const downModel = "down-model";
const chatBody = (model: string) =>
  JSON.stringify({ model, messages: [{ role: "user", content: "Say something" }], max_tokens: 20 });
const permitNonceOf = (payload: PaymentPayload | undefined) =>
  (payload?.extensions?.eip2612GasSponsoring as { info?: { nonce?: string } } | undefined)?.info?.nonce;

describe("a Tollgate gateway on tollgate facilitator, paid with EIP-2612 permits", () => {
  let devnet: Devnet;
  let remote: Awaited<ReturnType<typeof serveFacilitator>>;
  let h: GatewayHarness;
  const quotas = createMemoryPayerQuotas();
  before(async () => {
    devnet = await startDevnet({ buyers: 1 });
    remote = await serveFacilitator({
      facilitator: createFacilitator({
        rpcUrl: devnet.rpcUrl,
        privateKey: devnet.accounts.facilitator.privateKey,
        network: devnet.network,
        pollingIntervalMs: 20,
        payerQuotas: quotas,
      }),
      token: TEST_FACILITATOR_TOKEN,
      port: 0,
    });
    // A model whose backend is down: nothing listens where it points.
    const gone = await startMockBackend();
    await gone.close();
    h = await startGatewayHarness({
      devnet,
      // The tests run their own recovery pass: the gateway's own would race it.
      configure: (input) => ({
        ...input,
        facilitator: { url: remote.url, token: TEST_FACILITATOR_TOKEN },
        recovery: { intervalSeconds: 3_600 },
      }),
      extraModels: () => [
        {
          id: downModel,
          backend: { baseUrl: gone.url },
          inputPrice: "3000000",
          outputPrice: "15000000",
          maxOutputTokens: 256,
        },
      ],
    });
    assert.notEqual(gone.url, h.backend.url);
  });
  after(async () => {
    await h?.close();
    await remote?.close();
    await devnet?.stop();
  });

  test("a payment verified and not served (its backend unreachable) lets go of its permit nonce: the wallet's next request is served and charged once", async () => {
    const wallet = await devnet.createFreshBuyer(10_000_000n);
    const { fetch: recording, payloads } = recordingFetch();
    const pay = wrapFetchWithPayment(
      recording,
      new x402Client()
        .register(
          devnet.network,
          new UptoEvmScheme(privateKeyToAccount(wallet.privateKey), { rpcUrl: devnet.rpcUrl }),
        )
        .setSpendControls(false),
    );
    const ask = (model: string) =>
      pay(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody(model),
      });
    const payToBefore = await devnet.usdcBalance(devnet.accounts.payTo.address);

    // Verified, then dropped: the backend cannot be reached, nothing was generated, nothing is charged.
    const dropped = await ask(downModel);
    const droppedText = await dropped.text();
    assert.equal(dropped.status, 502, droppedText);
    assert.equal(permitNonceOf(payloads.at(-1)), "0");
    const failed = await finalRow(h);
    assert.equal(failed.status, "failed");
    assert.equal(h.backend.inferenceRequests.length, 0);

    // The next request carries a permit on the same nonce (nothing landed): it is served and charged once.
    const next = await ask(mockModelId);
    const nextText = await next.text();
    assert.equal(next.status, 200, nextText);
    assert.equal(permitNonceOf(payloads.at(-1)), "0", "the token's nonce is still 0 on chain");
    const settled = await finalRow(h);
    assert.equal(settled.status, "settled");
    assert.ok((settled.chargeAtomic ?? 0n) > 0n);
    // Who pays what: the wallet pays the one request it was served, once; the dropped one costs it nothing.
    assert.equal(await devnet.usdcBalance(wallet.address), 10_000_000n - (settled.chargeAtomic ?? 0n));
    assert.equal(
      (await devnet.usdcBalance(devnet.accounts.payTo.address)) - payToBefore,
      settled.chargeAtomic,
    );
    // The sponsored approval taken for the dropped payment was given back: one approval, one counted.
    assert.deepEqual(
      (await quotas.uses({ kind: "sponsored_approval", network: devnet.network, payer: wallet.address }))
        .length,
      1,
    );
  });

  test("a payment its gateway was serving when it stopped, failed by recovery, lets go of its permit nonce: the wallet's next payment on it is verified", async () => {
    const offered = await postJson(h, "/v1/chat/completions", chatBody(mockModelId));
    await offered.text();
    const required = decodePaymentRequiredHeader(offered.headers.get("payment-required"));
    assert.ok(required.ok);
    const wallet = await devnet.createFreshBuyer(10_000_000n);
    const client = new x402Client()
      .register(
        devnet.network,
        new UptoEvmScheme(privateKeyToAccount(wallet.privateKey), { rpcUrl: devnet.rpcUrl }),
      )
      .setSpendControls(false);
    const first = (await client.createPaymentPayload(required.paymentRequired)) as PaymentPayload;
    const next = (await client.createPaymentPayload(required.paymentRequired)) as PaymentPayload;
    assert.equal(permitNonceOf(first), "0");
    assert.equal(permitNonceOf(next), "0");
    const facilitator = createFacilitatorClient({
      url: remote.url,
      token: TEST_FACILITATOR_TOKEN,
      relaysApprovals: true,
    });

    // The first was verified and was being served when its gateway stopped: its row is left `serving`.
    assert.equal((await facilitator.verify(first, first.accepted)).isValid, true);
    const claim = await h.ledger.payments.claim({
      ...authorizationKey(first as Parameters<typeof authorizationKey>[0]),
      scheme: "upto",
      model: mockModelId,
      route: "/v1/chat/completions",
      asset: first.accepted.asset,
      payTo: first.accepted.payTo,
      maxAtomic: BigInt(first.accepted.amount),
      paymentPayload: first,
      paymentRequirements: first.accepted,
    });
    assert.ok(claim.claimed);
    await h.ledger.payments.markServing(claim.payment.id);
    assert.equal(
      (await facilitator.verify(next, next.accepted)).invalidReason,
      "tollgate_eip2612_permit_in_flight",
    );

    const recovery = createPaymentRecovery({
      payments: h.ledger.payments,
      facilitator,
      network: devnet.network,
      graceMs: 0,
      settlingGraceMs: 0,
    });
    try {
      await recovery.runOnce();
    } finally {
      await recovery.stop();
    }
    // Usage unknown, nothing charged: and the payer's next payment on the nonce is not refused for it.
    assert.equal((await h.ledger.payments.get(claim.payment.id))?.status, "failed");
    assert.equal(await devnet.usdcBalance(wallet.address), 10_000_000n);
    const verified = await facilitator.verify(next, next.accepted);
    assert.equal(verified.isValid, true, JSON.stringify(verified));
  });
});

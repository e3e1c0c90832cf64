import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { decodePaymentResponseHeader } from "@x402/core/http";
import type { PaymentRequired, PaymentRequirements } from "@x402/core/types";
import { decodePaymentRequiredHeader, encodePaymentSignatureHeader } from "../src/protocol/index.js";
import {
  expectedCharge,
  type GatewayHarness,
  officialBuyer,
  officialPayingFetch,
  startGatewayHarness,
  testPrices,
} from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness({
    extraModels: (baseUrl) => [
      {
        id: "mock-completion",
        kind: "completion",
        backend: { baseUrl },
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 64,
      },
      { id: "mock-embedding", kind: "embedding", backend: { baseUrl }, inputPrice: "$0.02" },
      { id: "mock-fixed", backend: { baseUrl }, exactPrice: "$0.01", maxOutputTokens: 32 },
    ],
  });
});
after(async () => {
  await h?.close();
});

const json = { "content-type": "application/json" };

describe("gateway routes", () => {
  test("GET /v1/models lists every model with its prices, limit, network and asset", async () => {
    const response = await fetch(`${h.gateway.url}/v1/models`);
    const { data } = (await response.json()) as {
      data: Array<{ id: string; pricing: Record<string, unknown> }>;
    };
    const chat = data.find((model) => model.id === mockModelId);
    assert.equal(chat?.pricing.inputPerMTokAtomic, testPrices.inputPerMTokAtomic.toString());
    assert.equal(chat?.pricing.maxOutputTokens, 256);
    assert.equal(chat?.pricing.network, h.devnet.network);
    assert.equal(String(chat?.pricing.asset).toLowerCase(), h.devnet.contracts.usdc.toLowerCase());
    assert.deepEqual(data.find((model) => model.id === "mock-fixed")?.pricing.schemes, ["exact"]);
    assert.equal((await (await fetch(`${h.gateway.url}/health`)).json()).ok, true);
  });

  test("GET /v1/models lists the schemes a 402 offers, in the configured order; a request beyond the only one offered is refused 400", async () => {
    const exactFirst = await startGatewayHarness({
      devnet: h.devnet,
      model: { exactPrice: "$0.01" },
      configure: (input) => ({ ...input, schemes: ["exact", "upto"] }),
    });
    const exactOnly = await startGatewayHarness({
      devnet: h.devnet,
      model: { exactPrice: "$0.01" },
      configure: (input) => ({ ...input, schemes: ["exact"] }),
    });
    try {
      for (const [gateway, expected] of [
        [exactFirst, ["exact", "upto"]],
        [exactOnly, ["exact"]],
      ] as const) {
        const listing = (await (await fetch(`${gateway.gateway.url}/v1/models`)).json()) as {
          data: Array<{ id: string; pricing: { schemes: string[] } }>;
        };
        const quote = await fetch(`${gateway.gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: json,
          body: JSON.stringify({ model: mockModelId, messages: [{ role: "user", content: "hi" }] }),
        });
        const required = decodePaymentRequiredHeader(quote.headers.get("payment-required"));
        assert.ok(required.ok);
        const offered = required.paymentRequired.accepts.map((offer) => offer.scheme);
        assert.deepEqual(offered, expected);
        assert.deepEqual(listing.data.find((model) => model.id === mockModelId)?.pricing.schemes, offered);
      }
      // Two choices are beyond the fixed price, and upto is not offered: the request is what is wrong.
      const beyond = await fetch(`${exactOnly.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({ model: mockModelId, n: 2, messages: [{ role: "user", content: "hi" }] }),
      });
      const { error } = (await beyond.json()) as { error: { code: string; message: string; param: unknown } };
      assert.equal(beyond.status, 400, error.message);
      assert.equal(error.code, "TOLLGATE_REQUEST_INVALID");
      assert.equal(error.param, "n");
      assert.match(
        error.message,
        /model mock-model has a fixed price that covers at most 1 choice\(s\) per request/,
      );
    } finally {
      await exactFirst.close();
      await exactOnly.close();
    }
  });

  test("POST /v1/completions is billed per token", async () => {
    h.backend.set({ responseTokens: 8, tokensPerSecond: 0 });
    const pay = officialPayingFetch(h.devnet.accounts.buyers[0]!.privateKey, h.devnet.network);
    const response = await pay(`${h.gateway.url}/v1/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "mock-completion", prompt: "once upon a time", max_tokens: 20 }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    assert.equal(
      receipt.amount,
      expectedCharge(body.usage.prompt_tokens, body.usage.completion_tokens).toString(),
    );
  });

  test("POST /v1/completions with best_of: the candidates generated and not returned are charged, as the backend bills them", async () => {
    h.backend.set({ responseTokens: 8, tokensPerSecond: 0 });
    const pay = officialPayingFetch(h.devnet.accounts.buyers[0]!.privateKey, h.devnet.network);
    const response = await pay(`${h.gateway.url}/v1/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({
        model: "mock-completion",
        prompt: "once upon a time",
        max_tokens: 20,
        n: 1,
        best_of: 4,
      }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as {
      choices: unknown[];
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    assert.equal(body.choices.length, 1, "one returned");
    assert.equal(body.usage.completion_tokens, 4 * 8, "four generated and billed by the backend");
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    assert.equal(receipt.amount, expectedCharge(body.usage.prompt_tokens, 4 * 8).toString());
  });

  test("POST /v1/embeddings is billed per input token", async () => {
    const pay = officialPayingFetch(h.devnet.accounts.buyers[1]!.privateKey, h.devnet.network);
    const response = await pay(`${h.gateway.url}/v1/embeddings`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "mock-embedding", input: ["alpha beta", "gamma"] }),
    });
    assert.equal(response.status, 200);
    const body = (await response.json()) as { data: unknown[]; usage: { prompt_tokens: number } };
    assert.equal(body.data.length, 2);
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    assert.equal(
      BigInt(receipt.amount!),
      (BigInt(body.usage.prompt_tokens) * 20_000n + 999_999n) / 1_000_000n,
    );
  });

  test("a fixed-price model is paid with exact (EIP-3009) for its price", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    const before = await h.devnet.usdcBalance(buyer.address);
    const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
    const response = await pay(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "mock-fixed", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(response.status, 200);
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    assert.equal(receipt.amount, "10000");
    assert.equal(await h.devnet.usdcBalance(buyer.address), before - 10_000n);
  });

  test("a payment signed for at least the maximum is accepted on the first request, also as X-PAYMENT", async () => {
    const body = JSON.stringify({
      model: mockModelId,
      messages: [{ role: "user", content: "no round trip" }],
      max_tokens: 16,
    });
    const probe = decodePaymentRequiredHeader(
      (
        await fetch(`${h.gateway.url}/v1/chat/completions`, { method: "POST", headers: json, body })
      ).headers.get("payment-required"),
    );
    assert.ok(probe.ok);
    const offer = probe.paymentRequired.accepts.find((accept) => accept.scheme === "upto")!;
    // A buyer that knows the prices signs a generous maximum up front, with no 402 for this request.
    const generous: PaymentRequirements = { ...offer, amount: (BigInt(offer.amount) * 3n).toString() };
    const required: PaymentRequired = { ...probe.paymentRequired, accepts: [generous] };
    const payload = await officialBuyer(
      h.devnet.accounts.buyers[0]!.privateKey,
      h.devnet.network,
    ).createPaymentPayload(required);
    const response = await fetch(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...json, "x-payment": encodePaymentSignatureHeader(payload) },
      body,
    });
    assert.equal(response.status, 200);
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    assert.ok(BigInt(receipt.amount!) < BigInt(offer.amount), "still charged by usage");

    const stingy: PaymentRequirements = { ...offer, amount: (BigInt(offer.amount) - 1n).toString() };
    const low = await officialBuyer(
      h.devnet.accounts.buyers[0]!.privateKey,
      h.devnet.network,
    ).createPaymentPayload({ ...probe.paymentRequired, accepts: [stingy] });
    const refused = await fetch(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { ...json, "payment-signature": encodePaymentSignatureHeader(low) },
      body,
    });
    assert.equal(refused.status, 402);
  });

  test("path variants never reach the backend unpaid", async () => {
    h.backend.clearRequests();
    const body = JSON.stringify({ model: mockModelId, messages: [{ role: "user", content: "x" }] });
    for (const path of [
      "/v1/chat/completions/",
      "/v1//chat/completions",
      "/V1/chat/completions",
      "/v1/chat%2Fcompletions",
    ]) {
      const response = await fetch(`${h.gateway.url}${path}`, { method: "POST", headers: json, body });
      assert.ok([402, 404].includes(response.status), `${path}: ${response.status}`);
    }
    assert.equal(h.backend.inferenceRequests.length, 0);
  });
});

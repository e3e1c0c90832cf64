import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { decodePaymentResponseHeader } from "@x402/core/http";
import OpenAI from "openai";
import { countPromptTokens } from "../src/pricing/index.js";
import { decodePaymentRequiredHeader } from "../src/protocol/index.js";
import { type GatewayHarness, officialPayingFetch, startGatewayHarness } from "./support/gatewayHarness.js";

// 0.50 USDC per 1M input tokens and 0.0001 USDC per request, in atomic units.
const inputPerMTokAtomic = 500_000n;
const feeAtomic = 100n;
const chargeFor = (inputTokens: number) =>
  (BigInt(inputTokens) * inputPerMTokAtomic + 999_999n) / 1_000_000n + feeAtomic;

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness({
    extraModels: (baseUrl) => [
      {
        id: "mock-moderation",
        kind: "moderation",
        backend: { baseUrl },
        tokenizer: "gpt-4o",
        inputPrice: inputPerMTokAtomic.toString(),
        fixedFee: feeAtomic.toString(),
      },
    ],
  });
});
after(async () => {
  await h?.close();
});

function openAiClient(pay: typeof fetch): OpenAI {
  return new OpenAI({ apiKey: "unused", baseURL: `${h.gateway.url}/v1`, fetch: pay, maxRetries: 0 });
}

describe("POST /v1/moderations (OpenAI moderation API)", () => {
  test("the official openai client's moderations.create through @x402/fetch; no usage from the backend: charge = the input counted by the gateway's tokenizer = transfer = ledger row", async () => {
    const buyer = h.devnet.accounts.buyers[0]!;
    const input = ["I will kill the lights before bed", "what a lovely afternoon for a walk"];
    const before = await h.devnet.usdcBalance(buyer.address);
    const client = openAiClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
    const { data, response } = await client.moderations
      .create({ model: "mock-moderation", input })
      .withResponse();
    assert.equal(data.results.length, 2);
    assert.equal(data.results[0]?.flagged, true);
    assert.equal(data.results[0]?.categories.violence, true);
    assert.equal(data.results[1]?.flagged, false);
    assert.equal((data as { usage?: unknown }).usage, undefined, "the backend reported no usage");

    const counted = await countPromptTokens("embedding", { input }, "gpt-4o");
    const charge = chargeFor(counted);
    const settlement = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    assert.equal(settlement.amount, charge.toString());
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    assert.equal(row?.status, "settled");
    assert.equal(row?.route, "/v1/moderations");
    assert.equal(row?.chargeAtomic, charge, "the ledger row holds the charge");
    assert.equal(row?.transaction, settlement.transaction);
    assert.deepEqual(row?.usage, { input_tokens: counted, output_tokens: 0, requests: 1 });
    assert.equal(await h.devnet.usdcBalance(buyer.address), before - charge, "on chain, exactly the charge");
    const sent = h.backend.inferenceRequests.at(-1);
    assert.equal(sent?.path, "/v1/moderations");
    assert.deepEqual(sent?.body, { model: "mock-moderation", input });
  });

  test("the 402's maximum is the input's bound at the input price plus the fee, and covers the charge", async () => {
    const input = "a calm and quiet evening";
    const response = await fetch(`${h.gateway.url}/v1/moderations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mock-moderation", input }),
    });
    assert.equal(response.status, 402);
    const required = decodePaymentRequiredHeader(response.headers.get("payment-required"));
    assert.ok(required.ok);
    const offer = required.paymentRequired.accepts.find((entry) => entry.scheme === "upto");
    assert.ok(offer);
    const pricing = offer.extra?.pricing as { promptTokenBound?: number } | undefined;
    assert.ok(pricing?.promptTokenBound !== undefined);
    assert.equal(offer.amount, chargeFor(pricing.promptTokenBound).toString());
    assert.ok(pricing.promptTokenBound >= (await countPromptTokens("embedding", { input }, "gpt-4o")));
  });

  test("multimodal items are priced (the image at its token bound) and forwarded", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const before = await h.devnet.usdcBalance(buyer.address);
    const client = openAiClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
    const input: OpenAI.ModerationMultiModalInput[] = [
      { type: "text", text: "you idiot" },
      { type: "image_url", image_url: { url: "https://example.com/cat.png" } },
    ];
    const { data, response } = await client.moderations
      .create({ model: "mock-moderation", input })
      .withResponse();
    assert.equal(data.results[0]?.categories.harassment, true);
    assert.deepEqual(data.results[1]?.category_applied_input_types.violence, ["image"]);
    const settlement = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    assert.equal(row?.chargeAtomic, BigInt(settlement.amount ?? "-1"));
    assert.equal(row?.chargeAtomic, chargeFor(Number(row?.usage?.input_tokens)));
    assert.ok(Number(row?.usage?.input_tokens) > 3, "the image counts beyond the text's few tokens");
    assert.equal(await h.devnet.usdcBalance(buyer.address), before - (row?.chargeAtomic ?? 0n));
  });

  test("refuses what it cannot price, naming the field, before any payment", async () => {
    for (const [body, field] of [
      [{ model: "mock-moderation" }, "input"],
      [{ model: "mock-moderation", input: [] }, "input"],
      [{ model: "mock-moderation", input: [{ type: "audio", audio: "…" }] }, "input[0]"],
      [{ model: "mock-moderation", input: "hi", stream: true }, "stream"],
      [{ model: "mock-moderation", input: "hi", documents: ["x"] }, "documents"],
    ] as const) {
      const response = await fetch(`${h.gateway.url}/v1/moderations`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(response.status, 400, JSON.stringify(body));
      const error = (await response.json()) as { error: { message: string } };
      assert.match(error.error.message, new RegExp(field.replace(/[[\]]/g, "\\$&")), JSON.stringify(body));
    }
    assert.equal(
      h.backend.inferenceRequests.filter((request) => request.path === "/v1/moderations").length,
      2,
      "only the two paid requests of the tests above reached the backend",
    );
  });
});

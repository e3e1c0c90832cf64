import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createPayingFetch, openSpendStore, type PayingFetch, type SpendStore } from "../src/buyer/index.js";
import { eventLog } from "./support/buyerFixtures.js";
import { type GatewayHarness, startGatewayHarness, testPrices } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";

const largeModel = "tollgate-test-large";
const largePrices = { inputPerMTokAtomic: 500_000n, outputPerMTokAtomic: 1_500_000n };
const pricesOf = (model: string) => (model === largeModel ? largePrices : testPrices);

let h: GatewayHarness;
let store: SpendStore;
const opened: PayingFetch[] = [];

before(async () => {
  h = await startGatewayHarness({
    extraModels: (backendUrl) => [
      {
        id: largeModel,
        backend: { baseUrl: backendUrl, model: mockModelId },
        inputPrice: largePrices.inputPerMTokAtomic.toString(),
        outputPrice: largePrices.outputPerMTokAtomic.toString(),
        maxOutputTokens: 512,
      },
    ],
  });
  store = await openSpendStore({ dataDir: "memory://" });
});
after(async () => {
  for (const payingFetch of opened) await payingFetch.close();
  await store?.close();
  await h?.close();
});

describe("an honest seller with two models on one gateway", () => {
  test("draws no dispute, however the output limit varies from one request to the next", async () => {
    const log = eventLog();
    const payingFetch = createPayingFetch({
      privateKey: h.devnet.accounts.buyers[0]!.privateKey,
      store,
      onEvent: log.onEvent,
    });
    opened.push(payingFetch);
    const prompts = ["What is a toll road?", "Explain x402 in one paragraph.", "Why pay per token?"];
    const requests: Array<{ model: string; maxTokens: number; stream: boolean }> = [];
    // The first request of each model asks for a small limit; later ones ask for more and use it.
    for (const [i, maxTokens] of [40, 120, 200, 90, 240].entries())
      for (const model of [mockModelId, largeModel]) requests.push({ model, maxTokens, stream: i % 2 === 1 });
    for (const [i, { model, maxTokens, stream }] of requests.entries()) {
      h.backend.set({ responseTokens: maxTokens - 3, tokensPerSecond: 0 });
      const response = await payingFetch(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model,
          messages: [{ role: "user", content: prompts[i % prompts.length] }],
          max_tokens: maxTokens,
          stream,
          ...(stream ? { stream_options: { include_usage: true } } : {}),
        }),
      });
      assert.equal(response.status, 200);
      await response.text();
      await payingFetch.idle();
    }

    const receipts = log.of("receipt");
    assert.equal(receipts.length, requests.length);
    for (const [i, receipt] of receipts.entries()) {
      const { model, maxTokens } = requests[i]!;
      assert.ok(receipt.usage, `request ${i} reports its usage`);
      assert.equal(
        receipt.usage.completionTokens,
        maxTokens - 3,
        `request ${i} generates past earlier limits`,
      );
      const prices = pricesOf(model);
      const product =
        BigInt(receipt.usage.promptTokens) * prices.inputPerMTokAtomic +
        BigInt(receipt.usage.completionTokens) * prices.outputPerMTokAtomic;
      assert.equal(receipt.chargedAtomic, (product + 999_999n) / 1_000_000n, `request ${i} on ${model}`);
    }
    assert.deepEqual(log.of("overcharge"), []);
    assert.deepEqual(await store.disputes(), []);
  });
});

// A payer's funds are read beside verify; a payment of the same payer that settles meanwhile moves money
// the read may not show. The claim counts charges settled since the read; a payer whose funds are tight
// is not refused for a settlement its read already showed.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { holdStreams, mockModelId } from "./support/mockBackend.js";
import { finalRow, payFor, quoteOf } from "./support/paidRequests.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness();
});
after(async () => {
  await h?.close();
});

const body = { model: mockModelId, messages: [{ role: "user", content: "hi" }], max_tokens: 64 };

test("a payer left with exactly one request's maximum right after a settlement is served, and then refused", async () => {
  const { amount: maxAtomic } = await quoteOf(h, "/v1/chat/completions", body);
  const buyer = await h.devnet.createBuyer(maxAtomic);
  const first = await payFor(h, "/v1/chat/completions", body, buyer.privateKey);
  assert.equal(first.response.status, 200, await first.response.text());
  const settled = await finalRow(h);
  assert.equal(settled.status, "settled");
  const chargeAtomic = settled.chargeAtomic!;
  assert.ok(chargeAtomic > 0n);
  // Topped up to exactly one maximum again, the second the first settled.
  await h.devnet.mintUsdc(buyer.address, chargeAtomic);
  assert.equal(await h.devnet.usdcBalance(buyer.address), maxAtomic);
  const second = await payFor(h, "/v1/chat/completions", body, buyer.privateKey);
  assert.equal(second.response.status, 200, await second.response.text());
  assert.equal((await finalRow(h)).status, "settled");
  const third = await payFor(h, "/v1/chat/completions", body, buyer.privateKey);
  const refusal = await third.response.text();
  assert.equal(third.response.status, 402);
  assert.match(refusal, /insufficient_(funds|balance)/);
});

test("upto payments of one payer sent at once, signed for more than their quote, are admitted only as far as each settlement finds the whole signed amount: none is served unpaid", async () => {
  // Answers that fill their output limit: a charge near the quote's maximum.
  const held = { ...body, stream: true, max_tokens: 400 };
  const prompt = { ...body, max_tokens: 400 };
  h.backend.set({ responseTokens: 400 });
  const release = holdStreams(h.backend, 1);
  try {
    const { amount: heldQuoteAtomic } = await quoteOf(h, "/v1/chat/completions", held);
    const { amount: promptQuoteAtomic } = await quoteOf(h, "/v1/chat/completions", prompt);
    // The facilitator settles an upto payment only once the payer holds all it was signed for.
    const signedFor = (quoteAtomic: bigint) => quoteAtomic + quoteAtomic / 2n;
    const buyer = await h.devnet.createBuyer(heldQuoteAtomic + promptQuoteAtomic);
    h.backend.clearRequests();
    const first = payFor(h, "/v1/chat/completions", held, buyer.privateKey, {
      amountAtomic: signedFor(heldQuoteAtomic),
    });
    while (h.backend.inferenceRequests.length < 1) await new Promise((r) => setTimeout(r, 25));
    // The first is in flight, its stream held: the two quotes fit the balance. The second, served
    // at once, would settle first, and leave the first less than it was signed for.
    const second = await payFor(h, "/v1/chat/completions", prompt, buyer.privateKey, {
      amountAtomic: signedFor(promptQuoteAtomic),
    });
    const text = await second.response.text();
    release();
    const firstResponse = (await first).response;
    await firstResponse.text();
    assert.equal(firstResponse.status, 200);
    assert.equal(second.response.status, 402, text);
    assert.match(text, /insufficient_funds/);
    assert.equal(h.backend.inferenceRequests.length, 1, "only the first ran inference");
    const row = await finalRow(h);
    assert.equal(row.status, "settled", row.error ?? "");
    assert.equal(row.payer.toLowerCase(), buyer.address.toLowerCase());
    assert.equal(await h.ledger.payments.hasOpenDebt(row.network, row.payer), false);
  } finally {
    release();
    h.backend.set({ responseTokens: 16 });
  }
});

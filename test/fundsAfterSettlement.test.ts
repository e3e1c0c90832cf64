// A payer's funds are read beside verify; a payment of the same payer that settles meanwhile moves money
// the read may not show. The claim counts charges settled since the read; a payer whose funds are tight
// is not refused for a settlement its read already showed.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockModelId } from "./support/mockBackend.js";
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

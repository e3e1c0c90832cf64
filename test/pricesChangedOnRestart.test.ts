// An operator restarts the gateway with new prices while buyers hold authorizations signed on the old
// offer: no unit may be charged above the price the payment accepted.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { decodePaymentRequiredHeader } from "@x402/core/http";
import { parseGatewayConfig, startGateway } from "../src/gateway/index.js";
import { type GatewayHarness, startGatewayHarness, testGatewayConfig } from "./support/gatewayHarness.js";
import { signHostilePayment } from "./support/hostileBuyer.js";
import { mockModelId } from "./support/mockBackend.js";
import { finalRow, quoteOf } from "./support/paidRequests.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness();
});
after(async () => {
  await h?.close();
});

// A long prompt leaves room under the maximum: input cheaper and output dearer still fit the old one.
const body = {
  model: mockModelId,
  messages: [{ role: "user", content: "hello ".repeat(400) }],
  max_tokens: 64,
};

test("a payment signed on the offer before a restart that raised a unit's price is refused before inference, naming the unit; one that lowered them all is served at the new prices", async () => {
  const quote = await quoteOf(h, "/v1/chat/completions", body);
  const [buyer, second] = h.devnet.accounts.buyers;
  const signedBeforeRaise = await signHostilePayment({
    paymentRequired: quote.header,
    privateKey: buyer!.privateKey,
  });
  const signedBeforeCut = await signHostilePayment({
    paymentRequired: quote.header,
    privateKey: second!.privateKey,
  });
  await h.gateway.close();
  const restart = async (inputPrice: string, outputPrice: string) => {
    const input = testGatewayConfig({ devnet: h.devnet, backendUrl: h.backend.url });
    const gateway = await startGateway({
      config: parseGatewayConfig({ ...input, models: [{ ...input.models[0]!, inputPrice, outputPrice }] }),
      ledger: h.ledger,
      pollingIntervalMs: 20,
    });
    const pay = (signature: string) =>
      fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "payment-signature": signature },
        body: JSON.stringify(body),
      });
    return { gateway, pay };
  };

  // Input from $3 to $2 per 1M, output from $15 to $50: the new maximum is still below the signed one.
  const raised = await restart("2000000", "50000000");
  try {
    const inferencesBefore = h.backend.inferenceRequests.length;
    const response = await raised.pay(signedBeforeRaise);
    const text = await response.text();
    assert.equal(response.status, 402, text);
    const error = decodePaymentRequiredHeader(response.headers.get("payment-required")!).error ?? "";
    assert.match(error, /tollgate_payment_requirements_mismatch/);
    assert.match(error, /output_tokens/);
    assert.equal(h.backend.inferenceRequests.length, inferencesBefore, "nothing was served");
    assert.equal((await h.ledger.payments.recent()).length, 0, "nothing was recorded, nothing charged");
  } finally {
    await raised.gateway.close();
  }

  // Every price lower: the buyer pays less than it accepted, and is served.
  const cut = await restart("1000000", "10000000");
  try {
    const response = await cut.pay(signedBeforeCut);
    assert.equal(response.status, 200, await response.text());
    const row = await finalRow({ ...h, gateway: cut.gateway });
    const usage = row.usage as { input_tokens: number; output_tokens: number };
    assert.equal(row.chargeAtomic, BigInt(Math.ceil(usage.input_tokens * 1 + usage.output_tokens * 10)));
  } finally {
    await cut.gateway.close();
  }
});

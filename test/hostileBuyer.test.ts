import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { decodePaymentResponseHeader } from "@x402/core/http";
import {
  decodePaymentRequiredHeader,
  decodePaymentSignatureHeader,
  encodePaymentSignatureHeader,
} from "../src/protocol/index.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { hostilePaymentPayload, signHostilePayment } from "./support/hostileBuyer.js";
import { mockModelId } from "./support/mockBackend.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness({ model: { exactPrice: "1500" } });
});
after(async () => {
  await h?.close();
});

const body = JSON.stringify({
  model: mockModelId,
  messages: [{ role: "user", content: "say a few words please" }],
  max_tokens: 32,
});
const post = (headers: Record<string, string> = {}) =>
  fetch(`${h.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });

/** The raw PAYMENT-REQUIRED header of an unpaid request. */
async function paymentRequiredHeader(): Promise<string> {
  const response = await post();
  assert.equal(response.status, 402);
  await response.arrayBuffer();
  const header = response.headers.get("payment-required");
  assert.ok(header);
  return header;
}

/** Pays with `header` and answers the settled receipt. */
async function payWith(header: string) {
  const response = await post({ "payment-signature": header });
  const text = await response.text();
  assert.equal(response.status, 200, text);
  const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
  assert.equal(receipt.success, true);
  return receipt;
}

describe("hostile buyer signing helper", () => {
  test("an upto payment with a 300 s deadline is decoded, verified and settled", async () => {
    const buyer = h.devnet.accounts.buyers[0]!;
    const required = await paymentRequiredHeader();
    const header = await signHostilePayment({
      paymentRequired: required,
      privateKey: buyer.privateKey,
      deadlineSeconds: 300,
    });
    const decoded = decodePaymentSignatureHeader(header);
    assert.ok(decoded.ok);
    const { permit2Authorization } = decoded.payload.payload as {
      permit2Authorization: { deadline: string };
    };
    const deadline = Number(permit2Authorization.deadline) - Math.floor(Date.now() / 1000);
    assert.ok(deadline > 290 && deadline <= 300, `deadline ${deadline} s from now`);
    const before = await h.devnet.usdcBalance(buyer.address);
    const receipt = await payWith(header);
    assert.equal(await h.devnet.usdcBalance(buyer.address), before - BigInt(receipt.amount!));
  });

  test("an upto maximum 20× the offer is accepted, and still charged by usage", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const required = await paymentRequiredHeader();
    const decoded = decodePaymentRequiredHeader(required);
    assert.ok(decoded.ok);
    const offered = BigInt(decoded.paymentRequired.accepts.find((offer) => offer.scheme === "upto")!.amount);
    const header = await signHostilePayment({
      paymentRequired: decoded.paymentRequired,
      privateKey: buyer.privateKey,
      amountAtomic: 20n * offered,
    });
    const receipt = await payWith(header);
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    assert.equal(row?.maxAtomic, offered, "the ledger caps the payment at this request's own maximum");
    assert.ok(BigInt(receipt.amount!) <= offered, "the charge is the usage, not the signed maximum");
  });

  test("a hand-signed validAfter is honoured: past pays (upto and exact EIP-3009), future is refused", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    for (const scheme of ["upto", "exact"] as const) {
      const payload = await hostilePaymentPayload({
        paymentRequired: await paymentRequiredHeader(),
        privateKey: buyer.privateKey,
        scheme,
        validAfterSeconds: -60,
      });
      const validAfter =
        "permit2Authorization" in payload.payload
          ? (payload.payload as { permit2Authorization: { witness: { validAfter: string } } })
              .permit2Authorization.witness.validAfter
          : (payload.payload as { authorization: { validAfter: string } }).authorization.validAfter;
      const ago = Math.floor(Date.now() / 1000) - Number(validAfter);
      assert.ok(ago >= 60 && ago < 70, `${scheme}: validAfter ${ago} s ago`);
      const receipt = await payWith(encodePaymentSignatureHeader(payload));
      if (scheme === "exact") assert.equal(receipt.amount, "1500");
    }
    const early = await signHostilePayment({
      paymentRequired: await paymentRequiredHeader(),
      privateKey: buyer.privateKey,
      validAfterSeconds: 600,
    });
    const response = await post({ "payment-signature": early });
    await response.arrayBuffer();
    assert.equal(response.status, 402);
  });
});

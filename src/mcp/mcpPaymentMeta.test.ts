import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { PaymentRequired } from "../protocol/index.js";
import {
  MCP_PAYMENT_META_KEY,
  MCP_PAYMENT_RESPONSE_META_KEY,
  paymentRequiredResult,
  readPaymentMeta,
  readPaymentRequiredResult,
  readPaymentResponseMeta,
} from "./mcpPaymentMeta.js";

const required: PaymentRequired = {
  x402Version: 2,
  error: "payment required to call lookup",
  resource: { url: "mcp://tool/lookup", description: "lookup", mimeType: "application/json" },
  accepts: [
    {
      scheme: "exact",
      network: "eip155:31337",
      amount: "1000",
      asset: "0x5FbDB2315678afecb367f032d93F642f64180aa3",
      payTo: "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
      maxTimeoutSeconds: 300,
      extra: { name: "USD Coin", version: "2" },
    },
  ],
};

describe("x402 MCP transport metadata", () => {
  test("a payment-required result carries the same object as structuredContent and as JSON text", () => {
    const result = paymentRequiredResult(required);
    assert.equal(result.isError, true);
    assert.deepEqual(JSON.parse((result.content[0] as { text: string }).text), result.structuredContent);
    assert.equal(readPaymentRequiredResult(result)?.accepts[0]?.amount, "1000");
  });

  test("a client without structuredContent reads the PaymentRequired from content[0].text", () => {
    const { structuredContent: _dropped, ...textOnly } = paymentRequiredResult(required);
    assert.equal(readPaymentRequiredResult(textOnly)?.resource.url, "mcp://tool/lookup");
  });

  test("an ordinary tool error, or a success, asks for no payment", () => {
    assert.equal(
      readPaymentRequiredResult({ isError: true, content: [{ type: "text", text: "not found" }] }),
      undefined,
    );
    assert.equal(
      readPaymentRequiredResult({ ...paymentRequiredResult(required), isError: false }),
      undefined,
    );
  });

  test("the payment in _meta is validated like the PAYMENT-SIGNATURE header, naming the field", () => {
    assert.equal(readPaymentMeta({}), undefined);
    const notObject = readPaymentMeta({ [MCP_PAYMENT_META_KEY]: "0xabc" });
    assert.ok(notObject && !notObject.ok);
    assert.match(notObject.message, /must be an x402 PaymentPayload object/);
    const wrongVersion = readPaymentMeta({ [MCP_PAYMENT_META_KEY]: { x402Version: 1 } });
    assert.ok(wrongVersion && !wrongVersion.ok);
    assert.match(wrongVersion.message, /x402\/payment.*x402Version: expected 2/);
  });

  test("the settlement is read from _meta only when it is a valid settlement response", () => {
    const settlement = { success: true, transaction: "0x12", network: "eip155:31337", payer: "0xabc" };
    assert.equal(
      readPaymentResponseMeta({ _meta: { [MCP_PAYMENT_RESPONSE_META_KEY]: settlement } })?.success,
      true,
    );
    assert.equal(
      readPaymentResponseMeta({ _meta: { [MCP_PAYMENT_RESPONSE_META_KEY]: { success: "yes" } } }),
      undefined,
    );
    assert.equal(readPaymentResponseMeta({}), undefined);
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodePaymentRequiredHeader as decodeWithCore } from "@x402/core/http";
import { encodeBase64Json } from "./base64Json.js";
import { decodePaymentRequiredHeader, encodePaymentRequiredHeader } from "./paymentRequiredHeader.js";
import { ReasonCode } from "./reasonCodes.js";
import { exactRequirements, uptoRequirements } from "./testing/payments.js";
import type { PaymentRequired } from "./types.js";

const paymentRequired: PaymentRequired = {
  x402Version: 2,
  error: "PAYMENT-SIGNATURE header is required",
  resource: {
    url: "http://127.0.0.1/v1/chat/completions",
    description: "gpt-4o-mini, up to 1024 output tokens",
  },
  accepts: [uptoRequirements, exactRequirements],
  extensions: { "payment-identifier": { required: false } },
};

describe("PAYMENT-REQUIRED header", () => {
  test("round-trips through encode and decode", () => {
    const result = decodePaymentRequiredHeader(encodePaymentRequiredHeader(paymentRequired));
    assert.ok(result.ok);
    assert.deepEqual(result.paymentRequired, paymentRequired);
  });

  test("is what @x402/core's decoder reads", () => {
    assert.deepEqual(decodeWithCore(encodePaymentRequiredHeader(paymentRequired)), paymentRequired);
  });

  test("refuses v1 requirements and names the field", () => {
    const v1 = { x402Version: 1, accepts: [{ ...uptoRequirements, maxAmountRequired: "50000" }] };
    const result = decodePaymentRequiredHeader(encodeBase64Json(v1));
    assert.ok(!result.ok);
    assert.equal(result.reason, ReasonCode.invalidX402Version);
    assert.equal(result.field, "x402Version");
  });

  test("refuses an amount that is not an atomic integer, naming accepts[i].amount", () => {
    const bad = { ...paymentRequired, accepts: [uptoRequirements, { ...exactRequirements, amount: "0.05" }] };
    const result = decodePaymentRequiredHeader(encodeBase64Json(bad));
    assert.ok(!result.ok);
    assert.equal(result.reason, ReasonCode.invalidPaymentRequirements);
    assert.equal(result.field, "accepts[1].amount");
  });

  test("refuses an empty accepts list and a missing header", () => {
    const empty = decodePaymentRequiredHeader(encodeBase64Json({ ...paymentRequired, accepts: [] }));
    assert.ok(!empty.ok);
    assert.equal(empty.field, "accepts");
    const missing = decodePaymentRequiredHeader(null);
    assert.ok(!missing.ok);
    assert.equal(missing.reason, ReasonCode.paymentHeaderMissing);
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodePaymentResponseHeader as decodeWithCore } from "@x402/core/http";
import { encodeBase64Json } from "./base64Json.js";
import { decodePaymentResponseHeader, encodePaymentResponseHeader } from "./paymentResponseHeader.js";
import { ReasonCode } from "./reasonCodes.js";
import type { SettleResponse } from "./types.js";

const settled: SettleResponse = {
  success: true,
  payer: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
  transaction: "0x8a3c7e2f00000000000000000000000000000000000000000000000000000001",
  network: "eip155:84532",
  amount: "1234",
};

describe("PAYMENT-RESPONSE header", () => {
  test("round-trips an upto settlement with its actual amount", () => {
    const result = decodePaymentResponseHeader(encodePaymentResponseHeader(settled));
    assert.ok(result.ok);
    assert.deepEqual(result.settleResponse, settled);
  });

  test("round-trips a zero charge with no transaction", () => {
    const zero: SettleResponse = { ...settled, transaction: "", amount: "0" };
    const result = decodePaymentResponseHeader(encodePaymentResponseHeader(zero));
    assert.ok(result.ok);
    assert.deepEqual(result.settleResponse, zero);
  });

  test("leaves seller-only extensionResponses out, like @x402/core", () => {
    const encoded = encodePaymentResponseHeader({ ...settled, extensionResponses: { secret: 1 } });
    assert.deepEqual(decodeWithCore(encoded), settled);
  });

  test("refuses a settlement whose amount is not an atomic integer", () => {
    const result = decodePaymentResponseHeader(encodeBase64Json({ ...settled, amount: "12.5" }));
    assert.ok(!result.ok);
    assert.equal(result.reason, ReasonCode.receiptInvalid);
    assert.equal(result.field, "amount");
  });

  test("reports a missing header as an absent receipt", () => {
    const result = decodePaymentResponseHeader(undefined);
    assert.ok(!result.ok);
    assert.equal(result.reason, ReasonCode.receiptAbsent);
  });
});

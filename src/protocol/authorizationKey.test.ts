import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { authorizationKey } from "./authorizationKey.js";
import { decodePaymentSignatureHeader, encodePaymentSignatureHeader } from "./paymentSignatureHeader.js";
import { isPermit2Payload } from "./schemePayloads.js";
import {
  buyerAccount,
  signExactEip3009Payment,
  signExactPermit2Payment,
  signUptoPayment,
} from "./testing/payments.js";
import type { DecodedPaymentPayload, PaymentPayload } from "./types.js";

function decode(payment: PaymentPayload): DecodedPaymentPayload {
  const result = decodePaymentSignatureHeader(encodePaymentSignatureHeader(payment));
  assert.ok(result.ok);
  return result.payload;
}

describe("authorizationKey", () => {
  test("keys an upto payment by network, lower-cased payer and Permit2 nonce", async () => {
    const payment = decode(await signUptoPayment());
    const key = authorizationKey(payment);
    assert.equal(key.network, "eip155:84532");
    assert.equal(key.payer, buyerAccount.address.toLowerCase());
    assert.ok(isPermit2Payload(payment.payload));
    assert.equal(key.nonce, payment.payload.permit2Authorization.nonce);
  });

  test("keys exact via Permit2 by its Permit2 nonce", async () => {
    const payment = decode(await signExactPermit2Payment());
    assert.ok(isPermit2Payload(payment.payload));
    assert.equal(authorizationKey(payment).nonce, payment.payload.permit2Authorization.nonce);
  });

  test("keys exact via EIP-3009 by its bytes32 nonce, in decimal", async () => {
    const payment = decode(await signExactEip3009Payment());
    assert.ok(!isPermit2Payload(payment.payload));
    const hexNonce = payment.payload.authorization.nonce;
    const key = authorizationKey(payment);
    assert.match(key.nonce, /^[0-9]+$/);
    assert.equal(BigInt(key.nonce), BigInt(hexNonce));
  });

  test("gives the same key for the same authorization however the payer is cased", async () => {
    const payment = await signUptoPayment();
    const shouting = structuredClone(payment) as unknown as {
      payload: { permit2Authorization: { from: string } };
    };
    shouting.payload.permit2Authorization.from = `0x${shouting.payload.permit2Authorization.from.slice(2).toUpperCase()}`;
    assert.deepEqual(
      authorizationKey(decode(payment)),
      authorizationKey(decode(shouting as unknown as PaymentPayload)),
    );
  });

  test("gives two signed authorizations different keys", async () => {
    const first = authorizationKey(decode(await signUptoPayment()));
    const second = authorizationKey(decode(await signUptoPayment()));
    assert.notEqual(first.nonce, second.nonce);
  });
});

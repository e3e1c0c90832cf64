import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decodePaymentSignatureHeader as decodeWithCore } from "@x402/core/http";
import { encodeBase64Json } from "./base64Json.js";
import { LEGACY_PAYMENT_HEADER, PAYMENT_SIGNATURE_HEADER, readPaymentHeader } from "./headerNames.js";
import { decodePaymentSignatureHeader, encodePaymentSignatureHeader } from "./paymentSignatureHeader.js";
import { ReasonCode } from "./reasonCodes.js";
import { signExactEip3009Payment, signExactPermit2Payment, signUptoPayment } from "./testing/payments.js";
import { seededRandom } from "./testing/seededRandom.js";

type Json = Record<string, unknown>;

/** A deep copy of `value` with the property at `path` set (or deleted, for `undefined`). */
function withField(value: unknown, path: string, replacement: unknown): Json {
  const copy = structuredClone(value) as Json;
  const keys = path.split(".");
  let node = copy;
  for (const key of keys.slice(0, -1)) node = node[key] as Json;
  const last = keys.at(-1) as string;
  if (replacement === undefined) delete node[last];
  else node[last] = replacement;
  return copy;
}

function expectFailure(value: string | null | undefined, reason: string, field?: string) {
  const result = decodePaymentSignatureHeader(value);
  assert.equal(result.ok, false, "expected the header to be refused");
  if (result.ok) return;
  assert.equal(result.reason, reason, result.message);
  if (field !== undefined) {
    assert.equal(result.field, field, result.message);
    assert.ok(result.message.includes(field), `message names the field: ${result.message}`);
  }
}

describe("decodePaymentSignatureHeader", () => {
  test("accepts upto, exact EIP-3009 and exact Permit2 payments signed by the official client", async () => {
    for (const payment of [
      await signUptoPayment(),
      await signExactEip3009Payment(),
      await signExactPermit2Payment(),
    ]) {
      const result = decodePaymentSignatureHeader(encodePaymentSignatureHeader(payment));
      assert.ok(result.ok, result.ok ? "" : result.message);
      assert.deepEqual(result.payload, payment);
    }
  });

  test("reads what @x402/core encodes, and core reads what we encode", async () => {
    const payment = await signUptoPayment();
    assert.deepEqual(decodeWithCore(encodePaymentSignatureHeader(payment)), payment);
  });

  test("accepts URL-safe base64 without padding", async () => {
    const payment = await signUptoPayment();
    const urlSafe = Buffer.from(JSON.stringify(payment)).toString("base64url");
    assert.match(urlSafe, /[-_]|[^=]$/);
    const result = decodePaymentSignatureHeader(urlSafe);
    assert.ok(result.ok);
    assert.deepEqual(result.payload, payment);
  });

  test("the v1 X-PAYMENT header is read when PAYMENT-SIGNATURE is absent", async () => {
    const encoded = encodePaymentSignatureHeader(await signUptoPayment());
    assert.equal(readPaymentHeader(new Headers({ [LEGACY_PAYMENT_HEADER]: encoded })), encoded);
    const both = new Headers({ [PAYMENT_SIGNATURE_HEADER]: "first", [LEGACY_PAYMENT_HEADER]: "second" });
    assert.equal(readPaymentHeader(both), "first");
    assert.equal(readPaymentHeader(new Headers()), undefined);
  });

  test("refuses a missing, oversized, non-base64, non-UTF-8 or non-JSON header", () => {
    expectFailure(undefined, ReasonCode.paymentHeaderMissing);
    expectFailure(null, ReasonCode.paymentHeaderMissing);
    expectFailure("  ", ReasonCode.paymentHeaderMissing);
    expectFailure("A".repeat(16 * 1024 + 4), ReasonCode.paymentHeaderTooLarge);
    expectFailure("eyJ4Ijo!", ReasonCode.paymentHeaderNotBase64);
    expectFailure("ab+_", ReasonCode.paymentHeaderNotBase64);
    expectFailure("abcde", ReasonCode.paymentHeaderNotBase64);
    expectFailure(Buffer.from([0xff, 0xfe, 0x7b]).toString("base64"), ReasonCode.paymentHeaderNotBase64);
    expectFailure(Buffer.from("{not json").toString("base64"), ReasonCode.paymentHeaderNotJson);
  });

  test("refuses deep nesting and __proto__ keys before any schema runs", async () => {
    expectFailure(
      Buffer.from(`${"[".repeat(40)}${"]".repeat(40)}`).toString("base64"),
      ReasonCode.paymentHeaderTooDeep,
    );
    const payment = await signUptoPayment();
    const poisoned = JSON.stringify(payment).replace(
      '{"x402Version"',
      '{"__proto__":{"admin":true},"x402Version"',
    );
    expectFailure(Buffer.from(poisoned).toString("base64"), ReasonCode.paymentHeaderNotJson);
    // Spelled with escapes, it is the same key, and refused the same.
    const escaped = JSON.stringify(payment).replace(
      '{"x402Version"',
      '{"\\u005f_proto\\u005f_":{"admin":true},"x402Version"',
    );
    expectFailure(Buffer.from(escaped).toString("base64"), ReasonCode.paymentHeaderNotJson);
    // An escape elsewhere does not hide one either (and an honest escaped payload still decodes).
    const honest = JSON.stringify(payment).replace('"x402Version"', '"x402\\u0056ersion"');
    assert.equal(decodePaymentSignatureHeader(Buffer.from(honest).toString("base64")).ok, true);
  });

  test("refuses a string holding U+0000, which no x402 field holds and PostgreSQL cannot store", async () => {
    const payment = await signUptoPayment();
    const nul = encodeBase64Json({ ...payment, resource: { url: "https://seller.example/\\u0000" } });
    const decoded = decodePaymentSignatureHeader(nul);
    assert.equal(decoded.ok, true, "a backslash and u0000 spelled out are not a NUL");
    const withNul = encodeBase64Json({ ...payment, resource: { url: "https://seller.example/\u0000" } });
    expectFailure(withNul, ReasonCode.invalidPayload);
  });

  test("refuses x402 v1 payloads and non-objects with the version named", async () => {
    const payment = await signUptoPayment();
    expectFailure(
      encodeBase64Json({ ...payment, x402Version: 1 }),
      ReasonCode.invalidX402Version,
      "x402Version",
    );
    expectFailure(encodeBase64Json([payment]), ReasonCode.invalidPayload);
    expectFailure(encodeBase64Json("payment"), ReasonCode.invalidPayload);
  });

  test("refuses unsupported schemes and non-EVM networks", async () => {
    const payment = await signUptoPayment();
    expectFailure(
      encodeBase64Json(withField(payment, "accepted.scheme", "deferred")),
      ReasonCode.unsupportedScheme,
      "accepted.scheme",
    );
    expectFailure(
      encodeBase64Json(withField(payment, "accepted.network", "solana:mainnet")),
      ReasonCode.invalidNetwork,
      "accepted.network",
    );
    expectFailure(
      encodeBase64Json(withField(payment, "accepted.network", "base")),
      ReasonCode.invalidPayload,
      "accepted.network",
    );
  });

  const uptoCases: [path: string, value: unknown][] = [
    ["accepted.amount", "1.5"],
    ["accepted.amount", "-1"],
    ["accepted.asset", "0x1234"],
    ["accepted.payTo", "not an address"],
    ["accepted.maxTimeoutSeconds", 0],
    ["payload.signature", "0xabc"],
    ["payload.signature", undefined],
    ["payload.permit2Authorization.from", "0x0000000000000000000000000000000000000000aa"],
    ["payload.permit2Authorization.nonce", "01"],
    ["payload.permit2Authorization.nonce", "0x10"],
    ["payload.permit2Authorization.nonce", (1n << 256n).toString()],
    ["payload.permit2Authorization.deadline", 1795372836],
    ["payload.permit2Authorization.permitted.amount", "1e6"],
    ["payload.permit2Authorization.permitted.token", undefined],
    ["payload.permit2Authorization.witness.facilitator", undefined],
    ["payload.permit2Authorization.witness.validAfter", ""],
  ];
  for (const [path, value] of uptoCases) {
    test(`upto: names ${path} when it is ${JSON.stringify(value) ?? "missing"}`, async () => {
      const payment = await signUptoPayment();
      expectFailure(encodeBase64Json(withField(payment, path, value)), ReasonCode.invalidPayload, path);
    });
  }

  const eip3009Cases: [path: string, value: unknown][] = [
    ["payload.authorization.nonce", "0x1234"],
    ["payload.authorization.value", "ten"],
    ["payload.authorization.validBefore", undefined],
    ["payload.authorization.to", "0xZZ97970C51812dc3A010C7d01b50e0d17dc79C8"],
  ];
  for (const [path, value] of eip3009Cases) {
    test(`exact EIP-3009: names ${path} when it is ${JSON.stringify(value) ?? "missing"}`, async () => {
      const payment = await signExactEip3009Payment();
      expectFailure(encodeBase64Json(withField(payment, path, value)), ReasonCode.invalidPayload, path);
    });
  }

  test("never throws on random input (seeded fuzz)", async () => {
    const random = seededRandom(402);
    const valid = encodePaymentSignatureHeader(await signUptoPayment());
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_!{}" ';
    for (let i = 0; i < 2000; i++) {
      let input: string;
      if (i % 2 === 0) {
        input = Array.from({ length: random.int(0, 200) }, () => random.pick([...alphabet])).join("");
      } else {
        // Flip characters of a valid header: mostly still base64, often still JSON.
        const chars = [...valid];
        for (let flips = random.int(1, 4); flips > 0; flips--)
          chars[random.int(0, chars.length - 1)] = random.pick([...alphabet]);
        input = chars.join("");
      }
      const result = decodePaymentSignatureHeader(input);
      if (!result.ok) assert.equal(typeof result.reason, "string");
    }
  });
});

import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { describe, test } from "node:test";
import { bytesToHex, getAddress, hashTypedData } from "viem";
import { hashUsageReceipt } from "./hashUsageReceipt.js";
import {
  NO_CHANNEL_ID,
  USAGE_RECEIPT_TYPES,
  type UsageReceiptPayload,
  usageReceiptDomain,
  usageReceiptMessage,
  usageReceiptPayloadSchema,
} from "./usageReceipt.js";

const hex = (bytes: number) => bytesToHex(randomBytes(bytes));
/** A random uint256 of random length, as a canonical decimal string (0 and 2^256 − 1 included). */
const uint256 = (): string => {
  const roll = randomInt(10);
  if (roll === 0) return "0";
  if (roll === 1) return ((1n << 256n) - 1n).toString();
  return BigInt(hex(randomInt(1, 33))).toString();
};
const text = () => ["", "é€𝄞 ünïcode", "x".repeat(randomInt(0, 300)), hex(randomInt(0, 40))][randomInt(4)] ?? "";
const address = () => (randomInt(2) ? getAddress(hex(20)) : hex(20));

function randomPayload(): UsageReceiptPayload {
  const units = ["input_tokens", "output_tokens", "images", "compute_ms", "cache_read_tokens"];
  return usageReceiptPayloadSchema.parse({
    network: `eip155:${randomInt(1, 2 ** 31)}`,
    resourceUrl: `https://gateway.example/${text()}`.slice(0, 2048),
    route: "/v1/chat/completions",
    model: text().slice(0, 256),
    scheme: ["upto", "exact", "batch-settlement"][randomInt(3)],
    asset: address(),
    payer: address(),
    payTo: address(),
    nonce: uint256(),
    usage: units.slice(0, randomInt(0, 6)).map((unit) => ({ unit, amount: uint256() })),
    prices: units.slice(0, randomInt(0, 6)).map((unit) => ({ unit, perMillionAtomic: uint256() })),
    fixedFeeAtomic: uint256(),
    chargeAtomic: uint256(),
    maxAtomic: uint256(),
    transaction: randomInt(2) ? hex(32) : "",
    channelId: randomInt(2) ? hex(32) : NO_CHANNEL_ID,
    cumulativeAtomic: uint256(),
    issuedAt: randomInt(0, 2 ** 40),
  });
}

describe("hashUsageReceipt", () => {
  test("is the EIP-712 digest viem computes from the receipt's types, for 300 random receipts", () => {
    for (let i = 0; i < 300; i++) {
      const payload = randomPayload();
      const expected = hashTypedData({
        domain: usageReceiptDomain(payload.network),
        types: USAGE_RECEIPT_TYPES,
        primaryType: "UsageReceipt",
        message: usageReceiptMessage(payload),
      });
      assert.equal(hashUsageReceipt(payload), expected, JSON.stringify(payload));
    }
  });

  test("changes with every field of the receipt", () => {
    const payload = randomPayload();
    const base = hashUsageReceipt(payload);
    const changed: Array<Partial<UsageReceiptPayload>> = [
      { network: "eip155:1" },
      { resourceUrl: `${payload.resourceUrl}/` },
      { model: `${payload.model}x` },
      { chargeAtomic: (BigInt(payload.chargeAtomic) ^ 1n).toString() },
      { usage: [...payload.usage, { unit: "images", amount: "1" }] },
      { prices: [...payload.prices, { unit: "images", perMillionAtomic: "1" }] },
      { channelId: hex(32) },
      { issuedAt: payload.issuedAt + 1 },
    ];
    for (const change of changed)
      assert.notEqual(hashUsageReceipt({ ...payload, ...change }), base, JSON.stringify(change));
  });
});

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
const text = () =>
  ["", "é€𝄞 ünïcode", "x".repeat(randomInt(0, 300)), hex(randomInt(0, 40))][randomInt(4)] ?? "";
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
    const changedValue = (name: keyof UsageReceiptPayload, type: string): unknown => {
      const value = payload[name];
      if (name === "network") return payload.network === "eip155:1" ? "eip155:2" : "eip155:1";
      if (name === "issuedAt") return payload.issuedAt + 1;
      if (type === "string") return `${value}x`;
      if (type === "address") return hex(20);
      if (type === "bytes32") return hex(32);
      if (type === "uint256") return (BigInt(value as string) ^ 1n).toString();
      if (name === "usage") return [...payload.usage, { unit: "images", amount: "1" }];
      return [...payload.prices, { unit: "images", perMillionAtomic: "1" }];
    };
    const fields = USAGE_RECEIPT_TYPES.UsageReceipt;
    for (const { name, type } of fields) {
      const changed = { ...payload, [name]: changedValue(name, type) };
      assert.notEqual(hashUsageReceipt(changed), base, name);
    }
    assert.equal(fields.length, 18);
  });

  test("refuses what viem's typed-data check refuses, rather than hash it", () => {
    const payload = randomPayload();
    // 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 with its first checksum capital lowered.
    const wrongCase = "0x70997970c51812dc3A010C7d01b50e0d17dc79C8";
    const bad: Array<[string, Record<string, unknown>]> = [
      ["an address whose mixed case is not its checksum", { payer: wrongCase }],
      ["an address of 19 bytes", { asset: hex(19) }],
      ["a bytes32 of 33 bytes", { channelId: hex(33) }],
      ["a bytes32 of 31 bytes", { channelId: hex(31) }],
      ["a missing string", { model: undefined }],
      ["a negative integer", { chargeAtomic: "-1" }],
      ["an integer past uint256", { maxAtomic: (1n << 256n).toString() }],
    ];
    for (const [what, change] of bad) {
      const changed = { ...payload, ...change } as UsageReceiptPayload;
      assert.throws(() => hashUsageReceipt(changed), /usage receipt: /, what);
      assert.throws(
        () =>
          hashTypedData({
            domain: usageReceiptDomain(changed.network),
            types: USAGE_RECEIPT_TYPES,
            primaryType: "UsageReceipt",
            message: {
              ...usageReceiptMessage({ ...changed, chargeAtomic: "0", maxAtomic: "0" }),
              ...messageOf(change),
            },
          }),
        `viem refuses ${what} too`,
      );
    }
  });
});

/** A change as it reaches viem's message: integers as bigint. */
function messageOf(change: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(change))
    out[key] =
      (key === "chargeAtomic" || key === "maxAtomic") && typeof value === "string" ? BigInt(value) : value;
  return out;
}

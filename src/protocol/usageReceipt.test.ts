import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { describe, test } from "node:test";
import { recoverTypedDataAddress } from "viem";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import {
  justifiedByUsageReceipt,
  NO_CHANNEL_ID,
  recoverUsageReceiptSigner,
  signUsageReceipt,
  type UsageReceiptPayload,
} from "./usageReceipt.js";

const account = privateKeyToAccount(generatePrivateKey());
const payload: UsageReceiptPayload = {
  network: "eip155:80002",
  resourceUrl: "https://gateway.example/v1/chat/completions",
  route: "/v1/chat/completions",
  model: "llama-3.1-8b-instruct",
  scheme: "upto",
  asset: "0x41E94Eb019C0762f9Bfcf9Fb1E58725BfB0e7582",
  payer: account.address,
  payTo: "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
  nonce: "987654321987654321",
  usage: [
    { unit: "input_tokens", amount: "1000" },
    { unit: "output_tokens", amount: "333" },
  ],
  prices: [
    { unit: "input_tokens", perMillionAtomic: "150000" },
    { unit: "output_tokens", perMillionAtomic: "600000" },
  ],
  fixedFeeAtomic: "7",
  chargeAtomic: "357",
  maxAtomic: "900",
  transaction: `0x${"12".repeat(32)}`,
  channelId: NO_CHANNEL_ID,
  cumulativeAtomic: "0",
  issuedAt: 1_796_169_600,
};

/** Turns an EIP-712 type string (`encodeType`) back into viem's `types` object. */
function typesFromTypeString(typeString: string) {
  const types: Record<string, Array<{ name: string; type: string }>> = {};
  for (const [, name, fields] of typeString.matchAll(/([A-Za-z0-9_]+)\(([^)]*)\)/g)) {
    types[name!] = fields!.split(",").map((field) => {
      const [type, fieldName] = field.split(" ");
      return { name: fieldName!, type: type! };
    });
  }
  return types;
}

describe("usage receipt", () => {
  test("docs/receipts.md states the type and domain that are signed: viem alone recovers the signer from them", async () => {
    const docs = await readFile(new URL("../../docs/receipts.md", import.meta.url), "utf8");
    const typeString = /<!-- usage-receipt-type -->\s*```\s*\n([^\n]+)\n```/.exec(docs)?.[1];
    assert.ok(typeString, "the docs hold the type string");
    const signed = await signUsageReceipt(payload, account.sign);
    const signer = await recoverTypedDataAddress({
      domain: { name: "Tollgate usage receipt", version: "1", chainId: 80002 },
      types: typesFromTypeString(typeString),
      primaryType: "UsageReceipt",
      // The JSON form as it travels, decimal strings and all, as the docs' snippet passes it.
      message: JSON.parse(JSON.stringify(signed.payload)),
      signature: signed.signature as `0x${string}`,
    });
    assert.equal(signer, account.address);
  });

  test("the signer is recovered; a changed field recovers someone else", async () => {
    const signed = await signUsageReceipt(payload, account.sign);
    const recovered = await recoverUsageReceiptSigner(signed);
    assert.ok(recovered.ok);
    assert.equal(recovered.signer, account.address);
    const changed = await recoverUsageReceiptSigner({ ...signed, payload: { ...payload, maxAtomic: "901" } });
    assert.ok(changed.ok);
    assert.notEqual(changed.signer, account.address);
  });

  test("a malformed receipt is refused with the field named", async () => {
    const signed = await signUsageReceipt(payload, account.sign);
    const refused = await recoverUsageReceiptSigner({
      ...signed,
      payload: { ...payload, chargeAtomic: "-1" },
    });
    assert.equal(refused.ok, false);
    assert.match(refused.ok ? "" : refused.message, /^usage receipt\.payload\.chargeAtomic: /);
  });

  test("what a receipt justifies: ceil of usage × prices plus the fee, never above the maximum", () => {
    // ceil((1000 × 150000 + 333 × 600000) / 1e6) + 7 = ceil(349.8) + 7 = 357
    assert.equal(justifiedByUsageReceipt(payload), 357n);
    assert.equal(justifiedByUsageReceipt({ ...payload, maxAtomic: "300" }), 300n);
    assert.equal(
      justifiedByUsageReceipt({ ...payload, usage: [...payload.usage, { unit: "images", amount: "3" }] }),
      357n,
      "a unit without a price costs nothing",
    );
    for (let tokens = 0; tokens < 200; tokens += 7) {
      const more = justifiedByUsageReceipt({
        ...payload,
        maxAtomic: "1000000",
        usage: [{ unit: "output_tokens", amount: String(tokens + 1) }],
      });
      const less = justifiedByUsageReceipt({
        ...payload,
        maxAtomic: "1000000",
        usage: [{ unit: "output_tokens", amount: String(tokens) }],
      });
      assert.ok(more >= less, "monotonic in usage");
    }
  });
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { verifyReceiptSignatureEIP712 } from "@x402/extensions/offer-receipt";
import { generatePrivateKey, privateKeyToAccount } from "viem/accounts";
import { checkSignedReceipts, signedReceiptExtensions } from "../protocol/index.js";
import { createReceiptSigner, type ReceiptFacts } from "./createReceiptSigner.js";

const payer = privateKeyToAccount(generatePrivateKey()).address;
const payTo = privateKeyToAccount(generatePrivateKey()).address;
const asset = privateKeyToAccount(generatePrivateKey()).address;
const transaction = `0x${"ab".repeat(32)}`;

const facts: ReceiptFacts = {
  network: "eip155:31337",
  resourceUrl: "http://127.0.0.1:4021/v1/chat/completions",
  route: "/v1/chat/completions",
  model: "tollgate-demo",
  scheme: "upto",
  asset,
  payer,
  payTo,
  nonce: "123456789",
  usage: [
    { unit: "input_tokens", amount: "12" },
    { unit: "output_tokens", amount: "40" },
  ],
  prices: [
    { unit: "input_tokens", perMillionAtomic: "500000" },
    { unit: "output_tokens", perMillionAtomic: "1500000" },
  ],
  fixedFeeAtomic: "0",
  // ceil((12 × 500000 + 40 × 1500000) / 1e6) = 66
  chargeAtomic: "66",
  maxAtomic: "114",
  transaction,
};

const expectations = (signer: string) => ({
  signer,
  payer,
  payTo,
  asset,
  network: "eip155:31337",
  nonce: "123456789",
  transaction,
  chargeAtomic: 66n,
  maxAtomic: 114n,
});

describe("createReceiptSigner", () => {
  test("the x402 receipt passes the official verifyReceiptSignatureEIP712 and names the seller's key", async () => {
    const signer = createReceiptSigner({ privateKey: generatePrivateKey() });
    const { offerReceipt } = await signer.signReceipts(facts);
    const verified = await verifyReceiptSignatureEIP712(offerReceipt);
    assert.equal(verified.signer, signer.address);
    assert.equal(verified.payload.payer, payer);
    assert.equal(verified.payload.transaction, transaction);
    assert.equal(verified.payload.resourceUrl, facts.resourceUrl);
  });

  test("both receipts check out against what the buyer knows, and the charge is what the usage justifies", async () => {
    const signer = createReceiptSigner({ privateKey: generatePrivateKey() });
    const check = await checkSignedReceipts(await signer.sign(facts), expectations(signer.address));
    assert.deepEqual(check.problems, []);
    assert.equal(check.status, "verified");
    assert.equal(check.signer, signer.address);
    assert.equal(check.justifiedAtomic, 66n);
    assert.equal(check.overchargeAtomic, undefined);
  });

  test("a tampered charge, usage or signature fails the usage receipt", async () => {
    const signer = createReceiptSigner({ privateKey: generatePrivateKey() });
    const receipts = await signer.signReceipts(facts);
    const tamperings = {
      charge: { ...receipts.usageReceipt, payload: { ...receipts.usageReceipt.payload, chargeAtomic: "65" } },
      usage: {
        ...receipts.usageReceipt,
        payload: {
          ...receipts.usageReceipt.payload,
          usage: [
            { unit: "input_tokens", amount: "12" },
            { unit: "output_tokens", amount: "41" },
          ],
        },
      },
      signature: {
        ...receipts.usageReceipt,
        signature: `${receipts.usageReceipt.signature.slice(0, 10)}${receipts.usageReceipt.signature[10] === "0" ? "1" : "0"}${receipts.usageReceipt.signature.slice(11)}`,
      },
    };
    for (const [what, usageReceipt] of Object.entries(tamperings)) {
      const extensions = signedReceiptExtensions({ ...receipts, usageReceipt });
      // Only the published key is expected: the tampering alone must make the receipt fail.
      const check = await checkSignedReceipts(extensions, { signer: signer.address });
      assert.equal(check.status, "invalid", `a tampered ${what} is caught`);
      assert.ok(
        check.problems.some((problem) => problem.startsWith("usage receipt")),
        `${what}: ${check.problems.join("; ")}`,
      );
    }
  });

  test("receipts signed by another key than the published one are invalid", async () => {
    const signer = createReceiptSigner({ privateKey: generatePrivateKey() });
    const published = privateKeyToAccount(generatePrivateKey()).address;
    const check = await checkSignedReceipts(await signer.sign(facts), expectations(published));
    assert.equal(check.status, "invalid");
    assert.match(check.problems.join("\n"), /not by the seller's published receipt key/);
  });

  test("a charge above what the seller's own signed usage justifies is proven by its statement", async () => {
    const signer = createReceiptSigner({ privateKey: generatePrivateKey() });
    const extensions = await signer.sign({ ...facts, chargeAtomic: "100" });
    const check = await checkSignedReceipts(extensions, {
      ...expectations(signer.address),
      chargeAtomic: 100n,
    });
    assert.equal(check.status, "verified", "the statement is authentic");
    assert.equal(check.justifiedAtomic, 66n);
    assert.equal(check.overchargeAtomic, 34n);
  });
});

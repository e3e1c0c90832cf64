import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { maxAtomicForRequest } from "../pricing/index.js";
import type { PaymentRequirements } from "../protocol/index.js";
import { readInferenceRequest } from "./inferenceRequest.js";
import { estimateRequest, priceAboveListing, type QuotedPrice } from "./quotedPrice.js";
import { describeOffer, selectOffer } from "./selectOffer.js";
import { parseSpendingPolicy } from "./spendingPolicy.js";
import { verifyCharge } from "./verifyCharge.js";

const price: QuotedPrice = {
  inputPerMTokAtomic: 150_000n,
  outputPerMTokAtomic: 600_000n,
  fixedFeeAtomic: 7n,
  maxOutputTokens: 100,
};
const modelPrice = { ...price, maxOutputTokens: 100 };

function request(path: string, body: Record<string, unknown>) {
  const parsed = readInferenceRequest(`https://api.example.com/v1/${path}`, JSON.stringify(body));
  assert.ok(parsed);
  return parsed;
}

const chat = (extra: Record<string, unknown>) =>
  request("chat/completions", {
    model: "m",
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 50,
    ...extra,
  });

describe("estimateRequest", () => {
  test("a speech request costs its input's code points at the character price, plus the fee; a receipt claiming more characters is flagged", async () => {
    const speechPrice: QuotedPrice = {
      inputPerMTokAtomic: 0n,
      outputPerMTokAtomic: 0n,
      fixedFeeAtomic: 100n,
      units: { input_characters: 15_000_001n, requests: 100n },
    };
    // 5 code points, 6 UTF-16 units.
    const speech = request("audio/speech", { model: "tts", input: "toll🚗", voice: "alloy" });
    assert.equal(speech.kind, "speech");
    const estimate = await estimateRequest(speech, speechPrice);
    assert.ok(estimate);
    assert.equal(estimate.inputCharacters, 5);
    assert.equal(estimate.expectedMaxAtomic, 76n + 100n, "5 × 15.000001 = 75.000005, rounded up, + 100");
    const receipt = (characters: number, chargedAtomic: bigint) =>
      verifyCharge({
        chargedAtomic,
        maxAtomic: chargedAtomic,
        usage: {
          promptTokens: 2,
          completionTokens: 0,
          units: { input_tokens: 2, input_characters: characters, requests: 1 },
        },
        price: speechPrice,
        estimate,
      });
    assert.equal(receipt(5, 176n).ok, true, "the honest charge");
    const inflated = receipt(6, 191n);
    assert.deepEqual(
      { ok: inflated.ok, reason: !inflated.ok && inflated.reason, justified: inflated.justifiedAtomic },
      { ok: false, reason: "usage_above_bound", justified: 176n },
    );
  });

  test("multiplies the output limit by n for chat", async () => {
    const one = await estimateRequest(chat({}), price);
    const five = await estimateRequest(chat({ n: 5 }), price);
    assert.ok(one && five);
    assert.equal(five.completions, 5);
    assert.equal(five.outputTokens, 50, "the limit of one completion");
    assert.equal(
      five.expectedMaxAtomic,
      maxAtomicForRequest({ promptTokenBound: five.promptTokenBound, maxOutputTokens: 250 }, modelPrice),
    );
    assert.ok(five.expectedMaxAtomic > one.expectedMaxAtomic);
  });

  test("counts max(n, best_of) per prompt for completions", async () => {
    for (const [body, completions] of [
      [{ prompt: "a" }, 1],
      [{ prompt: "a", n: 2, best_of: 3 }, 3],
      [{ prompt: ["a", "b", "c"], n: 2, best_of: 3 }, 9],
      [{ prompt: ["a", "b"], n: 4 }, 8],
      [{ prompt: [1, 2, 3], n: 2 }, 2],
      [{ prompt: [[1, 2], [3]], best_of: 2 }, 4],
    ] as const) {
      const estimate = await estimateRequest(
        request("completions", { model: "m", max_tokens: 10, ...body }),
        price,
      );
      assert.ok(estimate, JSON.stringify(body));
      assert.equal(estimate.completions, completions, JSON.stringify(body));
      assert.equal(
        estimate.expectedMaxAtomic,
        maxAtomicForRequest(
          { promptTokenBound: estimate.promptTokenBound, maxOutputTokens: 10 * completions },
          modelPrice,
        ),
        JSON.stringify(body),
      );
    }
  });

  test("gives no estimate for an n the seller would refuse", async () => {
    assert.equal(await estimateRequest(chat({ n: 0 }), price), undefined);
    assert.equal(await estimateRequest(chat({ n: 1.5 }), price), undefined);
  });
});

describe("selectOffer with n", () => {
  test("allows a maximum priced for n completions under maxOverExpected 1", async () => {
    const inference = chat({ n: 5 });
    const estimate = await estimateRequest(inference, price);
    assert.ok(estimate);
    // What the gateway's quoteRequest asks: output limit × completions.
    const askedAtomic = maxAtomicForRequest(
      { promptTokenBound: estimate.promptTokenBound, maxOutputTokens: 50 * 5 },
      modelPrice,
    );
    const offer: PaymentRequirements = {
      scheme: "upto",
      network: "eip155:31337",
      asset: "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359",
      amount: askedAtomic.toString(),
      payTo: "0x1111111111111111111111111111111111111111",
      maxTimeoutSeconds: 300,
      extra: {
        pricing: {
          inputPerMTokAtomic: "150000",
          outputPerMTokAtomic: "600000",
          fixedFeeAtomic: "7",
          maxOutputTokens: 50,
        },
      },
    };
    const selected = await selectOffer({
      accepts: [offer],
      request: inference,
      policy: parseSpendingPolicy({ maxOverExpected: 1 }),
      origin: "https://api.example.com",
    });
    assert.ok(selected.ok, selected.ok ? "" : selected.refusal.message);
    assert.equal(selected.choice.expectedAtomic, askedAtomic);
  });
});

describe("priceAboveListing", () => {
  const listed: QuotedPrice = {
    inputPerMTokAtomic: 150_000n,
    outputPerMTokAtomic: 600_000n,
    fixedFeeAtomic: 7n,
  };
  const offer = (scheme: string, pricing?: Record<string, unknown>): PaymentRequirements => ({
    scheme,
    network: "eip155:31337",
    asset: "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359",
    amount: "1000000",
    payTo: "0x1111111111111111111111111111111111111111",
    maxTimeoutSeconds: 300,
    extra: pricing ? { pricing } : {},
  });
  const asListed = { inputPerMTokAtomic: "150000", outputPerMTokAtomic: "600000", fixedFeeAtomic: "7" };

  test("holds a unit the listing does not itemize to what the listing charges it as", async () => {
    for (const [units, raised] of [
      [{ reasoning_tokens: "1800000" }, /reasoning_tokens at 1800000 atomic units, listed 600000/],
      [
        { cache_write_input_tokens: "300000" },
        /cache_write_input_tokens at 300000 atomic units, listed 150000/,
      ],
      [{ compute_ms: "1" }, /compute_ms at 1 atomic units, listed 0/],
    ] as const) {
      const choice = await describeOffer(offer("upto", { ...asListed, units }), chat({}));
      assert.match(priceAboveListing(listed, choice) ?? "", raised);
    }
    const same = {
      input_tokens: "150000",
      output_tokens: "600000",
      reasoning_tokens: "600000",
      requests: "7",
    };
    const choice = await describeOffer(offer("upto", { ...asListed, units: same }), chat({}));
    assert.equal(priceAboveListing(listed, choice), undefined, "the listed prices, itemized");
  });

  test("holds a channel offer priced by its upto sibling to the listing", async () => {
    const dearer = offer("upto", { ...asListed, outputPerMTokAtomic: "1800000" });
    const choice = await describeOffer(offer("batch-settlement"), chat({}), [dearer]);
    assert.match(priceAboveListing(listed, choice) ?? "", /output 1800000 atomic units per 1M tokens/);
  });
});

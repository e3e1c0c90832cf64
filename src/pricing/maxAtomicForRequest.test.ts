import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { maxAtomicForRequest } from "./maxAtomicForRequest.js";
import type { ModelPrice } from "./modelPrice.js";

const price: ModelPrice = {
  inputPerMTokAtomic: 150_000n,
  outputPerMTokAtomic: 600_000n,
  fixedFeeAtomic: 1_000n,
  maxOutputTokens: 4096,
};

describe("maxAtomicForRequest", () => {
  test("is ceil(promptBound × in + maxOutput × out) / 1M + fee", () => {
    // 1200 × 150000 + 4096 × 600000 = 2,637,600,000 → 2637.6 → 2638, + 1000 fee
    assert.equal(maxAtomicForRequest({ promptTokenBound: 1200, maxOutputTokens: 4096 }, price), 3638n);
    assert.equal(maxAtomicForRequest({ promptTokenBound: 0, maxOutputTokens: 0 }, price), 1_000n);
  });

  test("never prices a prompt above the model's context window", () => {
    const withContext = { ...price, contextTokens: 1000 };
    assert.equal(
      maxAtomicForRequest({ promptTokenBound: 50_000, maxOutputTokens: 0 }, withContext),
      maxAtomicForRequest({ promptTokenBound: 1000, maxOutputTokens: 0 }, withContext),
    );
  });

  test("accepts bigint token counts beyond the safe-integer range", () => {
    const huge = 2n ** 60n;
    assert.equal(
      maxAtomicForRequest({ promptTokenBound: huge, maxOutputTokens: 0 }, price),
      (huge * 150_000n + 999_999n) / 1_000_000n + 1_000n,
    );
  });
});

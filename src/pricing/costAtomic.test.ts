import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { seededRandom } from "../protocol/testing/seededRandom.js";
import { chargeAtomic, costAtomic } from "./costAtomic.js";
import { maxAtomicForRequest } from "./maxAtomicForRequest.js";
import type { ModelPrice } from "./modelPrice.js";

const gpt4oMini: ModelPrice = {
  inputPerMTokAtomic: 150_000n, // $0.15 / 1M
  outputPerMTokAtomic: 600_000n, // $0.60 / 1M
  fixedFeeAtomic: 0n,
  maxOutputTokens: 16_384,
};

function randomPrice(random: ReturnType<typeof seededRandom>): ModelPrice {
  return {
    inputPerMTokAtomic: random.bigint(random.pick([0n, 1_000n, 1_000_000n, 100_000_000n])),
    outputPerMTokAtomic: random.bigint(random.pick([0n, 1_000n, 1_000_000n, 100_000_000n])),
    fixedFeeAtomic: random.bigint(random.pick([0n, 10n, 10_000n])),
    maxOutputTokens: random.int(1, 200_000),
  };
}

describe("costAtomic", () => {
  test("charges per million tokens, rounded up to the next atomic unit", () => {
    assert.equal(costAtomic({ promptTokens: 1_000_000, completionTokens: 0 }, gpt4oMini), 150_000n);
    assert.equal(costAtomic({ promptTokens: 1000, completionTokens: 500 }, gpt4oMini), 450n);
    // One prompt token costs 0.15 atomic units: rounded up to 1.
    assert.equal(costAtomic({ promptTokens: 1, completionTokens: 0 }, gpt4oMini), 1n);
    assert.equal(costAtomic({ promptTokens: 0, completionTokens: 0 }, gpt4oMini), 0n);
    assert.equal(
      costAtomic({ promptTokens: 0, completionTokens: 0 }, { ...gpt4oMini, fixedFeeAtomic: 1000n }),
      1000n,
    );
  });

  test("refuses negative or fractional token counts and negative prices", () => {
    for (const usage of [
      { promptTokens: -1, completionTokens: 0 },
      { promptTokens: 1.5, completionTokens: 0 },
      { promptTokens: 0, completionTokens: Number.NaN },
    ]) {
      assert.throws(
        () => costAtomic(usage, gpt4oMini),
        (error) => isTollgateError(error, "TOLLGATE_INTERNAL"),
      );
    }
    assert.throws(
      () => costAtomic({ promptTokens: 1, completionTokens: 1 }, { ...gpt4oMini, outputPerMTokAtomic: -1n }),
      (error) => isTollgateError(error, "TOLLGATE_CONFIG_INVALID"),
    );
  });

  test("rounds up by less than one atomic unit (seeded property)", () => {
    const random = seededRandom(1);
    for (let i = 0; i < 5000; i++) {
      const price = randomPrice(random);
      const usage = { promptTokens: random.int(0, 2_000_000), completionTokens: random.int(0, 200_000) };
      const exact =
        BigInt(usage.promptTokens) * price.inputPerMTokAtomic +
        BigInt(usage.completionTokens) * price.outputPerMTokAtomic;
      const variable = (costAtomic(usage, price) - price.fixedFeeAtomic) * 1_000_000n;
      assert.ok(variable >= exact, "never below the exact cost");
      assert.ok(variable < exact + 1_000_000n, "less than one atomic unit above it");
    }
  });

  test("is monotonic in prompt and completion tokens (seeded property)", () => {
    const random = seededRandom(2);
    for (let i = 0; i < 5000; i++) {
      const price = randomPrice(random);
      const usage = { promptTokens: random.int(0, 1_000_000), completionTokens: random.int(0, 100_000) };
      const more = {
        promptTokens: usage.promptTokens + random.int(0, 1000),
        completionTokens: usage.completionTokens + random.int(0, 1000),
      };
      assert.ok(costAtomic(more, price) >= costAtomic(usage, price));
    }
  });
});

describe("chargeAtomic", () => {
  test("settles the cost when under the maximum and the maximum when over", () => {
    const usage = { promptTokens: 1000, completionTokens: 500 };
    assert.equal(chargeAtomic(usage, gpt4oMini, 50_000n), 450n);
    assert.equal(chargeAtomic(usage, gpt4oMini, 100n), 100n);
    assert.equal(chargeAtomic(usage, gpt4oMini, 0n), 0n);
  });

  test("never exceeds the authorized maximum (seeded property)", () => {
    const random = seededRandom(3);
    for (let i = 0; i < 5000; i++) {
      const price = randomPrice(random);
      const maxAtomic = random.bigint(10_000_000n);
      const usage = { promptTokens: random.int(0, 10_000_000), completionTokens: random.int(0, 1_000_000) };
      const charge = chargeAtomic(usage, price, maxAtomic);
      assert.ok(charge <= maxAtomic);
      assert.ok(charge <= costAtomic(usage, price));
      assert.ok(charge >= 0n);
    }
  });

  test("charges the full cost whenever usage stays within the quoted bounds (seeded property)", () => {
    const random = seededRandom(4);
    for (let i = 0; i < 5000; i++) {
      const price = randomPrice(random);
      const bounds = { promptTokenBound: random.int(0, 200_000), maxOutputTokens: random.int(0, 32_000) };
      const maxAtomic = maxAtomicForRequest(bounds, price);
      const usage = {
        promptTokens: random.int(0, bounds.promptTokenBound),
        completionTokens: random.int(0, bounds.maxOutputTokens),
      };
      assert.equal(chargeAtomic(usage, price, maxAtomic), costAtomic(usage, price));
    }
  });
});

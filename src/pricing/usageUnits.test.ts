import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { seededRandom } from "../protocol/testing/seededRandom.js";
import { costAtomic } from "./costAtomic.js";
import { maxCostOfUnits } from "./maxCostOfUnits.js";
import { resolveUnitPrices } from "./resolveUnitPrices.js";
import { costOfUnits, type UnitPrices, type UnitUsage, USAGE_UNITS } from "./usageUnits.js";

function randomPrices(random: ReturnType<typeof seededRandom>): UnitPrices {
  const prices: UnitPrices = {};
  for (const unit of USAGE_UNITS) {
    if (random.int(0, 4) === 0) continue;
    prices[unit] = random.bigint(random.pick([0n, 7n, 1_000n, 1_000_000n, 100_000_000n]));
  }
  return prices;
}

function randomUsage(random: ReturnType<typeof seededRandom>): UnitUsage {
  const usage: UnitUsage = {};
  for (const unit of USAGE_UNITS) usage[unit] = random.int(0, random.pick([1, 100, 5_000, 2_000_000]));
  return usage;
}

describe("costOfUnits", () => {
  test("prices each unit per its scale and rounds the whole sum up once", () => {
    const prices = { input_tokens: 150_000n, output_tokens: 600_000n, images: 40_000n, compute_ms: 2_000n };
    assert.equal(costOfUnits({ input_tokens: 1000, output_tokens: 500 }, prices), 450n);
    assert.equal(costOfUnits({ images: 3 }, prices), 120_000n);
    // 1,500 ms at 2,000 atomic units per second.
    assert.equal(costOfUnits({ compute_ms: 1_500 }, prices), 3_000n);
    // 0.15 + 0.6 atomic units: one ceil over the sum gives 1, not 2.
    assert.equal(costOfUnits({ input_tokens: 1, output_tokens: 1 }, prices), 1n);
    // A unit without a price costs nothing.
    assert.equal(costOfUnits({ output_bytes: 10_000_000 }, prices), 0n);
  });

  test("agrees with the token-price cost for token-only usage (seeded property)", () => {
    const random = seededRandom(12);
    for (let i = 0; i < 2_000; i++) {
      const input = random.bigint(100_000_000n);
      const output = random.bigint(100_000_000n);
      const fee = random.bigint(10_000n);
      const promptTokens = random.int(0, 2_000_000);
      const completionTokens = random.int(0, 200_000);
      assert.equal(
        costOfUnits(
          { input_tokens: promptTokens, output_tokens: completionTokens, requests: 1 },
          { input_tokens: input, output_tokens: output, requests: fee },
        ),
        costAtomic(
          { promptTokens, completionTokens },
          { inputPerMTokAtomic: input, outputPerMTokAtomic: output, fixedFeeAtomic: fee, maxOutputTokens: 1 },
        ),
      );
    }
  });

  test("is monotonic in every unit (seeded property)", () => {
    const random = seededRandom(1201);
    for (let i = 0; i < 3_000; i++) {
      const prices = randomPrices(random);
      const usage = randomUsage(random);
      const unit = random.pick(USAGE_UNITS);
      const more = { ...usage, [unit]: Number(usage[unit] ?? 0) + random.int(1, 10_000) };
      assert.ok(
        costOfUnits(more, prices) >= costOfUnits(usage, prices),
        `${unit} grew and the cost fell: ${JSON.stringify(usage)} at ${String(prices[unit])}`,
      );
    }
  });

  test("refuses negative or fractional counts, unknown units and negative prices", () => {
    for (const usage of [{ input_tokens: -1 }, { images: 1.5 }, { compute_ms: Number.NaN }, { tokens: 3 }]) {
      assert.throws(
        () => costOfUnits(usage as UnitUsage, { input_tokens: 1n }),
        (error) => isTollgateError(error, "TOLLGATE_INTERNAL"),
      );
    }
    assert.throws(
      () => costOfUnits({ images: 1 }, { images: -1n }),
      (error) => isTollgateError(error, "TOLLGATE_CONFIG_INVALID"),
    );
  });
});

describe("maxCostOfUnits", () => {
  test("no usage within the bound, however split between units, costs more than the maximum (seeded property)", () => {
    const random = seededRandom(1202);
    for (let i = 0; i < 3_000; i++) {
      const prices = randomPrices(random);
      const bound = {
        inputTokens: random.int(0, 200_000),
        outputTokens: random.int(0, 50_000),
        images: random.int(0, 10),
        computeMs: random.int(0, 600_000),
        outputBytes: random.int(0, 5_000_000),
      };
      const maxAtomic = maxCostOfUnits(bound, prices);
      const input = random.int(0, bound.inputTokens);
      const cached = random.int(0, bound.inputTokens - input);
      const written = random.int(0, bound.inputTokens - input - cached);
      const output = random.int(0, bound.outputTokens);
      const reasoning = random.int(0, bound.outputTokens - output);
      const usage: UnitUsage = {
        input_tokens: input,
        cached_input_tokens: cached,
        cache_write_input_tokens: written,
        output_tokens: output,
        reasoning_tokens: reasoning,
        images: random.int(0, bound.images),
        compute_ms: random.int(0, bound.computeMs),
        output_bytes: random.int(0, bound.outputBytes),
        requests: 1,
      };
      const cost = costOfUnits(usage, prices);
      assert.ok(cost <= maxAtomic, `cost ${cost} above the maximum ${maxAtomic}: ${JSON.stringify(usage)}`);
    }
  });
});

describe("resolveUnitPrices", () => {
  test("folds the shorthands in; cached input, cache writes and reasoning default to the input and output prices", () => {
    assert.deepEqual(resolveUnitPrices({ inputPrice: 500_000n, outputPrice: 1_500_000n, fixedFee: 0n }), {
      input_tokens: 500_000n,
      output_tokens: 1_500_000n,
      cached_input_tokens: 500_000n,
      cache_write_input_tokens: 500_000n,
      reasoning_tokens: 1_500_000n,
    });
    assert.deepEqual(
      resolveUnitPrices({
        inputPrice: 500_000n,
        prices: { cached_input_tokens: 50_000n, cache_write_input_tokens: 625_000n },
        fixedFee: 9n,
        pricePerSecond: 1_000n,
      }),
      {
        input_tokens: 500_000n,
        cached_input_tokens: 50_000n,
        cache_write_input_tokens: 625_000n,
        requests: 9n,
        compute_ms: 1_000n,
      },
    );
  });

  test("refuses a shorthand and its unit set together, naming both", () => {
    assert.throws(
      () => resolveUnitPrices({ inputPrice: 1n, prices: { input_tokens: 2n } }),
      (error) =>
        isTollgateError(error, "TOLLGATE_CONFIG_INVALID") &&
        error.shortMessage.includes("inputPrice") &&
        error.shortMessage.includes("prices.input_tokens"),
    );
  });
});

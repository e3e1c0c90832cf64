import {
  assertModelPrice,
  type ModelPrice,
  TOKENS_PER_PRICE_UNIT,
  type TokenUsage,
  tokenCount,
} from "./modelPrice.js";

/**
 * What `usage` costs at `price`, in atomic units: `ceil((prompt × in + completion × out) / 1M) + fee`.
 * Rounded up to the next atomic unit, so a seller is never paid less than the tokens cost.
 * @example
 * costAtomic({ promptTokens: 1000, completionTokens: 500 }, price) // 150000n/1M in, 600000n/1M out → 450n
 */
export function costAtomic(usage: TokenUsage, price: ModelPrice): bigint {
  assertModelPrice(price);
  const product =
    tokenCount(usage.promptTokens, "promptTokens") * price.inputPerMTokAtomic +
    tokenCount(usage.completionTokens, "completionTokens") * price.outputPerMTokAtomic;
  return ceilDiv(product, TOKENS_PER_PRICE_UNIT) + price.fixedFeeAtomic;
}

/**
 * What to settle for `usage` under an authorization of `maxAtomic`: the cost, capped at the
 * maximum (the `upto` rule: actual ≤ authorized). Whether to charge at all when the backend
 * produced nothing is the caller's decision.
 */
export function chargeAtomic(usage: TokenUsage, price: ModelPrice, maxAtomic: bigint): bigint {
  const cost = costAtomic(usage, price);
  const cap = maxAtomic < 0n ? 0n : maxAtomic;
  return cost < cap ? cost : cap;
}

function ceilDiv(numerator: bigint, denominator: bigint): bigint {
  return (numerator + denominator - 1n) / denominator;
}

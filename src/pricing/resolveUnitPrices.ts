import { TollgateError } from "../errors/index.js";
import { assertUnitPrices, type UnitPrices, type UsageUnit } from "./usageUnits.js";

export type ResolveUnitPricesParameters = {
  /** Per-unit prices as configured (atomic units per `UNIT_SCALE[unit]`). */
  prices?: Partial<Record<UsageUnit, bigint>> | undefined;
  /** Shorthand for `prices.input_tokens` (per 1M tokens). */
  inputPrice?: bigint | undefined;
  /** Shorthand for `prices.output_tokens` (per 1M tokens). */
  outputPrice?: bigint | undefined;
  /** Shorthand for `prices.requests` (per request). */
  fixedFee?: bigint | undefined;
  /** Shorthand for `prices.compute_ms`: per second of backend time. */
  pricePerSecond?: bigint | undefined;
};

/** Each shorthand key of a model's config and the unit it prices. */
export const PRICE_SHORTHANDS = [
  ["inputPrice", "input_tokens"],
  ["outputPrice", "output_tokens"],
  ["fixedFee", "requests"],
  ["pricePerSecond", "compute_ms"],
] as const;

/**
 * One model's price per unit, from its `prices` map and the shorthands. Cached input tokens (cache
 * reads) and cache writes cost what input tokens cost unless priced on their own, and reasoning
 * tokens what output tokens cost,
 * so reporting them apart never changes a charge by accident. A shorthand and its unit both set
 * is refused (which one would win is not obvious).
 * @example
 * resolveUnitPrices({ inputPrice: 500000n, outputPrice: 1500000n, prices: { cached_input_tokens: 50000n } })
 */
export function resolveUnitPrices(parameters: ResolveUnitPricesParameters): UnitPrices {
  const resolved: UnitPrices = { ...(parameters.prices ?? {}) };
  for (const [shorthand, unit] of PRICE_SHORTHANDS) {
    const value = parameters[shorthand];
    if (value === undefined || (shorthand === "fixedFee" && value === 0n)) continue;
    if (resolved[unit] !== undefined) {
      throw new TollgateError({
        code: "TOLLGATE_CONFIG_INVALID",
        shortMessage: `${shorthand} and prices.${unit} set the same price: keep one`,
        details: { field: shorthand },
      });
    }
    resolved[unit] = value;
  }
  if (resolved.cached_input_tokens === undefined && resolved.input_tokens !== undefined)
    resolved.cached_input_tokens = resolved.input_tokens;
  if (resolved.cache_write_input_tokens === undefined && resolved.input_tokens !== undefined)
    resolved.cache_write_input_tokens = resolved.input_tokens;
  if (resolved.reasoning_tokens === undefined && resolved.output_tokens !== undefined)
    resolved.reasoning_tokens = resolved.output_tokens;
  assertUnitPrices(resolved);
  return resolved;
}

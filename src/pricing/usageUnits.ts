import { TollgateError } from "../errors/index.js";
import { type FormatMoneyOptions, formatMoney } from "./money.js";

/**
 * The units inference is sold in. Usage and prices are maps over them; a price is quoted per
 * `UNIT_SCALE[unit]` units (per 1M tokens, per image, per second of compute, per 1M bytes, per 1M
 * characters of input text, per second of input audio, per request).
 */
export const USAGE_UNITS = [
  "input_tokens",
  "cached_input_tokens",
  "cache_write_input_tokens",
  "output_tokens",
  "reasoning_tokens",
  "images",
  "compute_ms",
  "output_bytes",
  "input_characters",
  "input_audio_seconds",
  "requests",
] as const;

export type UsageUnit = (typeof USAGE_UNITS)[number];

/** How many of a unit one price covers: prices stay whole atomic units even at fractions of a cent per token. */
export const UNIT_SCALE: Readonly<Record<UsageUnit, bigint>> = {
  input_tokens: 1_000_000n,
  cached_input_tokens: 1_000_000n,
  cache_write_input_tokens: 1_000_000n,
  output_tokens: 1_000_000n,
  reasoning_tokens: 1_000_000n,
  images: 1n,
  compute_ms: 1_000n,
  output_bytes: 1_000_000n,
  input_characters: 1_000_000n,
  // Per second, not per minute: a receipt states each price per million units, which 60 does not divide.
  input_audio_seconds: 1n,
  requests: 1n,
};

/** The common denominator of every scale: the whole cost is rounded up once, not per unit. */
const DENOMINATOR = 1_000_000n;

/** What one request used, per unit (absent = 0). */
export type UnitUsage = Partial<Record<UsageUnit, number | bigint>>;

/** Atomic units per `UNIT_SCALE[unit]` of each unit (absent = free). */
export type UnitPrices = Partial<Record<UsageUnit, bigint>>;

/** True for a name in `USAGE_UNITS`. */
export function isUsageUnit(name: string): name is UsageUnit {
  return (USAGE_UNITS as readonly string[]).includes(name);
}

function unitCount(value: number | bigint, unit: string): bigint {
  if (typeof value === "bigint" ? value >= 0n : Number.isSafeInteger(value) && value >= 0)
    return BigInt(value);
  throw new TollgateError({
    code: "TOLLGATE_INTERNAL",
    shortMessage: `usage ${unit} must be a non-negative integer, got ${String(value)}`,
    details: { field: unit, value: String(value) },
  });
}

/** Refuses a price map with an unknown unit or a negative price. */
export function assertUnitPrices(prices: UnitPrices): void {
  for (const [unit, price] of Object.entries(prices)) {
    if (!isUsageUnit(unit) || typeof price !== "bigint" || price < 0n) {
      throw new TollgateError({
        code: "TOLLGATE_CONFIG_INVALID",
        shortMessage: isUsageUnit(unit)
          ? `price of ${unit} must be a non-negative amount, got ${String(price)}`
          : `unknown unit ${unit}; units are ${USAGE_UNITS.join(", ")}`,
        details: { unit },
      });
    }
  }
}

/**
 * What `usage` costs at `prices`, in atomic units: `ceil(Σ usage[u] × prices[u] / scale[u])`,
 * rounded up once over the whole sum, so a seller is never paid less than the usage costs and
 * a buyer never pays more than one atomic unit above it.
 * @example
 * costOfUnits({ input_tokens: 1000, output_tokens: 500, requests: 1 }, { input_tokens: 150000n, output_tokens: 600000n }) // 450n
 */
export function costOfUnits(usage: UnitUsage, prices: UnitPrices): bigint {
  assertUnitPrices(prices);
  let numerator = 0n;
  for (const [unit, used] of Object.entries(usage)) {
    if (!isUsageUnit(unit)) {
      throw new TollgateError({
        code: "TOLLGATE_INTERNAL",
        shortMessage: `unknown usage unit ${unit}; units are ${USAGE_UNITS.join(", ")}`,
        details: { field: unit },
      });
    }
    if (used === undefined) continue;
    const count = unitCount(used, unit);
    const price = prices[unit];
    if (price !== undefined) numerator += count * price * (DENOMINATOR / UNIT_SCALE[unit]);
  }
  return (numerator + DENOMINATOR - 1n) / DENOMINATOR;
}

/**
 * A usage map with plain numbers and no zero entries (for receipts, the ledger and JSON):
 * refuses counts that are not safe integers.
 */
export function compactUsage(usage: UnitUsage): Partial<Record<UsageUnit, number>> {
  const out: Partial<Record<UsageUnit, number>> = {};
  for (const unit of USAGE_UNITS) {
    const used = usage[unit];
    if (used === undefined) continue;
    const count = unitCount(used, unit);
    if (count > BigInt(Number.MAX_SAFE_INTEGER)) unitCount(Number(count) + 0.5, unit);
    if (count > 0n) out[unit] = Number(count);
  }
  return out;
}

/** A price map as decimal strings of atomic units (for JSON). */
export function unitPricesToStrings(prices: UnitPrices): Partial<Record<UsageUnit, string>> {
  const out: Partial<Record<UsageUnit, string>> = {};
  for (const unit of USAGE_UNITS) {
    const price = prices[unit];
    if (price !== undefined) out[unit] = price.toString();
  }
  return out;
}

/** What one price of each unit buys, in words (`$1.50 / 1M output tokens`, `$0.04 / image`). */
const UNIT_PRICE_LABEL: Readonly<Record<UsageUnit, string>> = {
  input_tokens: "1M input tokens",
  cached_input_tokens: "1M cached input tokens",
  cache_write_input_tokens: "1M cache-write input tokens",
  output_tokens: "1M output tokens",
  reasoning_tokens: "1M reasoning tokens",
  images: "image",
  compute_ms: "second of compute",
  output_bytes: "1M output bytes",
  input_characters: "1M input characters",
  input_audio_seconds: "second of input audio",
  requests: "request",
};

/**
 * A price map in words, every priced unit in `USAGE_UNITS` order; free units are left out. `options`
 * are `formatMoney`'s (the `decimals` of prices stated in finer units than the asset's atomic ones).
 * @example
 * describeUnitPrices({ input_tokens: 500_000n, output_tokens: 1_500_000n }) // "$0.50 / 1M input tokens, $1.50 / 1M output tokens"
 */
export function describeUnitPrices(prices: UnitPrices, options: FormatMoneyOptions = {}): string {
  const parts = USAGE_UNITS.flatMap((unit) => {
    const price = prices[unit];
    return price === undefined || price === 0n
      ? []
      : [`${formatMoney(price, options)} / ${UNIT_PRICE_LABEL[unit]}`];
  });
  return parts.length > 0 ? parts.join(", ") : "free";
}

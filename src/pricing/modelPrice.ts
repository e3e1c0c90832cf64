import { TollgateError } from "../errors/index.js";

/** Prices are quoted per this many tokens, so fractions of a cent per token stay exact. */
export const TOKENS_PER_PRICE_UNIT = 1_000_000n;

/** How one model is priced, in the asset's atomic units. */
export type ModelPrice = {
  /** Atomic units per 1M prompt tokens (`150000n` = $0.15 / 1M with USDC). */
  inputPerMTokAtomic: bigint;
  /** Atomic units per 1M completion tokens. */
  outputPerMTokAtomic: bigint;
  /** Added to every charge, whatever the usage. */
  fixedFeeAtomic: bigint;
  /** The most output tokens one request may ask for; also the default limit. */
  maxOutputTokens: number;
  /** The context window; when set, no prompt is priced above it (the backend would refuse it). */
  contextTokens?: number;
};

/** Token counts of one request, as a backend reports them or the gateway counts them. */
export type TokenUsage = {
  promptTokens: number | bigint;
  completionTokens: number | bigint;
};

/** A token count as a bigint; refuses negative, fractional or unsafe numbers. */
export function tokenCount(value: number | bigint, field: string): bigint {
  if (typeof value === "bigint" ? value >= 0n : Number.isSafeInteger(value) && value >= 0) {
    return BigInt(value);
  }
  throw new TollgateError({
    code: "TOLLGATE_INTERNAL",
    shortMessage: `${field} must be a non-negative integer token count, got ${String(value)}`,
    details: { field, value: String(value) },
  });
}

/** Refuses a price with negative amounts or a non-positive output limit. */
export function assertModelPrice(price: ModelPrice): void {
  const problems = [
    price.inputPerMTokAtomic < 0n && "inputPerMTokAtomic is negative",
    price.outputPerMTokAtomic < 0n && "outputPerMTokAtomic is negative",
    price.fixedFeeAtomic < 0n && "fixedFeeAtomic is negative",
    !(Number.isSafeInteger(price.maxOutputTokens) && price.maxOutputTokens > 0) &&
      "maxOutputTokens must be a positive integer",
    price.contextTokens !== undefined &&
      !(Number.isSafeInteger(price.contextTokens) && price.contextTokens > 0) &&
      "contextTokens must be a positive integer",
  ].filter((problem): problem is string => typeof problem === "string");
  if (problems.length > 0) {
    throw new TollgateError({
      code: "TOLLGATE_CONFIG_INVALID",
      shortMessage: `invalid model price: ${problems.join("; ")}`,
      details: { problems },
    });
  }
}

import { costAtomic } from "./costAtomic.js";
import { type ModelPrice, tokenCount } from "./modelPrice.js";

export type MaxAtomicForRequestParameters = {
  /** An upper bound on the prompt's tokens (see `promptTokenBound`). */
  promptTokenBound: number | bigint;
  /** The output limit that is authorized and sent to the backend (see `resolveOutputLimit`). */
  maxOutputTokens: number | bigint;
};

/**
 * The most a request can cost, which the buyer authorizes:
 * `ceil(promptBound × in + maxOutput × out) / 1M + fee`, with the prompt bound capped at the
 * model's context window when one is set.
 * @example
 * const maxAtomic = maxAtomicForRequest({ promptTokenBound: bound, maxOutputTokens: limit }, price);
 */
export function maxAtomicForRequest(parameters: MaxAtomicForRequestParameters, price: ModelPrice): bigint {
  let promptTokens = tokenCount(parameters.promptTokenBound, "promptTokenBound");
  if (price.contextTokens !== undefined && promptTokens > BigInt(price.contextTokens)) {
    promptTokens = BigInt(price.contextTokens);
  }
  const completionTokens = tokenCount(parameters.maxOutputTokens, "maxOutputTokens");
  return costAtomic({ promptTokens, completionTokens }, price);
}

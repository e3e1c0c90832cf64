import { z } from "zod";
import {
  completionCount,
  costAtomic,
  costOfUnits,
  isUsageUnit,
  type ModelPrice,
  maxAtomicForRequest,
  maxCostOfUnits,
  promptCacheControls,
  type TokenUsage,
  type UnitPrices,
  type UnitUsage,
} from "../pricing/index.js";
import type { PaymentRequirements } from "../protocol/index.js";
import {
  buyerPromptBound,
  type InferenceRequest,
  requestedImages,
  requestedInputCharacters,
} from "./inferenceRequest.js";

const atomicText = z.union([z.string().regex(/^[0-9]+$/), z.number().int().nonnegative()]).transform(BigInt);

/** The machine-readable prices a seller quotes in an upto offer's `extra.pricing`. */
const offerPricingSchema = z.looseObject({
  model: z.string().optional(),
  inputPerMTokAtomic: atomicText,
  outputPerMTokAtomic: atomicText.default(0n),
  fixedFeeAtomic: atomicText.default(0n),
  // 0 for the routes that generate no tokens (embeddings, images).
  maxOutputTokens: z.number().int().nonnegative().optional(),
  promptTokenBound: z.number().int().nonnegative().optional(),
  units: z.record(z.string(), atomicText).optional(),
});

/** A seller's quoted prices for one model, in atomic units per 1M tokens. */
export type QuotedPrice = {
  model?: string | undefined;
  inputPerMTokAtomic: bigint;
  outputPerMTokAtomic: bigint;
  fixedFeeAtomic: bigint;
  /** The output limit the seller priced (a 402's) or its model limit (`/v1/models`). */
  maxOutputTokens?: number | undefined;
  /** Price per unit (atomic units per `UNIT_SCALE[unit]`), when the seller quotes units. */
  units?: UnitPrices | undefined;
  /**
   * The longest a request may run (ms), as the buyer bounds it: the offer's `maxTimeoutSeconds`,
   * past which its authorization can no longer be settled. Bounds `compute_ms`.
   */
  timeBoundMs?: number | undefined;
};

/**
 * The prices an offer quotes in `extra.pricing`, or undefined when it quotes none (or garbage);
 * its `maxTimeoutSeconds` bounds how long the request may run.
 */
export function quotedPriceOf(
  offer: Pick<PaymentRequirements, "extra"> & { maxTimeoutSeconds?: number | undefined },
): QuotedPrice | undefined {
  const parsed = offerPricingSchema.safeParse(offer.extra?.pricing);
  if (!parsed.success) return undefined;
  const { model, inputPerMTokAtomic, outputPerMTokAtomic, fixedFeeAtomic, maxOutputTokens } = parsed.data;
  const units = unitPricesOf(parsed.data.units);
  const timeout = offer.maxTimeoutSeconds;
  const timeBoundMs =
    typeof timeout === "number" && Number.isSafeInteger(timeout) && timeout > 0 ? timeout * 1000 : undefined;
  return {
    model,
    inputPerMTokAtomic,
    outputPerMTokAtomic,
    fixedFeeAtomic,
    maxOutputTokens,
    units,
    timeBoundMs,
  };
}

/** Known units of a quoted price map (unknown units are ignored: they price nothing the buyer can check). */
export function unitPricesOf(units: Record<string, bigint> | undefined): UnitPrices | undefined {
  if (units === undefined) return undefined;
  const prices: UnitPrices = {};
  for (const [unit, price] of Object.entries(units)) if (isUsageUnit(unit)) prices[unit] = price;
  return prices;
}

/** What the buyer expects a request to cost at most: its own prompt bound and output limit × the prices. */
export type RequestEstimate = {
  promptTokenBound: number;
  /** The output limit of one completion. */
  outputTokens: number;
  /** How many completions the request generates (`n`; `max(n, best_of)` × prompts for completions). */
  completions: number;
  /** Images an image request asks for (`n`): no honest seller charges for more. */
  images?: number | undefined;
  /** Characters of a speech request's `input`: exactly what an honest seller charges for. */
  inputCharacters?: number | undefined;
  /** The most backend time (ms) a compute-priced request may be charged: the authorization's life. */
  computeMsBound?: number | undefined;
  /** The request asks for its prompt to be cached (Anthropic `cache_control`): only then can it owe cache writes. */
  promptCache?: boolean | undefined;
  /**
   * Every unit's bound at its dearest price, plus the fee (`ceil(bound × in + output × completions ×
   * out) / 1M + fee` for tokens; `+ images × image price`; `+ time bound × price per second`):
   * the maximum an honest seller asks.
   */
  expectedMaxAtomic: bigint;
};

/**
 * The buyer's own estimate of a request at quoted prices: the prompt bound it computes on the body
 * it sends and the output limit it asks for (the seller's limit when it asks for none, never above
 * it), times the completions it asks for, as the gateway's `quoteRequest` prices it. Undefined when
 * either cannot be known, or when `n` / `best_of` are not positive integers (the seller refuses those).
 */
export async function estimateRequest(
  request: InferenceRequest,
  price: QuotedPrice,
): Promise<RequestEstimate | undefined> {
  const bound = await buyerPromptBound(request);
  if (bound === undefined) return undefined;
  const completions = buyerCompletionCount(request);
  if (completions === undefined) return undefined;
  let outputTokens: number | undefined;
  if (completions === 0) outputTokens = 0;
  else if (request.requestedOutputTokens === undefined) outputTokens = price.maxOutputTokens;
  else if (price.maxOutputTokens === undefined) outputTokens = request.requestedOutputTokens;
  else outputTokens = Math.min(request.requestedOutputTokens, price.maxOutputTokens);
  if (outputTokens === undefined) return undefined;
  let images: number | undefined;
  if (request.kind === "image") {
    // The offer quotes the price of one image of the size asked for; without it nothing can be checked.
    images = requestedImages(request);
    if (images === undefined || price.units?.images === undefined) return undefined;
  }
  let inputCharacters: number | undefined;
  if (request.kind === "speech") {
    inputCharacters = requestedInputCharacters(request);
    if (inputCharacters === undefined) return undefined;
  }
  let computeMsBound: number | undefined;
  if (price.units?.compute_ms !== undefined) {
    computeMsBound = price.timeBoundMs;
    if (computeMsBound === undefined) return undefined;
  }
  const expectedMaxAtomic = price.units
    ? maxCostOfUnits(
        {
          inputTokens: bound,
          outputTokens: outputTokens * completions,
          ...(images !== undefined ? { images } : {}),
          ...(inputCharacters !== undefined ? { inputCharacters } : {}),
          ...(computeMsBound !== undefined ? { computeMs: computeMsBound } : {}),
        },
        price.units,
      )
    : maxAtomicForRequest(
        { promptTokenBound: bound, maxOutputTokens: outputTokens * completions },
        modelPrice(price),
      );
  const promptCache = request.kind === "messages" && promptCacheControls(request.body).length > 0;
  return {
    promptTokenBound: bound,
    outputTokens,
    completions,
    images,
    inputCharacters,
    computeMsBound,
    promptCache,
    expectedMaxAtomic,
  };
}

/** The most completion tokens an honest seller reports for the request: the limit × completions. */
export function maxCompletionTokensOf(
  estimate: Pick<RequestEstimate, "outputTokens" | "completions">,
): number {
  return estimate.outputTokens * estimate.completions;
}

function buyerCompletionCount(request: InferenceRequest): number | undefined {
  // An image's price is per image, a moderation's and a ranking's per input, speech's per character: none generates tokens.
  if (
    request.kind === "image" ||
    request.kind === "moderation" ||
    request.kind === "rerank" ||
    request.kind === "speech"
  )
    return 0;
  // A transcription's charge is its audio's seconds, which this buyer does not read.
  if (request.kind === "transcription") return undefined;
  // One message or response per request: neither API has `n`.
  if (request.kind === "messages" || request.kind === "responses") return 1;
  try {
    return completionCount(request.kind, request.body);
  } catch {
    return undefined;
  }
}

/** Usage as reported: token totals, and per unit when the seller itemizes it. */
export type ReportedUnitUsage = TokenUsage & { units?: Record<string, number> | undefined };

/**
 * What `usage` justifies at the quoted prices (the ceil rule of `costOfUnits`): per unit when
 * both the usage and the prices are itemized, otherwise the token totals at the token prices.
 * A unit the seller did not quote justifies nothing.
 */
export function justifiedChargeAtomic(usage: ReportedUnitUsage, price: QuotedPrice): bigint {
  if (usage.units && price.units) {
    const units: UnitUsage = {};
    for (const [unit, count] of Object.entries(usage.units))
      if (isUsageUnit(unit) && Number.isSafeInteger(count) && count >= 0) units[unit] = count;
    // A seller that quotes no price for cache writes (one that predates the unit) sells them as input.
    if (units.cache_write_input_tokens !== undefined && price.units.cache_write_input_tokens === undefined) {
      units.input_tokens = BigInt(units.input_tokens ?? 0) + BigInt(units.cache_write_input_tokens);
      delete units.cache_write_input_tokens;
    }
    return costOfUnits(units, price.units);
  }
  return costAtomic(usage, modelPrice(price));
}

/** Bounds of units other than tokens: images asked for, characters read, backend time the authorization allows, caching asked for. */
export type OtherUnitBounds = {
  images?: number | undefined;
  /** Characters of a speech request's input (none for any other request). */
  inputCharacters?: number | undefined;
  computeMs?: number | undefined;
  /** False: the request asked for no prompt caching, so cache writes are read as input tokens. */
  promptCache?: boolean | undefined;
};

/**
 * The reported usage held within the buyer's own bounds: prompt units (input, cached, cache writes) at
 * most the prompt bound, output units (output, then reasoning) at most the output bound, images
 * at most those asked for (none but for an image request), input characters at most the speech input's
 * (none for another request), `compute_ms` at most the time bound (none
 * where it is not priced), no output bytes, one request; cache writes a request
 * that asked for no caching is said to owe are read as input tokens.
 */
export function boundedUsage(
  usage: ReportedUnitUsage,
  promptTokenBound: number,
  outputTokenBound: number,
  others: OtherUnitBounds = {},
): ReportedUnitUsage {
  const bounded: ReportedUnitUsage = {
    promptTokens: Math.min(Number(usage.promptTokens), promptTokenBound),
    completionTokens: Math.min(Number(usage.completionTokens), outputTokenBound),
  };
  if (!usage.units) return bounded;
  const units = { ...usage.units };
  if (others.promptCache === false && units.cache_write_input_tokens !== undefined) {
    units.input_tokens = (units.input_tokens ?? 0) + units.cache_write_input_tokens;
    delete units.cache_write_input_tokens;
  }
  if (units.requests !== undefined) units.requests = Math.min(units.requests, 1);
  // The parts of one quantity, in this order, together at most its bound.
  const clamp = (parts: readonly string[], bound: number) => {
    let left = bound;
    for (const part of parts) {
      if (units[part] === undefined) continue;
      units[part] = Math.min(units[part], left);
      left -= units[part];
    }
  };
  clamp(["input_tokens", "cached_input_tokens", "cache_write_input_tokens"], promptTokenBound);
  clamp(["output_tokens", "reasoning_tokens"], outputTokenBound);
  // A unit the request cannot use is justified at none: images only for an image request, characters
  // only for a speech request, backend time only where it is priced, output bytes never (no route
  // meters them).
  if (units.images !== undefined) units.images = Math.min(units.images, others.images ?? 0);
  if (units.input_characters !== undefined)
    units.input_characters = Math.min(units.input_characters, others.inputCharacters ?? 0);
  if (units.compute_ms !== undefined) units.compute_ms = Math.min(units.compute_ms, others.computeMs ?? 0);
  if (units.output_bytes !== undefined) units.output_bytes = 0;
  return { ...bounded, units };
}

function modelPrice(price: QuotedPrice): ModelPrice {
  return {
    inputPerMTokAtomic: price.inputPerMTokAtomic,
    outputPerMTokAtomic: price.outputPerMTokAtomic,
    fixedFeeAtomic: price.fixedFeeAtomic,
    maxOutputTokens: price.maxOutputTokens ?? 1,
  };
}

/**
 * The first price the chosen offer asks above `listed` (the seller's own listing of the model), in words,
 * or undefined when it asks no more (or quotes no prices). `chosen.price` is what the buyer checks the
 * charge by: the offer's own prices, or those of the upto offer that prices a channel offer quoting none.
 * A unit the offer prices and the listing does not is held to what the listing charges it as (cached
 * input and cache writes as input, reasoning as output, requests as the fee), and any other at nothing.
 */
export function priceAboveListing(
  listed: QuotedPrice,
  chosen: { price: QuotedPrice | undefined },
): string | undefined {
  const quoted = chosen.price;
  if (quoted === undefined) return undefined;
  const perMTok = (atomic: bigint) => `${atomic} atomic units per 1M tokens`;
  if (quoted.inputPerMTokAtomic > listed.inputPerMTokAtomic)
    return `input ${perMTok(quoted.inputPerMTokAtomic)}, listed ${perMTok(listed.inputPerMTokAtomic)}`;
  if (quoted.outputPerMTokAtomic > listed.outputPerMTokAtomic)
    return `output ${perMTok(quoted.outputPerMTokAtomic)}, listed ${perMTok(listed.outputPerMTokAtomic)}`;
  if (quoted.fixedFeeAtomic > listed.fixedFeeAtomic)
    return `a fee of ${quoted.fixedFeeAtomic} atomic units a request, listed ${listed.fixedFeeAtomic}`;
  const listedUnits: Partial<Record<string, bigint>> = listed.units ?? {};
  const input = listedUnits.input_tokens ?? listed.inputPerMTokAtomic;
  const output = listedUnits.output_tokens ?? listed.outputPerMTokAtomic;
  const unlisted: Partial<Record<string, bigint>> = {
    input_tokens: input,
    cached_input_tokens: input,
    cache_write_input_tokens: input,
    output_tokens: output,
    reasoning_tokens: output,
    requests: listedUnits.requests ?? listed.fixedFeeAtomic,
  };
  for (const [unit, price] of Object.entries(quoted.units ?? {}) as Array<[string, bigint]>) {
    const listedPrice = listedUnits[unit] ?? unlisted[unit] ?? 0n;
    if (price > listedPrice)
      return `${unit} at ${price} atomic units, listed ${listedPrice}${listedUnits[unit] === undefined ? " (not itemized)" : ""}`;
  }
  return undefined;
}

/**
 * What an offer quoting no prices (`exact`, or a channel priced by no upto offer) asks above what the
 * seller's listed prices come to for `request` (its maximum at them), or undefined: such an offer is held
 * to the listing by its amount, so a seller listed by token prices cannot switch schemes to ask more.
 */
export async function amountAboveListing(
  listed: QuotedPrice,
  chosen: { price: QuotedPrice | undefined; askedAtomic: bigint; offer: { scheme: string } },
  request: InferenceRequest,
): Promise<string | undefined> {
  if (chosen.price !== undefined) return undefined;
  const estimate = await estimateRequest(request, listed);
  if (estimate === undefined || chosen.askedAtomic <= estimate.expectedMaxAtomic) return undefined;
  return `${chosen.offer.scheme} at ${chosen.askedAtomic} atomic units, above the ${estimate.expectedMaxAtomic} its listing comes to for this request`;
}

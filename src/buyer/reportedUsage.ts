import type { ReportedUsage } from "./BuyerEvent.js";
import type { InferenceKind } from "./inferenceRequest.js";

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);
const count = (value: unknown): number | undefined =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;

export type ReportedUsageOfParameters = {
  /** The API the answer is in (`chat` when the buyer could not read the request). */
  kind: InferenceKind | undefined;
  /** The answer's JSON body. */
  json: unknown;
  /** The buyer's own prompt bound: the prompt an image answer does not report is at most this. */
  promptTokenBound?: number | undefined;
};

/**
 * The usage a JSON answer reports, in the units the gateway charges in: cached prompt tokens
 * (`prompt_tokens_details.cached_tokens`, Anthropic's cache reads, Responses'
 * `input_tokens_details.cached_tokens`) and Anthropic's cache writes apart from the rest of the prompt, itemized reasoning apart
 * from the rest of the output, images counted from `data`, one request. Undefined when the answer
 * reports no usage the buyer can read.
 */
export function reportedUsageOf({
  kind,
  json,
  promptTokenBound,
}: ReportedUsageOfParameters): ReportedUsage | undefined {
  if (!isObject(json)) return undefined;
  const usage = isObject(json.usage) ? json.usage : undefined;
  if (kind === "image") {
    const images = Array.isArray(json.data) ? json.data.filter(isObject).length : undefined;
    if (images === undefined) return undefined;
    // Image APIs report the prompt in their own words, or not at all: at most the buyer's bound.
    const prompt = count(usage?.input_tokens) ?? promptTokenBound;
    if (prompt === undefined) return undefined;
    return {
      promptTokens: prompt,
      completionTokens: 0,
      units: { input_tokens: prompt, images, requests: 1 },
    };
  }
  if (!usage) return undefined;
  let prompt: number | undefined;
  let cached = 0;
  let cacheWrite = 0;
  let completion: number | undefined;
  let reasoning = 0;
  if (kind === "messages") {
    const input = count(usage.input_tokens);
    const read = count(usage.cache_read_input_tokens) ?? 0;
    const written = count(usage.cache_creation_input_tokens) ?? 0;
    prompt = input === undefined ? undefined : input + read + written;
    cached = read;
    cacheWrite = written;
    completion = count(usage.output_tokens);
  } else if (kind === "responses") {
    prompt = count(usage.input_tokens);
    completion = count(usage.output_tokens);
    cached =
      count((usage.input_tokens_details as { cached_tokens?: unknown } | undefined)?.cached_tokens) ?? 0;
    reasoning =
      count((usage.output_tokens_details as { reasoning_tokens?: unknown } | undefined)?.reasoning_tokens) ??
      0;
  } else {
    prompt = count(usage.prompt_tokens);
    completion = usage.completion_tokens === undefined ? 0 : count(usage.completion_tokens);
    cached =
      count((usage.prompt_tokens_details as { cached_tokens?: unknown } | undefined)?.cached_tokens) ?? 0;
    reasoning =
      count(
        (usage.completion_tokens_details as { reasoning_tokens?: unknown } | undefined)?.reasoning_tokens,
      ) ?? 0;
  }
  if (prompt === undefined || completion === undefined) return undefined;
  cached = Math.min(cached, prompt);
  cacheWrite = Math.min(cacheWrite, prompt - cached);
  reasoning = Math.min(reasoning, completion);
  return {
    promptTokens: prompt,
    completionTokens: completion,
    units: {
      input_tokens: prompt - cached - cacheWrite,
      ...(cached > 0 ? { cached_input_tokens: cached } : {}),
      ...(cacheWrite > 0 ? { cache_write_input_tokens: cacheWrite } : {}),
      output_tokens: completion - reasoning,
      ...(reasoning > 0 ? { reasoning_tokens: reasoning } : {}),
      requests: 1,
    },
  };
}

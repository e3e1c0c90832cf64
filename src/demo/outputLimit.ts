import type { OutputLimitField } from "./fakeServerTypes.js";
import type { GenerationRequest } from "./openAiRequests.js";

// The output limit of a request in every dialect a backend may read: OpenAI's `max_tokens` and
// `max_completion_tokens`, llama.cpp's `n_predict`, Ollama's `num_predict` (top level or in `options`).
// llama.cpp and Ollama take -1 for "no limit", so only positive numbers limit.

/** Every output-limit field, in the order a reader would try them. */
export const outputLimitFields: readonly OutputLimitField[] = [
  "max_tokens",
  "max_completion_tokens",
  "n_predict",
  "num_predict",
  "options.num_predict",
];

/**
 * The output limit the request sets: the smallest positive limit among all dialects, or only the
 * one `field` when given (as a server that knows one dialect reads it); undefined when none is set.
 *
 * @example
 * const body = { model, prompt, n_predict: 600, max_tokens: 5 };
 * requestedMaxTokens({ endpoint: "completion", body }); // 5
 * requestedMaxTokens({ endpoint: "completion", body }, "n_predict"); // 600
 */
export function requestedMaxTokens(request: GenerationRequest, field?: OutputLimitField): number | undefined {
  const given = (field === undefined ? outputLimitFields : [field])
    .map((name) => limitIn(request.body, name))
    .filter((limit): limit is number => limit !== undefined);
  return given.length === 0 ? undefined : Math.min(...given);
}

function limitIn(body: Record<string, unknown>, field: OutputLimitField): number | undefined {
  const options = body.options;
  const value =
    field === "options.num_predict"
      ? typeof options === "object" && options !== null
        ? (options as { num_predict?: unknown }).num_predict
        : undefined
      : body[field];
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? Math.floor(value) : undefined;
}

import { TollgateError } from "../../errors/index.js";
import { imageTokenBound } from "../../pricing/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import type { RouteRequest } from "./RouteAdapter.js";

/**
 * How the pricing reads a model: its tokenizer (configured, or known from its id), its image tokens,
 * and what one inline document may count as (its context window, when configured).
 */
export function pricingOf(model: ModelConfig): {
  model: string;
  imageTokens: number;
  documentTokens?: number;
} {
  return {
    model: model.tokenizer ?? model.id,
    imageTokens: imageTokenBound(model.id),
    ...(model.contextTokens !== undefined ? { documentTokens: model.contextTokens } : {}),
  };
}

/** Sampling parameters of OpenAI's generation APIs, numbers all, plus those vLLM and llama.cpp document. */
export const SAMPLING_NUMBERS = [
  "temperature",
  "top_p",
  "presence_penalty",
  "frequency_penalty",
  "seed",
  "top_k",
  "min_p",
  "repetition_penalty",
] as const;

/** Fields every generation route forwards as they are: sampling, stop sequences, biases, the end user. */
export const GENERATION_FIELDS = [...SAMPLING_NUMBERS, "stop", "logit_bias", "logprobs", "user"] as const;

/** A 400 that names the field a person must change. */
export function invalidField(field: string, problem: string): TollgateError {
  return new TollgateError({
    code: "TOLLGATE_REQUEST_INVALID",
    shortMessage: `${field} ${problem}`,
    details: { field },
  });
}

/**
 * The allowed fields of `body`. A field the route forwards but cannot price would let a buyer
 * be served for what it did not pay, so an unknown field is refused by name; `ignored` fields
 * are accepted and not forwarded (they change nothing the backend bills).
 */
export function pickAllowedFields(
  body: Record<string, unknown>,
  allowed: ReadonlySet<string>,
  ignored: ReadonlySet<string>,
  route: string,
): Record<string, unknown> {
  const fields: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(body)) {
    if (allowed.has(key)) {
      if (value !== undefined) fields[key] = value;
    } else if (!ignored.has(key)) {
      throw invalidField(
        key,
        `is not supported on ${route} by this gateway: it cannot be priced before the request runs; remove it`,
      );
    }
  }
  return fields;
}

/** `stream`, read as a boolean: a backend may stream for "true" or 1, so anything else is refused. */
export function readStream(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value === "boolean") return value;
  throw invalidField("stream", `must be true or false, got ${JSON.stringify(value)}`);
}

/** `stream_options.include_usage`, strictly boolean. */
export function readIncludeUsage(value: unknown): boolean {
  if (value === undefined || value === null) return false;
  if (typeof value !== "object" || Array.isArray(value))
    throw invalidField("stream_options", "must be an object");
  const options = value as Record<string, unknown>;
  for (const key of Object.keys(options)) {
    if (key !== "include_usage")
      throw invalidField(`stream_options.${key}`, "is not supported by this gateway");
  }
  const include = options.include_usage;
  if (include === undefined || include === null) return false;
  if (typeof include !== "boolean")
    throw invalidField("stream_options.include_usage", "must be true or false");
  return include;
}

/** A positive integer field, or 1 when absent. */
export function readCount(value: unknown, field: string, max: number): number {
  if (value === undefined || value === null) return 1;
  if (typeof value === "number" && Number.isSafeInteger(value) && value > 0 && value <= max) return value;
  throw invalidField(field, `must be an integer from 1 to ${max}`);
}

/** A field that must be a number when present (sampling parameters). */
export function readNumbers(fields: Record<string, unknown>, names: readonly string[]): void {
  for (const name of names) {
    const value = fields[name];
    if (value !== undefined && value !== null && (typeof value !== "number" || !Number.isFinite(value)))
      throw invalidField(name, "must be a number");
  }
}

/**
 * Refuses `tools` other than those the buyer declares itself (`type` absent or one of `declared`).
 * A tool the provider runs (web or file search, code execution, image generation, MCP) carries a
 * fee and pulls in input the quote never saw; one it defines for the client to run (a shell, an
 * editor, a computer) adds a hidden prompt or output items this gateway does not meter. Either would
 * be served below its cost.
 */
export function refuseUndeclaredTools(tools: unknown, declared: readonly string[], kinds: string): void {
  if (tools === undefined || tools === null) return;
  if (!Array.isArray(tools)) throw invalidField("tools", "must be an array");
  tools.forEach((tool, index) => {
    if (typeof tool !== "object" || tool === null || Array.isArray(tool))
      throw invalidField(`tools[${index}]`, "must be an object");
    const type = (tool as { type?: unknown }).type;
    if (type === undefined || (typeof type === "string" && declared.includes(type))) return;
    throw invalidField(
      `tools[${index}].type`,
      `${JSON.stringify(type)} is not accepted: the provider runs or defines this tool, adding fees, prompt or output this gateway cannot price; declare it as ${kinds} instead`,
    );
  });
}

/** A request answered whole, generating no tokens (embeddings, moderations, rankings, images): never streamed. */
export function wholeAnswerRequest(
  fields: Record<string, unknown>,
  extra: Pick<RouteRequest, "images" | "promptMayShrink" | "inputCharacters" | "inputAudioSeconds"> = {},
): RouteRequest {
  return {
    fields,
    stream: false,
    includeUsage: false,
    requestedOutputTokens: undefined,
    choices: 0,
    ...extra,
  };
}

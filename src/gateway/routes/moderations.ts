import type { PromptKind } from "../../pricing/index.js";
import type { ModelConfig } from "../gatewayConfig.js";
import type { OutputReading, RouteAdapter, RouteRequest } from "./RouteAdapter.js";
import { errorOf, refuseStreamedAnswer } from "./readChoices.js";
import { invalidField, pickAllowedFields, wholeAnswerRequest } from "./requestFields.js";

// The OpenAI moderation API: https://platform.openai.com/docs/api-reference/moderations

const ALLOWED = new Set(["model", "input"]);
const IGNORED = new Set<string>();

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** Checks one multimodal item: `{ type: "text", text }` or `{ type: "image_url", image_url: { url } }`. */
function checkItem(item: unknown, field: string): void {
  if (typeof item === "string") return;
  if (!isObject(item)) throw invalidField(field, "must be a string or a text or image_url item");
  if (item.type === "text" && typeof item.text === "string") return;
  if (item.type === "image_url" && isObject(item.image_url) && typeof item.image_url.url === "string") return;
  throw invalidField(field, 'must be { type: "text", text } or { type: "image_url", image_url: { url } }');
}

/**
 * The prompt as the tokenizer reads it: strings as an embeddings `input`; multimodal items as the
 * content parts of one chat message, so that an image counts as an image, not as its bytes.
 */
function promptOf(request: RouteRequest): { kind: PromptKind; body: Record<string, unknown> } {
  const input = request.fields.input;
  if (Array.isArray(input) && input.some(isObject)) {
    const content = input.map((item) => (typeof item === "string" ? { type: "text", text: item } : item));
    return { kind: "chat", body: { messages: [{ role: "user", content }] } };
  }
  return { kind: "embedding", body: { input } };
}

/** A moderation result the buyer can use: an object that says whether its input is flagged. */
const isResult = (item: unknown) => isObject(item) && typeof item.flagged === "boolean";

/** The results of an answer the buyer can use. */
function resultsOf(json: unknown): number {
  const results = (json as { results?: unknown } | null)?.results;
  return Array.isArray(results) ? results.filter(isResult).length : 0;
}

function readModeration(json: unknown): OutputReading {
  const error = errorOf(json);
  const delivered = error === undefined && resultsOf(json) > 0;
  return {
    pieces: [],
    delivered,
    usage: (json as { usage?: unknown } | null)?.usage,
    error: error ?? (delivered ? undefined : "the backend answered no moderation results"),
  };
}

/**
 * `POST /v1/moderations`: input tokens (and a per-request fee) only, never streamed. Moderation
 * backends usually report no usage; the input is then counted with the model's tokenizer.
 */
export const moderations: RouteAdapter = {
  kind: "moderation",
  path: "/moderations",
  canStream: false,
  outputTokens: false,
  promptField: "input",
  chunkObject: "moderation",
  emptyChunkChoice: {},

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/moderations");
    const input = fields.input;
    if (typeof input !== "string" && !(Array.isArray(input) && input.length > 0))
      throw invalidField("input", "must be a string, or a non-empty array of strings or multimodal items");
    if (Array.isArray(input)) for (const [index, item] of input.entries()) checkItem(item, `input[${index}]`);
    if (fields.stream !== undefined)
      throw invalidField("stream", "is not supported: moderations cannot stream");
    return wholeAnswerRequest(fields);
  },

  prompt(request) {
    return promptOf(request);
  },

  backendBody(request, model: ModelConfig) {
    return { ...request.fields, model: model.backend.model ?? model.id };
  },

  // A backend that streams its answer anyway is not charged: its results cannot be checked whole first.
  readChunk: refuseStreamedAnswer("moderation results"),
  readAnswer: readModeration,

  // Every input is charged: an answer with results for some of them only is a failed request.
  missingResults(json, request) {
    const got = resultsOf(json);
    const input = request.fields.input;
    // Strings are one input each; multimodal items are the parts of one.
    const asked = Array.isArray(input) && !input.some(isObject) ? input.length : 1;
    return got < asked ? `the backend answered ${got} moderation results for ${asked} inputs` : undefined;
  },
};

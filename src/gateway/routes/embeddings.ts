import type { ModelConfig } from "../gatewayConfig.js";
import type { OutputReading, RouteAdapter } from "./RouteAdapter.js";
import { errorOf, refuseStreamedAnswer } from "./readChoices.js";
import { invalidField, pickAllowedFields, readNumbers, wholeAnswerRequest } from "./requestFields.js";

const ALLOWED = new Set(["model", "input", "encoding_format", "dimensions", "user"]);
const IGNORED = new Set<string>();

/** An embedding the buyer can use: a vector of numbers, or its base64 (`encoding_format: "base64"`). */
function isEmbedding(item: unknown): boolean {
  if (typeof item !== "object" || item === null) return false;
  const vector = (item as { embedding?: unknown }).embedding;
  if (typeof vector === "string") return vector.length > 0;
  return Array.isArray(vector) && vector.length > 0 && vector.every((value) => typeof value === "number");
}

/**
 * The inputs (of `asked`) an answer holds a usable embedding for: the distinct `index`es of its
 * embeddings (an entry without one stands at its position), so one vector repeated is one input's.
 */
function inputsAnswered(data: unknown, asked: number): number {
  if (!Array.isArray(data)) return 0;
  const answered = new Set<number>();
  data.forEach((item, position) => {
    if (!isEmbedding(item)) return;
    const index = (item as { index?: unknown }).index;
    const input = Number.isSafeInteger(index) ? (index as number) : position;
    if (input >= 0 && input < asked) answered.add(input);
  });
  return answered.size;
}

function readEmbeddings(json: unknown): OutputReading {
  const error = errorOf(json);
  const data = (json as { data?: unknown } | null)?.data;
  const delivered = error === undefined && Array.isArray(data) && data.some(isEmbedding);
  return {
    pieces: [],
    delivered,
    usage: (json as { usage?: unknown } | null)?.usage,
    error: error ?? (delivered ? undefined : "the backend answered no embeddings"),
  };
}

/** Inputs of an embeddings request: a string or one token-id array is one; an array of strings or of id arrays is many. */
function inputCount(input: unknown): number {
  if (!Array.isArray(input) || input.length === 0) return 1;
  return input.every((item) => typeof item === "number") ? 1 : input.length;
}

/** `POST /v1/embeddings`: input tokens only, never streamed. */
export const embeddings: RouteAdapter = {
  kind: "embedding",
  path: "/embeddings",
  canStream: false,
  outputTokens: false,
  promptField: "input",
  chunkObject: "embedding",
  emptyChunkChoice: {},

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/embeddings");
    readNumbers(fields, ["dimensions"]);
    if (fields.stream !== undefined)
      throw invalidField("stream", "is not supported: embeddings cannot stream");
    return wholeAnswerRequest(fields);
  },

  prompt(request) {
    return { kind: "embedding", body: { input: request.fields.input } };
  },

  backendBody(request, model: ModelConfig) {
    return { ...request.fields, model: model.backend.model ?? model.id };
  },

  // A backend that streams its answer anyway is not charged: its results cannot be checked whole first.
  readChunk: refuseStreamedAnswer("embeddings"),
  readAnswer: readEmbeddings,

  // Every input is charged: an answer with embeddings for some of them only is a failed request.
  missingResults(json, request) {
    const asked = inputCount(request.fields.input);
    const got = inputsAnswered((json as { data?: unknown } | null)?.data, asked);
    return got < asked ? `the backend answered ${got} embeddings for ${asked} inputs` : undefined;
  },
};

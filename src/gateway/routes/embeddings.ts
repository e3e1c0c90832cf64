import type { ModelConfig } from "../gatewayConfig.js";
import type { OutputReading, RouteAdapter } from "./RouteAdapter.js";
import { errorOf, refuseStreamedAnswer } from "./readChoices.js";
import { invalidField, pickAllowedFields, readNumbers } from "./requestFields.js";

const ALLOWED = new Set(["model", "input", "encoding_format", "dimensions", "user"]);
const IGNORED = new Set<string>();

function readEmbeddings(json: unknown): OutputReading {
  const error = errorOf(json);
  const data = (json as { data?: unknown } | null)?.data;
  const delivered = error === undefined && Array.isArray(data) && data.length > 0;
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
    return { fields, stream: false, includeUsage: false, requestedOutputTokens: undefined, choices: 0 };
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
    const data = (json as { data?: unknown } | null)?.data;
    const got = Array.isArray(data) ? data.length : 0;
    const asked = inputCount(request.fields.input);
    return got < asked ? `the backend answered ${got} embeddings for ${asked} inputs` : undefined;
  },
};

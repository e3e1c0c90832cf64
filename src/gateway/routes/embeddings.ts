import type { ModelConfig } from "../gatewayConfig.js";
import type { OutputReading, RouteAdapter } from "./RouteAdapter.js";
import { errorOf } from "./readChoices.js";
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

  readChunk: readEmbeddings,
  readAnswer: readEmbeddings,
};

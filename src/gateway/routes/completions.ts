import type { ModelConfig } from "../gatewayConfig.js";
import type { RouteAdapter, RouteRequest } from "./RouteAdapter.js";
import { readChoices } from "./readChoices.js";
import {
  GENERATION_FIELDS,
  invalidField,
  pickAllowedFields,
  readCount,
  readIncludeUsage,
  readNumbers,
  readStream,
  SAMPLING_NUMBERS,
} from "./requestFields.js";

const ALLOWED = new Set<string>([
  ...GENERATION_FIELDS,
  "model",
  "prompt",
  "suffix",
  "stream",
  "stream_options",
  "max_tokens",
  "n",
  "best_of",
  "echo",
]);
const IGNORED = new Set(["store", "metadata"]);
const NUMBERS = [...SAMPLING_NUMBERS, "logprobs"];

/** A string or one token-id array is one prompt; an array of strings or of id arrays is many. */
function promptCount(prompt: unknown): number {
  if (!Array.isArray(prompt) || prompt.length === 0) return 1;
  return prompt.every((item) => typeof item === "number") ? 1 : prompt.length;
}

/** `POST /v1/completions`, the legacy OpenAI Completions API. */
export const completions: RouteAdapter = {
  kind: "completion",
  path: "/completions",
  canStream: true,
  outputTokens: true,
  forwardedFields: ALLOWED,
  promptField: "prompt",
  chunkObject: "text_completion",
  emptyChunkChoice: { index: 0, text: "", finish_reason: null },

  readRequest(body) {
    const fields = pickAllowedFields(body, ALLOWED, IGNORED, "/v1/completions");
    readNumbers(fields, NUMBERS);
    // echo returns the prompt as output text: it would be billed and limited as output.
    if (fields.echo !== undefined && fields.echo !== null && fields.echo !== false)
      throw invalidField("echo", "is not supported by this gateway; the prompt you sent is yours already");
    if (fields.suffix !== undefined && fields.suffix !== null && typeof fields.suffix !== "string")
      throw invalidField("suffix", "must be a string");
    const stream = readStream(fields.stream);
    const n = readCount(fields.n, "n", 128);
    const bestOf = readCount(fields.best_of, "best_of", 128);
    if (bestOf < n) throw invalidField("best_of", "must be at least n");
    return {
      fields,
      stream,
      includeUsage: stream && readIncludeUsage(fields.stream_options),
      requestedOutputTokens: fields.max_tokens,
      // best_of candidates are all generated (and billed) even though n are returned.
      choices: Math.max(n, bestOf) * promptCount(fields.prompt),
      // The candidates not returned are output nobody sees: the backend's count is believed for them,
      // within the authorized output (which prices every candidate).
      ...(bestOf > n ? { hiddenOutputTokens: Number.MAX_SAFE_INTEGER } : {}),
    };
  },

  prompt(request) {
    const { prompt, suffix } = request.fields;
    return { kind: "completion", body: { prompt, suffix } };
  },

  backendBody(request: RouteRequest, model: ModelConfig, outputLimit: number) {
    const body: Record<string, unknown> = {
      ...request.fields,
      model: model.backend.model ?? model.id,
      max_tokens: outputLimit,
    };
    for (const field of model.backend.outputLimitFields) body[field] = outputLimit;
    body.stream = request.stream;
    if (request.stream) body.stream_options = { include_usage: true };
    else delete body.stream_options;
    return body;
  },

  readChunk: readChoices,
  readAnswer: readChoices,
};

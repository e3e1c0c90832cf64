// Builders for the response objects an OpenAI-compatible server sends, shaped as OpenAI sends them
// (https://platform.openai.com/docs/api-reference/chat/object and …/chat-streaming).

/** Usage in the OpenAI wire format. */
export type WireUsage = { prompt_tokens: number; completion_tokens: number; total_tokens: number };

/** Which generation endpoint a response belongs to. */
export type GenerationEndpoint = "chat" | "completion";

/** What every object of one response shares. */
export type ResponseIdentity = { id: string; created: number; model: string };

export function wireUsage(promptTokens: number, completionTokens: number): WireUsage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

/** A whole (non-streaming) response; `usage` is left out when undefined. */
export function wireResponse(parameters: {
  endpoint: GenerationEndpoint;
  identity: ResponseIdentity;
  text: string;
  finishReason: string;
  usage: WireUsage | undefined;
}): Record<string, unknown> {
  const { endpoint, identity, text, finishReason, usage } = parameters;
  const choice =
    endpoint === "chat"
      ? {
          index: 0,
          message: { role: "assistant", content: text, refusal: null },
          logprobs: null,
          finish_reason: finishReason,
        }
      : { index: 0, text, logprobs: null, finish_reason: finishReason };
  return {
    ...identity,
    object: endpoint === "chat" ? "chat.completion" : "text_completion",
    choices: [choice],
    ...(usage === undefined ? {} : { usage }),
  };
}

/**
 * One streamed chunk carrying one token of text, or (with `finishReason`) the closing chunk.
 * When the client asked for usage, OpenAI puts `usage: null` on every chunk but the last.
 */
export function wireChunk(parameters: {
  endpoint: GenerationEndpoint;
  identity: ResponseIdentity;
  /** One token's text; empty on the closing chunk. */
  text: string;
  /** The first chunk of a chat stream also carries `role: "assistant"`. */
  first: boolean;
  /** Set on the closing chunk only. */
  finishReason: string | null;
  usageRequested: boolean;
}): Record<string, unknown> {
  const { endpoint, identity, text, first, finishReason, usageRequested } = parameters;
  const delta = finishReason !== null ? {} : first ? { role: "assistant", content: text } : { content: text };
  const choice =
    endpoint === "chat"
      ? { index: 0, delta, logprobs: null, finish_reason: finishReason }
      : { index: 0, text, logprobs: null, finish_reason: finishReason };
  return {
    ...identity,
    object: endpoint === "chat" ? "chat.completion.chunk" : "text_completion",
    choices: [choice],
    ...(usageRequested ? { usage: null } : {}),
  };
}

/** The final chunk of a stream whose client set `stream_options.include_usage`. */
export function wireUsageChunk(
  endpoint: GenerationEndpoint,
  identity: ResponseIdentity,
  usage: WireUsage,
): Record<string, unknown> {
  return {
    ...identity,
    object: endpoint === "chat" ? "chat.completion.chunk" : "text_completion",
    choices: [],
    usage,
  };
}

/** A /embeddings response; vectors are base64 little-endian float32 when asked for `base64`. */
export function wireEmbeddings(
  model: string,
  vectors: number[][],
  encoding: "float" | "base64",
  promptTokens: number,
): Record<string, unknown> {
  return {
    object: "list",
    data: vectors.map((vector, index) => ({
      object: "embedding",
      index,
      embedding:
        encoding === "base64" ? Buffer.from(new Float32Array(vector).buffer).toString("base64") : vector,
    })),
    model,
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

/** GET /models. */
export function wireModelList(models: readonly string[], created: number): Record<string, unknown> {
  return {
    object: "list",
    data: models.map((id) => ({ id, object: "model", created, owned_by: "tollgate" })),
  };
}

/** An error body: `{ error: { message, type, param, code } }`. */
export function wireError(
  message: string,
  type: string,
  code: string | null = null,
): Record<string, unknown> {
  return { error: { message, type, param: null, code } };
}

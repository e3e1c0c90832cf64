// Builders for the response objects an OpenAI-compatible server sends, shaped as OpenAI sends them
// (https://platform.openai.com/docs/api-reference/chat/object and …/chat-streaming).

/** Usage in the OpenAI wire format; a dishonest server may leave `prompt_tokens` and `total_tokens` out. */
export type WireUsage = { prompt_tokens?: number; completion_tokens: number; total_tokens?: number };

/** Which generation endpoint a response belongs to. */
export type GenerationEndpoint = "chat" | "completion";

/** What every object of one response shares. */
export type ResponseIdentity = { id: string; created: number; model: string };

/** Honest usage: prompt, completion and their total. */
export function wireUsage(promptTokens: number, completionTokens: number): WireUsage {
  return {
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    total_tokens: promptTokens + completionTokens,
  };
}

/** One choice of a whole response. */
export type WireChoice = { index: number; text: string; finishReason: string };

/** A whole (non-streaming) response; `usage` is left out when undefined. */
export function wireResponse(parameters: {
  endpoint: GenerationEndpoint;
  identity: ResponseIdentity;
  choices: readonly WireChoice[];
  usage: WireUsage | undefined;
}): Record<string, unknown> {
  const { endpoint, identity, usage } = parameters;
  const choices = parameters.choices.map(({ index, text, finishReason }) =>
    endpoint === "chat"
      ? {
          index,
          message: { role: "assistant", content: text, refusal: null },
          logprobs: null,
          finish_reason: finishReason,
        }
      : { index, text, logprobs: null, finish_reason: finishReason },
  );
  return {
    ...identity,
    object: endpoint === "chat" ? "chat.completion" : "text_completion",
    choices,
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
  /** The choice this chunk belongs to. */
  index: number;
  /** One token's text; empty on the closing chunk. */
  text: string;
  /** The first chunk of a chat stream also carries `role: "assistant"`. */
  first: boolean;
  /** Set on the closing chunk only. */
  finishReason: string | null;
  usageRequested: boolean;
}): Record<string, unknown> {
  const { endpoint, identity, index, text, first, finishReason, usageRequested } = parameters;
  const delta = finishReason !== null ? {} : first ? { role: "assistant", content: text } : { content: text };
  const choice =
    endpoint === "chat"
      ? { index, delta, logprobs: null, finish_reason: finishReason }
      : { index, text, logprobs: null, finish_reason: finishReason };
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

import { type Logger, silentLogger } from "../../errors/index.js";
import type { BackendEndpoint } from "./BackendCall.js";
import {
  type ChatCompletion,
  type ChatCompletionChunk,
  type Completion,
  type CompletionChunk,
  chatCompletionChunkSchema,
  chatCompletionSchema,
  completionChunkSchema,
  completionSchema,
  type EmbeddingsResponse,
  embeddingsResponseSchema,
} from "./backendSchemas.js";
import { postBackendJson } from "./postBackendJson.js";
import { streamBackendChunks, type UpstreamStream } from "./streamBackendChunks.js";

/** A request body in the OpenAI wire format; the gateway has validated it already. */
export type UpstreamRequestBody = { readonly [field: string]: unknown };

export type UpstreamCallOptions = {
  /** Aborting it aborts the backend request; the call then throws the signal's reason. */
  signal?: AbortSignal | undefined;
};

export type CreateUpstreamClientParameters = {
  /** The backend's OpenAI base URL, version path included: `http://127.0.0.1:8000/v1`. */
  baseUrl: string;
  /** Sent as `Authorization: Bearer …` (OpenAI, OpenRouter); local servers usually need none. */
  apiKey?: string | undefined;
  /** Longest wait on the backend: the whole call when not streaming, each read when streaming. */
  timeoutMs?: number | undefined;
  fetch?: typeof globalThis.fetch | undefined;
  logger?: Logger | undefined;
};

export type UpstreamClient = {
  readonly baseUrl: string;
  /** POST /chat/completions without streaming. */
  chatCompletion(body: UpstreamRequestBody, options?: UpstreamCallOptions): Promise<ChatCompletion>;
  /** POST /completions (legacy text completions) without streaming. */
  completion(body: UpstreamRequestBody, options?: UpstreamCallOptions): Promise<Completion>;
  /** POST /embeddings. */
  embeddings(body: UpstreamRequestBody, options?: UpstreamCallOptions): Promise<EmbeddingsResponse>;
  /** POST /chat/completions streaming, usage requested; see {@link streamBackendChunks}. */
  streamChatCompletion(
    body: UpstreamRequestBody,
    options?: UpstreamCallOptions,
  ): UpstreamStream<ChatCompletionChunk>;
  /** POST /completions streaming, usage requested; see {@link streamBackendChunks}. */
  streamCompletion(body: UpstreamRequestBody, options?: UpstreamCallOptions): UpstreamStream<CompletionChunk>;
};

/** Five minutes: a long generation without streaming can legitimately take that long. */
export const defaultUpstreamTimeoutMs = 300_000;

/**
 * A client for one OpenAI-compatible backend (vLLM, llama.cpp, Ollama, OpenAI, OpenRouter).
 * Streaming calls force `stream: true` and `stream_options.include_usage: true` so the backend
 * reports real usage at the end; other calls force `stream: false`.
 *
 * @example
 * const upstream = createUpstreamClient({ baseUrl: "http://127.0.0.1:8000/v1" });
 * for await (const event of upstream.streamChatCompletion(body, { signal })) {
 *   if (event.type === "chunk") write(`data: ${event.raw}\n\n`);
 * }
 */
export function createUpstreamClient(parameters: CreateUpstreamClientParameters): UpstreamClient {
  const endpoint: BackendEndpoint = {
    baseUrl: parameters.baseUrl,
    apiKey: parameters.apiKey,
    timeoutMs: parameters.timeoutMs ?? defaultUpstreamTimeoutMs,
    fetch: parameters.fetch ?? globalThis.fetch,
    logger: parameters.logger ?? silentLogger,
  };
  return {
    baseUrl: parameters.baseUrl,
    chatCompletion: (body, options) =>
      postBackendJson({
        endpoint,
        path: "/chat/completions",
        body: withoutStreaming(body),
        schema: chatCompletionSchema,
        signal: options?.signal,
      }),
    completion: (body, options) =>
      postBackendJson({
        endpoint,
        path: "/completions",
        body: withoutStreaming(body),
        schema: completionSchema,
        signal: options?.signal,
      }),
    embeddings: (body, options) =>
      postBackendJson({
        endpoint,
        path: "/embeddings",
        body,
        schema: embeddingsResponseSchema,
        signal: options?.signal,
      }),
    streamChatCompletion: (body, options) =>
      streamBackendChunks({
        endpoint,
        path: "/chat/completions",
        body: withStreamingUsage(body),
        schema: chatCompletionChunkSchema,
        signal: options?.signal,
      }),
    streamCompletion: (body, options) =>
      streamBackendChunks({
        endpoint,
        path: "/completions",
        body: withStreamingUsage(body),
        schema: completionChunkSchema,
        signal: options?.signal,
      }),
  };
}

function withoutStreaming(body: UpstreamRequestBody): UpstreamRequestBody {
  // OpenAI refuses `stream_options` unless streaming.
  const { stream_options: _ignored, ...rest } = body;
  return { ...rest, stream: false };
}

function withStreamingUsage(body: UpstreamRequestBody): UpstreamRequestBody {
  const given = body.stream_options;
  const streamOptions = typeof given === "object" && given !== null ? given : {};
  return { ...body, stream: true, stream_options: { ...streamOptions, include_usage: true } };
}

// What a fake inference server is told to do, and what it records of each request.

/** What to generate for one choice of one request. */
export type FakeGeneration = {
  promptTokens: number;
  /** One token's text per item, in order; the server stops early at the request's output limit. */
  tokens: Iterable<string>;
  /** `completion_tokens` for the text sent; by default the number of token chunks sent. */
  countCompletionTokens?: (text: string) => number;
};

/** How the server behaves; read once when a request arrives. */
export type FakeServerBehaviour = {
  /** Pace of generation; 0 sends as fast as the client reads. */
  tokensPerSecond: number;
  /** Wait before the first token (after the response headers when streaming). */
  firstTokenDelayMs: number;
  /** Send `usage` (non-streaming) and the usage chunk (streaming, when the client asked for it). */
  reportUsage: boolean;
  /** Answer every generation and embeddings request with `failStatus` before any output. */
  failBeforeOutput: boolean;
  failStatus: number;
  /** Destroy the connection after this many token chunks (when not streaming: instead of answering). */
  failAfterChunks: number | undefined;
  /**
   * Messages API: this many of the prompt's tokens were read from and written to a prompt cache,
   * reported as `cache_read_input_tokens` and `cache_creation_input_tokens` (the rest as `input_tokens`).
   */
  promptCache?: { readTokens: number; writeTokens: number } | undefined;
  /**
   * Messages API, extended thinking as Claude 4 models do it: a request with `thinking` on (or with no
   * `thinking`, when the model thinks `byDefault`) gets a thinking block holding `summary` before its
   * text, and `output_tokens` counts `hiddenTokens` more than the summary and the text (thinking billed
   * and not shown). A request that does not think gets no block, yet `output_tokens` still counts the
   * hidden tokens when `reportUnasked` (a backend that lies).
   */
  thinking?:
    | { summary: string; hiddenTokens: number; byDefault?: boolean; reportUnasked?: boolean }
    | undefined;
} & Partial<FakeServerMisbehaviour>;

/** An output-limit field a backend may read: OpenAI's two, llama.cpp's and Ollama's (two places). */
export type OutputLimitField =
  | "max_tokens"
  | "max_completion_tokens"
  | "n_predict"
  | "num_predict"
  | "options.num_predict";

/** What a backend sends instead of an answer to a generation request. */
export type FakeGarbage =
  | "non_json_200"
  | "error_object_200"
  | "error_first_event"
  | "error_after_chunks"
  | "malformed_sse_lines";

/**
 * Ways the server breaks its contract on purpose, so tests can show the gateway holds its price quote
 * whatever the backend does. Each is off when left out.
 */
export type FakeServerMisbehaviour = {
  /** Generate every token the generation has, whatever output limit the request sets. */
  ignoreOutputLimit: boolean;
  /**
   * Read only this output-limit field, as a real server reads its own dialect (llama.cpp reads
   * `n_predict` and not `max_tokens`). Undefined: the smallest positive limit of every dialect wins.
   */
  outputLimitField: OutputLimitField | undefined;
  /** Report these numbers in `usage` instead of the true ones; `total_tokens` is their sum. */
  usageOverride: { prompt_tokens?: number; completion_tokens?: number } | undefined;
  /** Default true; false leaves `prompt_tokens` (and `total_tokens`) out of `usage`. */
  reportPromptUsage: boolean;
  /** Streaming: send the headers and this many token chunks, then nothing until the client leaves. */
  stallAfterChunks: number | undefined;
  /**
   * Streaming: send this many token chunks, then nothing until `release` settles (or the client
   * leaves), then the rest. Lets a test act at a known point of a stream, whatever the machine's speed.
   */
  holdAfterChunks: { chunks: number; release: Promise<unknown> } | undefined;
  /** Read the request, then send nothing (not even headers) until the client leaves. */
  stallBeforeHeaders: boolean;
  /**
   * Answer a generation request with garbage. Any request: `non_json_200` (200, JSON content type,
   * body `<html>oops</html>`), `error_object_200` (200, an OpenAI error body). Streaming requests
   * only: `error_first_event` (the first event is an error, then the end), `error_after_chunks`
   * (`errorAfterChunks` token chunks, an error event, the end; no `[DONE]`), `malformed_sse_lines`
   * (a line that is not valid SSE or JSON after every token chunk).
   */
  garbage: FakeGarbage | undefined;
  /** Token chunks before the error event of `garbage: "error_after_chunks"`; default 3. */
  errorAfterChunks: number | undefined;
  /**
   * Accept any `stream` value and stream when it is truthy (`"true"`, `1`, `"yes"`, even `"false"`),
   * as a server testing `if body.stream:` does; `stream_options.include_usage` is read the same way.
   */
  laxStream: boolean;
  /** Answer every inference request with 429, this `Retry-After` and an OpenAI error body. */
  rateLimit: { retryAfter: string } | undefined;
  /** Streaming: send this many tokens in each text chunk (a backend that batches its output); default 1. */
  tokensPerChunk: number | undefined;
  /**
   * Streaming (chat, completions): end with the usage chunk not closed by a blank line and no `[DONE]`,
   * then close, as a server that writes `data: …\n` and hangs up does.
   */
  unclosedLastEvent: boolean | undefined;
  /** Chat JSON answers: fields merged into each choice's message (a `reasoning_content`, a `refusal`). */
  messageExtras: Record<string, unknown> | undefined;
  /**
   * Images: answer `count` images whatever `n` asks, as empty objects (`empty`), or as an SSE stream of
   * one event per image (`stream`), as a backend that ignores the request does.
   */
  imageAnswer: { count?: number; empty?: boolean; stream?: boolean } | undefined;
};

/** What happened to one request; updated in place while the request runs. */
export type FakeServedRequest = {
  method: string;
  /** Path without the query, e.g. `/v1/chat/completions`. */
  path: string;
  /** The parsed JSON body exactly as sent (every field, untouched), or undefined (GET, or not JSON). */
  body: unknown;
  /** `Date.now()` at arrival. */
  receivedAt: number;
  stream: boolean;
  /** Token chunks written to the wire (streaming), or tokens in the answer (not streaming), all choices. */
  tokensSent: number;
  /** The client closed the connection before the response was complete. */
  clientAborted: boolean;
  status: number | undefined;
  outcome:
    | "in-progress"
    | "completed"
    | "rejected"
    | "failed-before-output"
    | "connection-dropped"
    | "client-aborted"
    | "garbage";
  endedAt: number | undefined;
};

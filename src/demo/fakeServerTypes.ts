// What a fake inference server is told to do, and what it records of each request.

/** What to generate for one request. */
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
};

/** What happened to one request; updated in place while the request runs. */
export type FakeServedRequest = {
  method: string;
  /** Path without the query, e.g. `/v1/chat/completions`. */
  path: string;
  /** The parsed JSON body, or undefined (GET, or not JSON). */
  body: unknown;
  /** `Date.now()` at arrival. */
  receivedAt: number;
  stream: boolean;
  /** Token chunks written to the wire (streaming), or tokens in the answer (not streaming). */
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
    | "client-aborted";
  endedAt: number | undefined;
};

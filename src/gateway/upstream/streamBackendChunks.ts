import type { z } from "zod";
import { BackendCall, type BackendEndpoint } from "./BackendCall.js";
import type { UpstreamUsage } from "./backendSchemas.js";
import { type ServerSentEvent, SseDecoder } from "./SseDecoder.js";
import {
  backendErrorMessage,
  backendInvalidResponseError,
  backendStatusError,
  parseBackendValue,
  type StreamFailurePhase,
} from "./upstreamErrors.js";

/** One chunk from the backend: `raw` is the event's data text exactly as sent, `json` its validated parse. */
export type UpstreamChunkEvent<Chunk> = {
  type: "chunk";
  /** The data payload, byte for byte; it may contain "\n" if the backend split it over several `data:` lines. */
  raw: string;
  json: Chunk;
};

/** The last event of a stream that ended normally. */
export type UpstreamEndEvent = {
  type: "end";
  /** The backend's usage (the last one it sent), or undefined when it sent none. */
  usage: UpstreamUsage | undefined;
  chunkCount: number;
  /** Whether the backend closed the stream with `data: [DONE]`. */
  receivedDone: boolean;
};

export type UpstreamStreamEvent<Chunk> = UpstreamChunkEvent<Chunk> | UpstreamEndEvent;

/** A backend stream: read it once with `for await`; breaking out of the loop aborts the backend request. */
export type UpstreamStream<Chunk> = AsyncGenerator<UpstreamStreamEvent<Chunk>, void, undefined>;

export type StreamBackendChunksParameters<Schema extends z.ZodType> = {
  endpoint: BackendEndpoint;
  path: string;
  body: unknown;
  /** Schema of one chunk. */
  schema: Schema;
  signal?: AbortSignal | undefined;
};

/** How long to keep reading after `[DONE]` so the connection can be reused, before letting go. */
const drainAfterDoneMs = 1000;

/**
 * POSTs a streaming request and yields the backend's SSE chunks as they arrive, then one `end`
 * event. Lazy and pull-based: the request starts on the first `next()` and the body is read only
 * as fast as the consumer asks, so back-pressure reaches the backend. The timeout applies to each
 * wait on the backend (headers, then every read), never to time the consumer spends.
 * Errors: HTTP ≥ 400, a broken connection, a malformed chunk or an in-stream error event throw
 * TOLLGATE_BACKEND_FAILED with `details.chunksDelivered` and `details.phase`; silence past the
 * timeout throws TOLLGATE_BACKEND_TIMEOUT; an aborted `signal` throws its reason.
 */
export async function* streamBackendChunks<Schema extends z.ZodType>(
  parameters: StreamBackendChunksParameters<Schema>,
): UpstreamStream<z.infer<Schema>> {
  const { endpoint, path, body, schema, signal } = parameters;
  const call = new BackendCall(endpoint, path, signal);
  let chunkCount = 0;
  let usage: UpstreamUsage | undefined;
  let reachedEnd = false;
  const failureDetails = (): Record<string, unknown> => {
    const phase: StreamFailurePhase = chunkCount === 0 ? "before-output" : "mid-stream";
    return { chunksDelivered: chunkCount, phase };
  };

  try {
    const response = await call.post(body, "text/event-stream", failureDetails);
    if (response.status >= 400) {
      const text = await call.readExcerpt(response, failureDetails);
      throw backendStatusError({
        url: call.url,
        status: response.status,
        body: text,
        details: failureDetails(),
      });
    }
    const contentType = response.headers.get("content-type") ?? "";
    if (response.body === null || contentType.includes("application/json")) {
      const text = await call.readExcerpt(response, failureDetails);
      throw backendInvalidResponseError({
        url: call.url,
        reason: `expected an event stream, got ${contentType || "no body"}`,
        body: text,
        details: failureDetails(),
      });
    }

    const reader = response.body.getReader();
    const textDecoder = new TextDecoder();
    const sseDecoder = new SseDecoder();
    const parseChunk = (event: ServerSentEvent): z.infer<Schema> => {
      let json: unknown;
      try {
        json = JSON.parse(event.data);
      } catch (cause) {
        throw backendInvalidResponseError({
          url: call.url,
          reason: "stream chunk is not JSON",
          body: event.data,
          cause,
          details: failureDetails(),
        });
      }
      // vLLM, OpenRouter and llama.cpp report a failure inside the stream as an `error` object.
      if (event.event === "error" || hasErrorField(json)) {
        const message = backendErrorMessage(event.data) ?? "error event";
        throw backendInvalidResponseError({
          url: call.url,
          reason: `backend reported an error mid-stream: ${message}`,
          body: event.data,
          details: failureDetails(),
        });
      }
      return parseBackendValue(schema, json, { url: call.url, body: event.data, details: failureDetails() });
    };

    let receivedDone = false;
    while (!receivedDone) {
      const { done, value } = await call.wait(() => reader.read(), failureDetails);
      const events = done
        ? [...sseDecoder.push(textDecoder.decode()), ...sseDecoder.end()]
        : sseDecoder.push(textDecoder.decode(value, { stream: true }));
      for (const event of events) {
        if (event.data === "[DONE]") {
          receivedDone = true;
          break;
        }
        const json = parseChunk(event);
        const chunkUsage = (json as { usage?: UpstreamUsage | null }).usage;
        if (chunkUsage !== undefined && chunkUsage !== null) usage = chunkUsage;
        chunkCount++;
        yield { type: "chunk", raw: event.data, json };
      }
      if (done) {
        reachedEnd = true;
        break;
      }
    }

    yield { type: "end", usage, chunkCount, receivedDone };

    if (!reachedEnd) {
      // Nothing may follow [DONE]; reading to the end lets the connection be reused.
      reachedEnd = await drainQuietly(reader, endpoint);
    }
  } finally {
    call.dispose();
    // Abandoned early (break, error, abort) or the backend kept talking after [DONE]: close the request.
    if (!reachedEnd) call.abort();
  }
}

async function drainQuietly(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  endpoint: BackendEndpoint,
): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const giveUp = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), drainAfterDoneMs);
  });
  try {
    for (;;) {
      const result = await Promise.race([reader.read(), giveUp]);
      if (result === "timeout") return false;
      if (result.done) return true;
    }
  } catch (error) {
    endpoint.logger.debug({ err: error }, "backend stream broke after [DONE]; ignored");
    return false;
  } finally {
    clearTimeout(timer);
  }
}

function hasErrorField(json: unknown): boolean {
  if (typeof json !== "object" || json === null || !("error" in json)) return false;
  return json.error !== null && json.error !== undefined;
}

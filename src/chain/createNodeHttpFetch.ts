import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from "node:http";
import { Agent as HttpsAgent, request as httpsRequest } from "node:https";
import { pipeline, type Readable } from "node:stream";
import { createBrotliDecompress, createGunzip, createInflate } from "node:zlib";

/** `fetch` as `createNodeHttpFetch` makes it: `onSent` is called once the whole request has left. */
export type NodeHttpFetch = (
  input: string | URL | Request,
  init?: RequestInit & { onSent?: (() => void) | undefined },
) => Promise<Response>;

export type CreateNodeHttpFetchParameters = {
  /** Most open connections per host (default 64); idle ones are kept alive for reuse. */
  maxSockets?: number;
  /**
   * A kept-alive connection idle this long is closed (default 4 s: below the 5 s after which Node,
   * uvicorn and others close theirs). A request in progress is not affected.
   */
  idleSocketMs?: number;
  /** A larger response body is refused (default 10 MiB, viem's own default limit); a streamed body is not counted. */
  maxResponseBytes?: number;
  /**
   * `buffer` (default): the response resolves once its body is read whole. `stream`: it resolves at the
   * headers and its body comes as it arrives, decompressed (gzip, deflate, br); cancelling the body, or
   * aborting `signal`, closes the connection.
   */
  body?: "buffer" | "stream";
};

/**
 * A `fetch` on `node:http` / `node:https` keep-alive agents: for viem's `http` transport (`fetchFn`),
 * and, with `body: "stream"`, for the gateway's requests to model backends.
 *
 * Why: a JSON-RPC call through the global `fetch` (undici) costs about three times the CPU of the
 * same call through `node:http`, and a facilitator makes several calls per payment (code check,
 * simulation, gas estimate, broadcast, receipt); a backend's first token reaches the gateway about
 * half a millisecond sooner. viem still builds the request, applies its timeout (through `signal`)
 * and retries, and maps every failure to its usual errors. Only a string or byte body is sent, with
 * headers as a plain object or `Headers`; redirects are not followed (a 3xx is the response). Idle
 * kept-alive connections are closed after `idleSocketMs`, before servers close theirs, so that a request
 * rarely meets a connection its server is closing (it would fail; it is not sent again).
 */
export function createNodeHttpFetch({
  maxSockets = 64,
  idleSocketMs = 4_000,
  maxResponseBytes = 10 * 1024 * 1024,
  body: bodyMode = "buffer",
}: CreateNodeHttpFetchParameters = {}): NodeHttpFetch {
  const agentOptions = { keepAlive: true, maxSockets, timeout: idleSocketMs };
  const httpAgent = new HttpAgent(agentOptions);
  const httpsAgent = new HttpsAgent(agentOptions);

  return function nodeHttpFetch(
    input: string | URL | Request,
    init: RequestInit & { onSent?: (() => void) | undefined } = {},
  ): Promise<Response> {
    const url = new URL(typeof input === "string" || input instanceof URL ? input : input.url);
    const body = init.body;
    if (body !== undefined && body !== null && typeof body !== "string" && !(body instanceof Uint8Array)) {
      return Promise.reject(new TypeError("nodeHttpFetch supports only string or byte bodies"));
    }
    const signal = init.signal ?? undefined;
    if (signal?.aborted) return Promise.reject(signal.reason);
    const headers: Record<string, string> = {};
    if (init.headers instanceof Headers || Array.isArray(init.headers)) {
      new Headers(init.headers).forEach((value, name) => {
        headers[name] = value;
      });
    } else if (init.headers) {
      Object.assign(headers, init.headers);
    }
    if (body !== undefined && body !== null) headers["content-length"] = String(Buffer.byteLength(body));
    const isHttps = url.protocol === "https:";
    if (!isHttps && url.protocol !== "http:") {
      return Promise.reject(new TypeError(`nodeHttpFetch: unsupported protocol ${url.protocol}`));
    }

    return new Promise<Response>((resolve, reject) => {
      const fail = (error: unknown) => {
        signal?.removeEventListener("abort", onAbort);
        reject(error);
      };
      const request = (isHttps ? httpsRequest : httpRequest)(
        url,
        { method: init.method ?? "GET", headers, agent: isHttps ? httpsAgent : httpAgent },
        (response) => {
          if (bodyMode === "stream") {
            // The body is the caller's now: an abort later closes the connection, and so ends it.
            response.once("close", () => signal?.removeEventListener("abort", onAbort));
            try {
              resolve(streamedResponse(response, init.method ?? "GET"));
            } catch (error) {
              response.destroy();
              fail(error);
            }
            return;
          }
          readBody(response, maxResponseBytes).then((bytes) => {
            signal?.removeEventListener("abort", onAbort);
            try {
              resolve(toResponse(response, bytes));
            } catch (error) {
              reject(error);
            }
          }, fail);
        },
      );
      const onAbort = () => {
        request.destroy();
        fail(signal?.reason);
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      // Kept for the whole exchange: the socket's errors keep coming here while a streamed body is read.
      // A request is never sent twice: a POST the server may have received could run twice.
      request.on("error", fail);
      if (init.onSent) request.once("finish", init.onSent);
      request.end(body ?? undefined);
    });
  };
}

function readBody(response: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    response.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > maxBytes) {
        response.destroy();
        reject(new RangeError(`RPC response body exceeds ${maxBytes} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    response.once("end", () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    response.once("error", reject);
    response.once("close", () => {
      if (!response.complete) reject(new Error("RPC response ended early"));
    });
  });
}

function headersOf(response: IncomingMessage): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(response.headers)) {
    if (value === undefined) continue;
    headers.set(name, Array.isArray(value) ? value.join(", ") : value);
  }
  return headers;
}

function toResponse(response: IncomingMessage, bytes: Buffer): Response {
  const headers = headersOf(response);
  const status = response.statusCode ?? 502;
  const nullBody = status === 204 || status === 304 || bytes.length === 0;
  const payload = nullBody ? null : new Uint8Array(bytes);
  return new Response(payload, { status, statusText: response.statusMessage ?? "", headers });
}

/** The decompressor for a `content-encoding` fetch would undo, or undefined (none, or one it leaves as is). */
function decoderOf(encoding: string | undefined) {
  switch (encoding?.trim().toLowerCase()) {
    case "gzip":
    case "x-gzip":
      return createGunzip();
    case "deflate":
      return createInflate();
    case "br":
      return createBrotliDecompress();
    default:
      return undefined;
  }
}

/** A response whose body streams from the socket as it arrives; cancelling it destroys the connection. */
function streamedResponse(response: IncomingMessage, method: string): Response {
  const headers = headersOf(response);
  const status = response.statusCode ?? 502;
  const init = { status, statusText: response.statusMessage ?? "", headers };
  if (status === 204 || status === 304 || method.toUpperCase() === "HEAD") {
    response.resume();
    return new Response(null, init);
  }
  const decoder = decoderOf(response.headers["content-encoding"]);
  let source: Readable = response;
  if (decoder) {
    headers.delete("content-encoding");
    headers.delete("content-length");
    // An error on either side destroys both: a broken backend body fails the read, a cancel closes the socket.
    source = pipeline(response, decoder, () => {});
  }
  return new Response(webStreamOf(source), init);
}

/** The Node stream behind each streamed body `nodeHttpFetch` made, until it is read. */
const nodeSources = new WeakMap<ReadableStream<Uint8Array>, Readable>();

/**
 * The Node stream a streamed body of `nodeHttpFetch` reads from, when no one has read the body yet;
 * the body is then locked, and the caller reads the stream itself (no web stream in between, which
 * costs a JSON answer about a tenth of a millisecond). Undefined for any other body.
 */
export function takeNodeSource(body: ReadableStream<Uint8Array>): Readable | undefined {
  const source = nodeSources.get(body);
  if (!source || body.locked) return undefined;
  nodeSources.delete(body);
  body.getReader();
  return source;
}

/**
 * A web stream over `source` that reads only when it is read (nothing is taken from the socket before,
 * so `takeNodeSource` can hand the source over whole); cancelling it destroys the source.
 */
function webStreamOf(source: Readable): ReadableStream<Uint8Array> {
  let listening = false;
  let ended = false;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const changed = () => {
    const resume = wake;
    wake = undefined;
    resume?.();
  };
  // How the source ends is watched from the start: a connection that dies before the body is read
  // fails the first read at once (it emits nothing more once closed).
  source.once("end", () => {
    ended = true;
    changed();
  });
  source.once("error", (error) => {
    failure = error;
    changed();
  });
  source.once("close", () => {
    if (!ended && failure === undefined) failure = new Error("the response ended early");
    changed();
  });
  const stream = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (!listening) {
          // Read through the web stream from now on: never handed over.
          listening = true;
          nodeSources.delete(stream);
          source.on("readable", changed);
        }
        for (;;) {
          const chunk = source.read() as Buffer | null;
          if (chunk !== null) {
            // A copy: a chunk joined from several reads may sit in Node's shared buffer pool.
            controller.enqueue(new Uint8Array(chunk));
            return;
          }
          if (failure !== undefined) return controller.error(failure);
          if (ended) return controller.close();
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
        }
      },
      cancel() {
        source.destroy();
      },
    },
    { highWaterMark: 0 },
  );
  nodeSources.set(stream, source);
  return stream;
}

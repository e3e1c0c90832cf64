import type { NextFunction, Request, RequestHandler, Response } from "express";
import { REQUEST_ID_HEADER } from "../errors/index.js";
import { MAX_AUDIO_FILE_BYTES } from "../pricing/index.js";
import type { Billing } from "./createBilling.js";
import { PAYMENT_NOT_RECORDED, type StreamEnding } from "./createBillingSession.js";
import { errorAnswer } from "./errorAnswer.js";
import type { TollgateContext } from "./honoBilling.js";
import { routeKindOfPath } from "./honoBilling.js";
import type { RouteKind } from "./quoteRequest.js";
import { readRequestBody, requestInvalidAnswer } from "./readRequestBody.js";
import { routes } from "./routes/index.js";

export type TollgateExpressParameters = {
  billing: Billing;
  /** Which endpoint this route is; defaults from the path. */
  routeKind?: RouteKind;
};

/** What the Express middleware leaves for the handler in `res.locals.tollgate`. */
export type TollgateExpressContext = TollgateContext & {
  /**
   * Aborted once the answer is closed: the buyer left, or the answer was sent in full — as the
   * handler ended it, or as the middleware ended it at the authorized output or at the request's time
   * bound. Pass it to the backend call, so that the backend stops generating what nobody will read.
   * (Aborting sooner could fail the handler while the receipt is still being written.) A buyer who
   * leaves a stream once its answer began, on a request that allows hidden output (`hiddenReasoning`),
   * aborts it only once the backend reported its usage (or at the output limit, or the time bound):
   * until then the handler writes on, to no one, and the reasoning that report states is charged.
   */
  signal: AbortSignal;
  /**
   * Tells the adapter the backend has the whole request (its prompt): give it to `proxyToBackend` as
   * `onPromptSent`, or call it once your own backend request went out whole. A buyer that hangs up
   * after it, before a JSON answer, pays for its prompt, as on the gateway's own server; without it,
   * such a buyer pays nothing.
   */
  promptSent: () => void;
};

type Chunk = string | Uint8Array;
type WriteCallback = (error?: Error | null) => void;

/**
 * Output a stream's buyer has not taken may wait in this process up to this much; past it the buyer,
 * that far behind its backend, is taken as gone.
 */
const MAX_WAITING_BYTES = 8 * 1024 * 1024;

/**
 * Express middleware that bills an OpenAI-compatible route per token with x402 `upto` (and
 * `exact`); the same billing as the Hono middleware. Mount it after `express.json()`. The
 * handler reads the limited body from `req.body` (or `res.locals.tollgate.backendBody`), passes
 * `res.locals.tollgate.signal` to its backend call (see `TollgateExpressContext`), and answers as usual — JSON with `res.json`, or a stream with `res.write` of SSE events; the
 * middleware meters what it writes, settles, and adds the receipt. Set the stream's content type once
 * the backend has answered (as below), not before calling it: a buyer who leaves once it is set pays for
 * its prompt, which a backend not yet called has not taken.
 *
 * @example
 * app.post("/v1/chat/completions", express.json(), tollgateExpress({ billing }), async (req, res) => {
 *   const { signal, promptSent } = res.locals.tollgate as TollgateExpressContext;
 *   try {
 *     const upstream = await fetch(`${backend}/chat/completions`, { method: "POST", body: JSON.stringify(req.body), signal });
 *     promptSent(); // or proxyToBackend({ …, signal, onPromptSent: promptSent }), which knows it sooner
 *     res.status(upstream.status).type(upstream.headers.get("content-type") ?? "application/json");
 *     for await (const chunk of upstream.body!) res.write(chunk);
 *     res.end();
 *   } catch (error) {
 *     if (!signal.aborted) throw error; // the answer was closed: nothing more to send
 *   }
 * });
 */
export function tollgateExpress({ billing, routeKind }: TollgateExpressParameters): RequestHandler {
  return function tollgateBilling(req: Request, res: Response, next: NextFunction) {
    handle(billing, routeKind, req, res, next).catch(next);
  };
}

async function handle(
  billing: Billing,
  routeKind: RouteKind | undefined,
  req: Request,
  res: Response,
  next: NextFunction,
): Promise<void> {
  // A buyer may leave while the payment is checked: its 'close' would then come before the listener below.
  let leftEarly = false;
  res.once("close", () => {
    leftEarly = true;
  });
  const kind = routeKind ?? routeKindOfPath(req.path);
  const route = routes[kind];
  if (route.readForm) {
    // A form route (a transcription's audio file) reads the request's own bytes: no body parser
    // reads multipart/form-data before it (express.json() leaves it be).
    const read = await readNodeBody(req, MAX_FORM_BYTES);
    if (read === undefined) {
      const answer = errorAnswer(
        "TOLLGATE_REQUEST_TOO_LARGE",
        `the request body exceeds ${MAX_FORM_BYTES} bytes`,
      );
      res.status(answer.status).set(answer.headers).json(answer.body);
      return;
    }
    try {
      req.body = await readRequestBody(
        new globalThis.Request("http://localhost/", {
          method: "POST",
          headers: { "content-type": req.get("content-type") ?? "" },
          body: read,
        }),
        route,
      );
    } catch (error) {
      const answer = requestInvalidAnswer(error, "the request body is not a readable form");
      res.status(answer.status).set(answer.headers).json(answer.body);
      return;
    }
  }
  if (typeof req.body !== "object" || req.body === null) {
    res.status(400).json({
      error: {
        message: "the request body must be JSON (mount express.json() before Tollgate)",
        type: "invalid_request_error",
        code: "TOLLGATE_REQUEST_INVALID",
      },
    });
    return;
  }
  const decision = await billing.begin({
    url: `${req.protocol}://${req.get("host") ?? "localhost"}${req.originalUrl}`,
    headers: { get: (name: string) => req.get(name) ?? null },
    body: req.body,
    routeKind: kind,
  });
  if (decision.action === "respond") {
    res.status(decision.status).set(decision.headers).json(decision.body);
    return;
  }
  const { quote, session } = decision;
  res.setHeader(REQUEST_ID_HEADER, decision.requestId);
  // This adapter writes the handler's stream as it comes: it starts once the request's row is in.
  if (!(await session.ready)) {
    const answer = errorAnswer("TOLLGATE_LEDGER_FAILED", PAYMENT_NOT_RECORDED);
    await session.failBeforeOutput(PAYMENT_NOT_RECORDED, answer.status);
    res.status(answer.status).set(answer.headers).json(answer.body);
    return;
  }
  if (leftEarly || res.destroyed) {
    // Nobody to answer: the handler is not run, and nothing is charged.
    await session.failBeforeOutput("the buyer left before the answer began", 499);
    return;
  }
  req.body = quote.backendBody;
  const stop = new AbortController();
  let promptWasSent = false;
  const context: TollgateExpressContext = {
    quote,
    session,
    backendBody: quote.backendBody,
    signal: stop.signal,
    promptSent: () => {
      promptWasSent = true;
    },
  };
  res.locals.tollgate = context;

  const originalWrite = res.write.bind(res) as (
    chunk: Chunk,
    encoding?: BufferEncoding,
    cb?: WriteCallback,
  ) => boolean;
  const originalEnd = res.end.bind(res) as (
    chunk?: Chunk,
    encoding?: BufferEncoding,
    cb?: () => void,
  ) => Response;
  const decoder = new TextDecoder();
  const text = (chunk: Chunk | undefined, encoding?: BufferEncoding) =>
    chunk === undefined
      ? ""
      : typeof chunk === "string"
        ? Buffer.from(chunk, encoding).toString("utf8")
        : decoder.decode(chunk, { stream: true });
  let tap: ReturnType<typeof session.createStreamWriter> | undefined;
  // Whether the answer is a stream is decided by the answer, not guessed from the request. Once its
  // first bytes went out it stays one: an error status set afterwards (a handler's catch) does not
  // make what was delivered free. Before that, an error status makes it an error answer.
  const streamStarted = () => tap !== undefined && res.headersSent;
  // A route that answers bytes (speech's audio) is answered whole, whatever the handler labelled them.
  const answersBytes = quote.route.readBytes !== undefined;
  const isStream = () =>
    streamStarted() ||
    (!answersBytes &&
      res.statusCode < 400 &&
      String(res.getHeader("content-type") ?? "").includes("text/event-stream"));
  let cutOff = false;
  /** JSON written so far, each piece with whether it was written under an error status (an error's own body). */
  const buffered: Array<{ bytes: Buffer; errorBody: boolean }> = [];
  let ended = false;
  // A stream's output the socket has not taken yet (a handler that writes on without waiting for
  // 'drain'): it waits here, not metered, and goes out (metered, charged) as the socket drains. A buyer
  // that stops reading is charged for what reached its socket, not for what sat in this process.
  const waiting: Array<{ text: string; callback: WriteCallback | undefined }> = [];
  let waitingBytes = 0;
  /** Drops the output still waiting (not sent, not charged); a handler awaiting a write's callback goes on. */
  const dropWaiting = () => {
    for (const dropped of waiting.splice(0)) dropped.callback?.();
    waitingBytes = 0;
  };
  /** The handler's end, when it came while output waited: run once the socket took the rest. */
  let endWhenDrained: (() => void) | undefined;
  // Set when the buyer left mid-stream and the handler's backend is read on for its usage report
  // (`StreamWriter.leave`): what the handler writes is metered as not delivered, and goes nowhere.
  let readingOn = false;
  /** The gateway stops while the backend is read on: it is stopped, and what was delivered charged. */
  const stopReadingOn = () => {
    if (readingOn) endReadingOn("client_gone");
  };
  /** Ends the reading on: the backend call is stopped and the request charged. */
  const endReadingOn = (ending: StreamEnding) => {
    readingOn = false;
    tap?.stopping?.removeEventListener("abort", stopReadingOn);
    ended = true;
    clearTimeout(deadline);
    stop.abort(new DOMException("the answer is closed", "AbortError"));
    void (tap as NonNullable<typeof tap>).finish(ending).catch(() => undefined);
  };
  /** Meters output written while reading on; ends the reading on at the usage report or the output limit. */
  const readOn = (piece: string) => {
    const stream = tap as NonNullable<typeof tap>;
    stream.push(piece);
    if (stream.usageReported || stream.stopped) endReadingOn("client_gone");
  };

  // A buyer that stops reading stalls a handler that waits for it to drain, and the charge with it,
  // past the request's authorization (its channel reservation, its upto deadline). At the request's
  // time bound what was forwarded is charged and the answer ends; later writes are dropped.
  const deadline = setTimeout(
    () => {
      if (readingOn) return endReadingOn("timeout");
      if (ended) return;
      ended = true;
      cutOff = true;
      dropWaiting();
      if (!tap && isStream()) tap = session.createStreamWriter();
      const finished = tap
        ? tap.finish("timeout")
        : (async () => {
            const answer = errorAnswer(
              "TOLLGATE_BACKEND_TIMEOUT",
              "the answer took longer than the request's time bound; nothing is charged",
            );
            await session.failBeforeOutput(
              "the handler did not answer within the request's time bound",
              answer.status,
            );
            if (!res.headersSent) {
              // Headers the handler copied from its backend would not describe this answer.
              for (const name of ["content-length", "content-encoding", "transfer-encoding"])
                res.removeHeader(name);
              res.status(answer.status).set(answer.headers).type("application/json");
            }
            return JSON.stringify(answer.body);
          })();
      void finished.then(
        (tail) => originalEnd(tail, "utf8"),
        (error) => res.destroy(error as Error),
      );
    },
    Math.max(0, session.deadlineAt - Date.now()),
  );
  deadline.unref();
  res.on("close", () => {
    const endedWhileWaiting = endWhenDrained;
    endWhenDrained = undefined;
    if (!ended && !cutOff && streamStarted() && (tap as NonNullable<typeof tap>).leave()) {
      // The answer had begun on a request that allows hidden output: the reasoning before it is spent,
      // and reported only at the end. The handler's backend call goes on; the output that waited for
      // the socket, and all that comes after, is metered as not delivered.
      readingOn = true;
      cutOff = true;
      (tap as NonNullable<typeof tap>).stopping?.addEventListener("abort", stopReadingOn, { once: true });
      const waited = waiting.splice(0);
      waitingBytes = 0;
      for (const piece of waited) {
        if (readingOn) readOn(piece.text);
        piece.callback?.();
      }
      // The handler ended while output waited: its end (which may carry the usage report) is read too.
      endedWhileWaiting?.();
      return;
    }
    dropWaiting();
    // Nothing more reaches the buyer once the answer is closed, whoever closed it.
    stop.abort(new DOMException("the answer is closed", "AbortError"));
    if (ended) return;
    ended = true;
    clearTimeout(deadline);
    // A buyer gone mid-stream pays for what was delivered, and one gone once the handler declared its
    // stream (it has its backend's answer: the backend took the prompt) pays for the prompt, as on the
    // gateway's own server; so does one gone before a JSON answer once the handler said its backend had
    // the whole request (`promptSent`). Otherwise one gone before a JSON answer got nothing, and pays
    // nothing. What the handler writes later is dropped.
    cutOff = true;
    if (!tap && isStream()) tap = session.createStreamWriter();
    if (tap) void tap.finish("client_gone").catch(() => undefined);
    else if (promptWasSent && res.statusCode < 400) void session.leftAfterPrompt().catch(() => undefined);
    else {
      void session
        .failBeforeOutput("the buyer left before the answer was complete", 499)
        .catch(() => undefined);
    }
  });

  /** Meters a stream's output and hands it to the socket. */
  const forward = (piece: string, callback: WriteCallback | undefined): boolean => {
    const stream = tap as NonNullable<typeof tap>;
    const out = stream.push(piece);
    if (stream.stopped) {
      // Past the authorized output (or a backend error): end the answer here; later writes are dropped.
      cutOff = true;
      ended = true;
      clearTimeout(deadline);
      dropWaiting();
      void stream.finish("complete").then(
        (tail) => originalEnd(out + tail, "utf8"),
        (error) => res.destroy(error as Error),
      );
      callback?.();
      return false;
    }
    if (out) return originalWrite(out, "utf8", callback);
    callback?.();
    return true;
  };
  res.on("drain", () => {
    while (waiting.length > 0 && !cutOff && !res.writableNeedDrain) {
      const next = waiting.shift() as (typeof waiting)[number];
      waitingBytes -= Buffer.byteLength(next.text);
      forward(next.text, next.callback);
    }
    if (waiting.length === 0 && endWhenDrained && !cutOff) {
      const end = endWhenDrained;
      endWhenDrained = undefined;
      end();
    }
  });

  res.write = ((chunk: Chunk, encoding?: BufferEncoding | WriteCallback, cb?: WriteCallback) => {
    const enc = typeof encoding === "string" ? encoding : undefined;
    const callback = typeof encoding === "function" ? encoding : cb;
    if (readingOn) {
      readOn(text(chunk, enc));
      callback?.();
      return true;
    }
    if (isStream()) {
      tap ??= session.createStreamWriter();
      // Written under an error status once the stream began: the handler's error text, not output.
      if (cutOff || res.statusCode >= 400) {
        callback?.();
        return false;
      }
      const piece = text(chunk, enc);
      if (waiting.length === 0 && !res.writableNeedDrain) return forward(piece, callback);
      waitingBytes += Buffer.byteLength(piece);
      if (waitingBytes > MAX_WAITING_BYTES) {
        // The buyer is that far behind its backend: taken as gone, charged for what reached its socket.
        cutOff = true;
        ended = true;
        clearTimeout(deadline);
        dropWaiting();
        endWhenDrained = undefined;
        stop.abort(new DOMException("the buyer stopped reading", "AbortError"));
        void (tap as NonNullable<typeof tap>).finish("client_gone").then(
          (tail) => originalEnd(tail, "utf8"),
          (error) => res.destroy(error as Error),
        );
        callback?.();
        return false;
      }
      waiting.push({ text: piece, callback });
      return false;
    }
    buffered.push({
      bytes: typeof chunk === "string" ? Buffer.from(chunk, enc) : Buffer.from(chunk),
      errorBody: res.statusCode >= 400,
    });
    callback?.();
    return true;
  }) as Response["write"];

  res.end = ((chunk?: Chunk | (() => void), encoding?: BufferEncoding | (() => void), cb?: () => void) => {
    const data = typeof chunk === "function" ? undefined : chunk;
    const enc = typeof encoding === "string" ? encoding : undefined;
    const callback = typeof chunk === "function" ? chunk : typeof encoding === "function" ? encoding : cb;
    if (readingOn) {
      readOn(text(data, enc) + decoder.decode());
      if (readingOn) endReadingOn(res.statusCode >= 400 ? "backend_error" : "client_gone");
      callback?.();
      return res;
    }
    if (cutOff) {
      callback?.();
      return res;
    }
    if (waiting.length > 0) {
      // The last output still waits for the socket: the answer ends (and is charged) once it went out.
      endWhenDrained = () => res.end(data as Chunk, enc as BufferEncoding, callback);
      return res;
    }
    ended = true;
    clearTimeout(deadline);
    void finish(data, enc).then(
      (tail) => originalEnd(tail ?? "", "utf8", callback),
      (error) => {
        res.destroy(error as Error);
      },
    );
    return res;
  }) as Response["end"];

  const finish = async (
    data: Chunk | undefined,
    encoding: BufferEncoding | undefined,
  ): Promise<Chunk | undefined> => {
    if (streamStarted() && tap) {
      // A stream that ends under an error status (its backend failed, say): what went out is charged,
      // and what the handler writes with the error is not forwarded as output.
      if (res.statusCode >= 400) return tap.finish("backend_error");
      const rest = tap.push(text(data, encoding) + decoder.decode());
      return rest + (await tap.finish("complete"));
    }
    if (res.statusCode >= 400) {
      // An error answer is not charged, so it carries only what was written as the error: an answer
      // written under a success status before the handler failed (then Express's error page) is dropped.
      await session.failBeforeOutput(`handler answered ${res.statusCode}`, res.statusCode);
      // Bytes that are not an error's JSON (audio under a 500) are not forwarded uncharged.
      if (answersBytes && !/^\s*[^;]*[/+]json\b/i.test(String(res.getHeader("content-type") ?? ""))) {
        const answer = errorAnswer(
          "TOLLGATE_BACKEND_FAILED",
          `the handler answered ${res.statusCode}; nothing is charged`,
        );
        res.removeHeader("content-length");
        res.setHeader("content-type", "application/json");
        res.statusCode = answer.status;
        return JSON.stringify(answer.body);
      }
      return joinBuffered(
        buffered.filter((piece) => piece.errorBody),
        data,
        encoding,
      );
    }
    if (isStream()) {
      tap ??= session.createStreamWriter();
      const rest = tap.push(text(data, encoding) + decoder.decode());
      return rest + (await tap.finish("complete"));
    }
    const body = joinBuffered(buffered, data, encoding);
    const completed = answersBytes
      ? await session.completeBytes(new Uint8Array(body), String(res.getHeader("content-type") ?? ""))
      : await session.completeJson(body.toString("utf8"));
    res.removeHeader("content-length");
    if (!completed.ok) {
      res.status(completed.status).setHeader("content-type", "application/json");
      return JSON.stringify(completed.body);
    }
    for (const [name, value] of Object.entries(completed.headers)) res.setHeader(name, value);
    return completed.body;
  };

  next();
}

function joinBuffered(
  buffered: Array<{ bytes: Buffer }>,
  data: Chunk | undefined,
  encoding: BufferEncoding | undefined,
): Buffer {
  const pieces = buffered.map((piece) => piece.bytes);
  if (data !== undefined)
    pieces.push(typeof data === "string" ? Buffer.from(data, encoding) : Buffer.from(data));
  return Buffer.concat(pieces);
}

/** The largest form a form route reads in Express: a 25 MB audio file and its other fields. */
const MAX_FORM_BYTES = MAX_AUDIO_FILE_BYTES + 1024 * 1024;

/** The request's body bytes, or undefined once they pass `maxBytes` (the rest is not read). */
async function readNodeBody(req: Request, maxBytes: number): Promise<Uint8Array<ArrayBuffer> | undefined> {
  const declared = Number(req.get("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) return undefined;
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.byteLength;
    if (size > maxBytes) return undefined;
    chunks.push(chunk);
  }
  const bytes = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return bytes;
}

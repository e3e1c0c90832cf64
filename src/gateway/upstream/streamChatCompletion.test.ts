import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import { type MockBackend, mockCompletionText, startMockBackend } from "../../../test/support/mockBackend.js";
import { isTollgateError, type TollgateError } from "../../errors/index.js";
import type { ChatCompletionChunk } from "./backendSchemas.js";
import { createUpstreamClient, type UpstreamClient } from "./createUpstreamClient.js";
import { StreamMeter } from "./StreamMeter.js";
import type { UpstreamEndEvent, UpstreamStream } from "./streamBackendChunks.js";

let backend: MockBackend;
let upstream: UpstreamClient;

before(async () => {
  backend = await startMockBackend();
  upstream = createUpstreamClient({ baseUrl: backend.url });
});
after(() => backend.close());
beforeEach(async () => {
  await backend.whenIdle();
  backend.set({
    tokensPerSecond: 0,
    responseTokens: 16,
    reportUsage: true,
    failBeforeOutput: false,
    failAfterChunks: undefined,
    firstTokenDelayMs: 0,
  });
  backend.clearRequests();
});

const request = { model: "mock-model", messages: [{ role: "user", content: "three word prompt" }] };
const wordCount = (text: string) => text.split(/\s+/).filter(Boolean).length;

async function collect(stream: UpstreamStream<ChatCompletionChunk>) {
  const chunks: Array<{ raw: string; json: ChatCompletionChunk }> = [];
  let end: UpstreamEndEvent | undefined;
  for await (const event of stream) {
    if (event.type === "chunk") chunks.push(event);
    else end = event;
  }
  return { chunks, end };
}

function contentOf(chunks: ReadonlyArray<{ json: ChatCompletionChunk }>): string {
  return chunks.map((chunk) => chunk.json.choices?.[0]?.delta?.content ?? "").join("");
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

test("streams every chunk raw and parsed, then an end event with the backend's usage", async () => {
  backend.set({ responseTokens: 5 });
  const { chunks, end } = await collect(upstream.streamChatCompletion(request));

  assert.equal(contentOf(chunks), mockCompletionText(5));
  for (const chunk of chunks) assert.deepEqual(JSON.parse(chunk.raw), chunk.json);
  assert.deepEqual(end?.usage, { prompt_tokens: 3, completion_tokens: 5, total_tokens: 8 });
  assert.equal(end?.chunkCount, chunks.length);
  assert.equal(end?.receivedDone, true);
});

test("asks the backend to stream with usage, keeping the caller's other stream options", async () => {
  await collect(
    upstream.streamChatCompletion({ ...request, stream_options: { continuous_usage_stats: false } }),
  );
  const body = backend.requests[0]?.body as Record<string, unknown>;
  assert.equal(body.stream, true);
  assert.deepEqual(body.stream_options, { continuous_usage_stats: false, include_usage: true });
});

test("ends without usage when the backend reports none, and the meter counts the text instead", async () => {
  backend.set({ responseTokens: 7, reportUsage: false });
  const meter = new StreamMeter({ countTokens: wordCount });
  let end: UpstreamEndEvent | undefined;
  for await (const event of upstream.streamChatCompletion(request)) {
    if (event.type === "chunk") meter.add(event.json);
    else end = event;
  }
  assert.equal(end?.usage, undefined);
  assert.equal(meter.reportedUsage, undefined);
  assert.deepEqual(meter.usage({ promptTokens: 3 }), {
    prompt_tokens: 3,
    completion_tokens: 7,
    total_tokens: 10,
    source: "tokenizer",
  });
});

test("the backend stops at max_tokens and says so", async () => {
  backend.set({ responseTokens: 50 });
  const { chunks, end } = await collect(upstream.streamChatCompletion({ ...request, max_tokens: 4 }));
  assert.equal(contentOf(chunks), mockCompletionText(4));
  assert.equal(end?.usage?.completion_tokens, 4);
  assert.ok(chunks.some((chunk) => chunk.json.choices?.[0]?.finish_reason === "length"));
});

test("does nothing until the stream is read", async () => {
  upstream.streamChatCompletion(request);
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(backend.requests.length, 0);
});

test("breaking out of the loop aborts the backend request", async () => {
  backend.set({ responseTokens: 1000, tokensPerSecond: 100 });
  let received = 0;
  for await (const event of upstream.streamChatCompletion(request)) {
    if (event.type === "chunk") received++;
    if (received === 3) break;
  }
  await backend.whenIdle();
  const seen = backend.requests[0];
  assert.equal(seen?.clientAborted, true);
  assert.ok((seen?.tokensSent ?? 0) >= 3);
  assert.ok((seen?.tokensSent ?? 0) < 1000, `backend sent ${seen?.tokensSent} tokens`);
});

test("aborting the signal aborts the backend request and the loop throws the signal's reason", async () => {
  backend.set({ responseTokens: 1000, tokensPerSecond: 100 });
  const controller = new AbortController();
  const reason = new Error("buyer went away");
  let received = 0;
  const error = await rejection(
    (async () => {
      for await (const event of upstream.streamChatCompletion(request, { signal: controller.signal })) {
        if (event.type === "chunk") received++;
        if (received === 2) controller.abort(reason);
      }
    })(),
  );
  assert.equal(error, reason);
  await backend.whenIdle();
  assert.equal(backend.requests[0]?.clientAborted, true);
  assert.ok((backend.requests[0]?.tokensSent ?? 0) < 1000);
});

test("the backend stops producing when the reader stops reading (back-pressure)", async () => {
  backend.set({ responseTokens: 50_000 });
  const stream = upstream.streamChatCompletion(request);
  await stream.next();
  // Everything the backend could write without a reader is in socket and stream buffers by now.
  await new Promise((resolve) => setTimeout(resolve, 300));
  const sent = backend.requests[0]?.tokensSent ?? 0;
  assert.ok(sent < 50_000, `backend wrote all ${sent} tokens to a reader that stopped`);
  await stream.return();
  await backend.whenIdle();
  assert.equal(backend.requests[0]?.clientAborted, true);
});

test("a failure before any output throws BACKEND_FAILED with the status, and nothing was delivered", async () => {
  backend.set({ failBeforeOutput: true });
  const error = await rejection(collect(upstream.streamChatCompletion(request)));
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.equal(error.details.status, 500);
  assert.equal(error.details.chunksDelivered, 0);
  assert.equal(error.details.phase, "before-output");
  assert.match(String(error.details.bodyExcerpt), /injected failure/);
  assert.match(error.shortMessage, /HTTP 500/);
});

test("a connection dropped mid-stream throws BACKEND_FAILED after the chunks that did arrive", async () => {
  backend.set({ failAfterChunks: 3 });
  const delivered: string[] = [];
  const error = await rejection(
    (async () => {
      for await (const event of upstream.streamChatCompletion(request)) {
        if (event.type === "chunk") delivered.push(event.json.choices?.[0]?.delta?.content ?? "");
      }
    })(),
  );
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.deepEqual(error.details, { ...error.details, chunksDelivered: 3, phase: "mid-stream" });
  assert.equal(delivered.join(""), mockCompletionText(3));
});

test("a dropped connection before the first chunk is a failure before output", async () => {
  backend.set({ failAfterChunks: 0 });
  const error = (await rejection(collect(upstream.streamChatCompletion(request)))) as TollgateError;
  assert.equal(error.code, "TOLLGATE_BACKEND_FAILED");
  assert.equal(error.details.phase, "before-output");
});

test("a silent backend times out with BACKEND_TIMEOUT and the request is closed", async () => {
  backend.set({ firstTokenDelayMs: 60_000 });
  const impatient = createUpstreamClient({ baseUrl: backend.url, timeoutMs: 200 });
  const error = await rejection(collect(impatient.streamChatCompletion(request)));
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_TIMEOUT"), String(error));
  assert.equal(error.details.chunksDelivered, 0);
  await backend.whenIdle();
  assert.equal(backend.requests[0]?.clientAborted, true);
});

test("an unreachable backend throws BACKEND_FAILED", async () => {
  const closed = await startMockBackend();
  await closed.close();
  const unreachable = createUpstreamClient({ baseUrl: closed.url });
  const error = await rejection(collect(unreachable.streamChatCompletion(request)));
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.equal(error.details.phase, "before-output");
});

test("streams legacy /completions the same way", async () => {
  backend.set({ responseTokens: 6 });
  const meter = new StreamMeter({ countTokens: wordCount });
  let end: UpstreamEndEvent | undefined;
  for await (const event of upstream.streamCompletion({ model: "mock-model", prompt: "one two" })) {
    if (event.type === "chunk") meter.add(event.json);
    else end = event;
  }
  assert.equal(meter.completionText, mockCompletionText(6));
  assert.deepEqual(end?.usage, { prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 });
  assert.equal(meter.usage({ promptTokens: 99 }).source, "backend");
});

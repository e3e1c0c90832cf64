import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import { type MockBackend, mockCompletionText, startMockBackend } from "../../../test/support/mockBackend.js";
import { scriptedFetch } from "../../../test/support/scriptedFetch.js";
import { isTollgateError } from "../../errors/index.js";
import { createUpstreamClient, type UpstreamClient } from "./createUpstreamClient.js";

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
    failStatus: 500,
    failAfterChunks: undefined,
    firstTokenDelayMs: 0,
  });
  backend.clearRequests();
});

const request = { model: "mock-model", messages: [{ role: "user", content: "a four word prompt" }] };

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  assert.fail("expected a rejection");
}

test("returns the backend's completion with its usage", async () => {
  backend.set({ responseTokens: 5 });
  const completion = await upstream.chatCompletion(request);
  assert.equal(completion.choices[0]?.message.content, mockCompletionText(5));
  assert.deepEqual(completion.usage, { prompt_tokens: 4, completion_tokens: 5, total_tokens: 9 });
  // Fields the gateway does not read are kept for the buyer.
  assert.equal(completion.object, "chat.completion");
  assert.equal((completion.choices[0] as Record<string, unknown>).logprobs, null);
});

test("leaves usage undefined when the backend reports none", async () => {
  backend.set({ reportUsage: false });
  const completion = await upstream.chatCompletion(request);
  assert.equal(completion.usage, undefined);
});

test("never asks for a stream, whatever the body says", async () => {
  await upstream.chatCompletion({ ...request, stream: true, stream_options: { include_usage: true } });
  const body = backend.requests[0]?.body as Record<string, unknown>;
  assert.equal(body.stream, false);
  assert.equal("stream_options" in body, false);
});

test("passes max_tokens through and the backend honours it", async () => {
  backend.set({ responseTokens: 40 });
  const completion = await upstream.chatCompletion({ ...request, max_completion_tokens: 3 });
  assert.equal(completion.choices[0]?.message.content, mockCompletionText(3));
  assert.equal(completion.choices[0]?.finish_reason, "length");
  assert.equal(completion.usage?.completion_tokens, 3);
});

test("an HTTP error throws BACKEND_FAILED with the status and an excerpt of the body", async () => {
  backend.set({ failBeforeOutput: true, failStatus: 503 });
  const error = await rejection(upstream.chatCompletion(request));
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.equal(error.details.status, 503);
  assert.match(String(error.details.bodyExcerpt), /injected failure/);
  assert.match(error.shortMessage, /HTTP 503: the backend failed \(injected failure\)/);
});

test("a connection dropped before the answer throws BACKEND_FAILED", async () => {
  backend.set({ failAfterChunks: 2 });
  const error = await rejection(upstream.chatCompletion(request));
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
});

test("a slow backend throws BACKEND_TIMEOUT and sees its request closed", async () => {
  backend.set({ firstTokenDelayMs: 60_000 });
  const impatient = createUpstreamClient({ baseUrl: backend.url, timeoutMs: 200 });
  const error = await rejection(impatient.chatCompletion(request));
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_TIMEOUT"), String(error));
  assert.equal(error.details.timeoutMs, 200);
  await backend.whenIdle();
  assert.equal(backend.requests[0]?.clientAborted, true);
});

test("aborting the signal aborts the backend request with the signal's reason", async () => {
  backend.set({ firstTokenDelayMs: 60_000 });
  const controller = new AbortController();
  const pending = upstream.chatCompletion(request, { signal: controller.signal });
  while (backend.requests.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
  controller.abort(new Error("buyer left"));
  const error = await rejection(pending);
  assert.equal((error as Error).message, "buyer left");
  await backend.whenIdle();
  assert.equal(backend.requests[0]?.clientAborted, true);
});

test("an answer that is not a chat completion throws BACKEND_FAILED naming the field", async () => {
  const fetch = scriptedFetch(['{"id":42,"model":"m","choices":[{"index":0,"message":{"content":7}}]}'], {
    contentType: "application/json",
  });
  const client = createUpstreamClient({ baseUrl: "http://backend.invalid/v1", fetch });
  const error = await rejection(client.chatCompletion(request));
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.match(error.shortMessage, /\bid: /);
  assert.match(error.shortMessage, /choices\.0\.message\.content: /);
});

test("an answer that is not JSON throws BACKEND_FAILED", async () => {
  const fetch = scriptedFetch(["<html>bad gateway</html>"], { contentType: "text/html" });
  const client = createUpstreamClient({ baseUrl: "http://backend.invalid/v1", fetch });
  const error = await rejection(client.chatCompletion(request));
  assert.ok(isTollgateError(error, "TOLLGATE_BACKEND_FAILED"), String(error));
  assert.match(String(error.details.bodyExcerpt), /bad gateway/);
});

test("sends the API key as a bearer token to the base URL's path", async () => {
  const fetch = scriptedFetch(['{"id":"x","model":"m","choices":[]}'], { contentType: "application/json" });
  const client = createUpstreamClient({ baseUrl: "https://api.example.test/v1/", apiKey: "sk-test", fetch });
  await client.chatCompletion(request);
  const call = fetch.calls[0];
  assert.equal(call?.url, "https://api.example.test/v1/chat/completions");
  const headers = (call?.init?.headers ?? {}) as Record<string, string>;
  assert.equal(headers.authorization, "Bearer sk-test");
});

test("completion() and embeddings() call their endpoints", async () => {
  backend.set({ responseTokens: 2 });
  const completion = await upstream.completion({ model: "mock-model", prompt: "say two" });
  assert.equal(completion.choices[0]?.text, mockCompletionText(2));
  assert.deepEqual(completion.usage, { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 });

  const embeddings = await upstream.embeddings({ model: "mock-model", input: ["one two three", "four"] });
  assert.equal(embeddings.data.length, 2);
  assert.ok(Array.isArray(embeddings.data[0]?.embedding));
  assert.equal(embeddings.usage?.prompt_tokens, 4);
  assert.deepEqual(
    backend.requests.map((seen) => seen.path),
    ["/v1/completions", "/v1/embeddings"],
  );
});

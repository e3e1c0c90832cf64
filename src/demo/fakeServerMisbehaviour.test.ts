import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  defaultMockBackendControls,
  type MockBackend,
  mockCompletionText,
  mockModelId,
  startMockBackend,
} from "../../test/support/mockBackend.js";

// Stalls, garbage, lax `stream`, rate limits and the recorded body, read with plain fetch.

let backend: MockBackend;

before(async () => {
  backend = await startMockBackend();
});
after(() => backend.close());
beforeEach(async () => {
  await backend.whenIdle();
  backend.set(defaultMockBackendControls);
  backend.clearRequests();
});

function post(body: Record<string, unknown>, signal?: AbortSignal, url = backend.url): Promise<Response> {
  return fetch(`${url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: mockModelId, messages: [{ role: "user", content: "hi" }], ...body }),
    signal,
  });
}

/** The `data:` payloads of an event stream's text, in order. */
function dataOf(text: string): string[] {
  return text
    .split("\n\n")
    .filter((event) => event.startsWith("data: "))
    .map((event) => event.slice(6));
}

/** The text of the chat token chunks among `data:` payloads, skipping what is not JSON. */
function tokenText(payloads: readonly string[]): string {
  let text = "";
  for (const payload of payloads) {
    try {
      text += JSON.parse(payload).choices?.[0]?.delta?.content ?? "";
    } catch {}
  }
  return text;
}

test("stallAfterChunks sends the headers and N chunks, then nothing until the client aborts", async () => {
  backend.set({ responseTokens: 10, stallAfterChunks: 2 });
  const aborter = new AbortController();
  const response = await post({ stream: true }, aborter.signal);
  assert.equal(response.status, 200);
  const reader = (response.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (dataOf(text).length < 2) text += decoder.decode((await reader.read()).value, { stream: true });
  const nothing = Symbol("nothing");
  assert.equal(await Promise.race([reader.read(), sleep(300, nothing)]), nothing);
  assert.equal(tokenText(dataOf(text)), mockCompletionText(2));
  aborter.abort();
  await backend.whenIdle();
  assert.equal(backend.requests[0]?.tokensSent, 2);
  assert.equal(backend.requests[0]?.outcome, "client-aborted");
});

test("stallBeforeHeaders sends no headers, streaming or not, until the client aborts", async () => {
  backend.set({ stallBeforeHeaders: true });
  for (const stream of [true, false]) {
    await assert.rejects(post({ stream }, AbortSignal.timeout(300)), { name: "TimeoutError" });
  }
  await backend.whenIdle();
  for (const seen of backend.requests) {
    assert.equal(seen.status, undefined);
    assert.equal(seen.outcome, "client-aborted");
  }
  assert.equal(backend.requests.length, 2);
});

test("close() ends stalled requests instead of waiting for them", async () => {
  const stalling = await startMockBackend({ stallBeforeHeaders: true });
  const noHeaders = post({}, undefined, stalling.url);
  while (stalling.requests.length < 1) await sleep(10);
  stalling.set({ stallBeforeHeaders: false, stallAfterChunks: 1 });
  const midStream = await post({ stream: true }, undefined, stalling.url);
  const started = performance.now();
  await stalling.close();
  assert.ok(performance.now() - started < 15_000, "close() did not wait for the stalled requests");
  await assert.rejects(noHeaders);
  await assert.rejects(midStream.text());
});

test("garbage non_json_200 and error_object_200 answer 200 with no completion, to a stream too", async () => {
  backend.set({ garbage: "non_json_200" });
  for (const stream of [false, true]) {
    const response = await post({ stream });
    assert.equal(response.status, 200);
    assert.equal(response.headers.get("content-type"), "application/json");
    assert.equal(await response.text(), "<html>oops</html>");
  }
  backend.set({ garbage: "error_object_200" });
  const response = await post({});
  assert.equal(response.status, 200);
  assert.deepEqual(await response.json(), { error: { message: "overloaded", type: "server_error" } });
  assert.equal(backend.requests.at(-1)?.outcome, "garbage");
});

test("garbage error_first_event opens a 200 event stream with an error and closes it", async () => {
  backend.set({ garbage: "error_first_event" });
  const response = await post({ stream: true });
  assert.equal(response.status, 200);
  assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
  assert.equal(await response.text(), 'data: {"error":{"message":"boom"}}\n\n');
});

test("garbage error_after_chunks sends token chunks, then an error event, and no [DONE]", async () => {
  backend.set({ responseTokens: 10, garbage: "error_after_chunks" });
  const payloads = dataOf(await (await post({ stream: true })).text());
  assert.equal(payloads.length, 4);
  assert.equal(tokenText(payloads), mockCompletionText(3));
  assert.equal(JSON.parse(payloads[3] ?? "").error.type, "server_error");

  backend.set({ errorAfterChunks: 1 });
  const early = dataOf(await (await post({ stream: true })).text());
  assert.equal(tokenText(early), mockCompletionText(1));
  assert.ok(!early.includes("[DONE]") && JSON.parse(early.at(-1) ?? "").error !== undefined);
});

test("garbage malformed_sse_lines puts junk lines between the real chunks", async () => {
  backend.set({ responseTokens: 5, garbage: "malformed_sse_lines" });
  const text = await (await post({ stream: true })).text();
  const lines = text.split("\n");
  for (const junk of ["data: {not json", ": comment", "garbage line without colon", "event: weird"]) {
    assert.ok(lines.includes(junk), junk);
  }
  assert.equal(tokenText(dataOf(text)), mockCompletionText(5));
  assert.ok(text.endsWith("data: [DONE]\n\n"));
});

test("laxStream streams on any truthy stream value and reads include_usage laxly", async () => {
  const strict = await post({ stream: "true" });
  assert.equal(strict.status, 400);
  await strict.body?.cancel();

  backend.set({ responseTokens: 3, laxStream: true });
  for (const stream of ["true", 1, "yes"]) {
    const response = await post({ stream, stream_options: { include_usage: "1" } });
    assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8", String(stream));
    const payloads = dataOf(await response.text());
    assert.equal(tokenText(payloads), mockCompletionText(3));
    assert.equal(JSON.parse(payloads.at(-2) ?? "").usage.completion_tokens, 3);
  }
  const plain = await post({ stream: 0 });
  assert.equal(plain.headers.get("content-type"), "application/json");
  await plain.body?.cancel();
});

test("rateLimit answers 429 with Retry-After and an OpenAI error body", async () => {
  backend.set({ rateLimit: { retryAfter: "7" } });
  const response = await post({ stream: true });
  assert.equal(response.status, 429);
  assert.equal(response.headers.get("retry-after"), "7");
  const body = (await response.json()) as { error: { code: string; message: string } };
  assert.equal(body.error.code, "rate_limit_exceeded");
  assert.equal(backend.requests[0]?.tokensSent, 0);
});

test("records the body exactly as sent, every field untouched", async () => {
  backend.set({ laxStream: true });
  const sent = {
    model: "some-model",
    messages: [{ role: "user", content: "hi", extra: 1 }],
    stream: "yes",
    n_predict: 600,
    options: { num_predict: 7, temperature: 0.2 },
    unknown_field: [1, { nested: null }],
  };
  const response = await fetch(`${backend.url}/chat/completions`, {
    method: "POST",
    body: JSON.stringify(sent),
  });
  await response.text();
  assert.deepEqual(backend.requests[0]?.body, sent);
});

import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import OpenAI from "openai";
import {
  defaultMockBackendControls,
  type MockBackend,
  mockCompletionText,
  mockModelId,
  startMockBackend,
} from "../../test/support/mockBackend.js";
import { deterministicEmbedding } from "./deterministicEmbedding.js";

// The shared fake server, driven through the tests' mock backend, read by the official openai client.

let backend: MockBackend;
let openai: OpenAI;

before(async () => {
  backend = await startMockBackend();
  openai = new OpenAI({ apiKey: "x", baseURL: backend.url, maxRetries: 0 });
});
after(() => backend.close());
beforeEach(async () => {
  await backend.whenIdle();
  backend.set(defaultMockBackendControls);
  backend.clearRequests();
});

test("the openai client streams a chat completion with usage from the mock", async () => {
  backend.set({ responseTokens: 6 });
  const stream = await openai.chat.completions.create({
    model: "any-model",
    messages: [{ role: "user", content: "count these four words" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let usage: OpenAI.CompletionUsage | null | undefined;
  let finishReason: string | null | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? "";
    finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
    usage = chunk.usage ?? usage;
    assert.equal(chunk.model, "any-model");
  }
  assert.equal(text, mockCompletionText(6));
  assert.equal(finishReason, "stop");
  assert.deepEqual(usage, { prompt_tokens: 4, completion_tokens: 6, total_tokens: 10 });
});

test("sends the usage chunk only when the client asked for it and usage is on", async () => {
  const usageChunks = async () => {
    let count = 0;
    const stream = await openai.chat.completions.create({
      model: mockModelId,
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    });
    for await (const chunk of stream) if (chunk.usage) count++;
    return count;
  };
  assert.equal(await usageChunks(), 0);

  backend.set({ reportUsage: false });
  const stream = await openai.chat.completions.create({
    model: mockModelId,
    messages: [{ role: "user", content: "hi" }],
    stream: true,
    stream_options: { include_usage: true },
  });
  for await (const chunk of stream) assert.equal(chunk.usage ?? null, null);
  const answer = await openai.chat.completions.create({
    model: mockModelId,
    messages: [{ role: "user", content: "hi" }],
  });
  assert.equal(answer.usage, undefined);
});

test("honours max_tokens and max_completion_tokens, the smaller winning", async () => {
  backend.set({ responseTokens: 30 });
  const capped = await openai.chat.completions.create({
    model: mockModelId,
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 8,
    max_completion_tokens: 5,
  });
  assert.equal(capped.choices[0]?.message.content, mockCompletionText(5));
  assert.equal(capped.choices[0]?.finish_reason, "length");
  assert.equal(capped.usage?.completion_tokens, 5);

  const stream = await openai.completions.create({
    model: mockModelId,
    prompt: "x",
    max_tokens: 3,
    stream: true,
  });
  let text = "";
  for await (const chunk of stream) text += chunk.choices[0]?.text ?? "";
  assert.equal(text, mockCompletionText(3));
  assert.equal(backend.requests.at(-1)?.tokensSent, 3);
});

test("counts prompt tokens as whitespace-separated words of every message, text parts included", async () => {
  const answer = await openai.chat.completions.create({
    model: mockModelId,
    messages: [
      { role: "system", content: "be brief" },
      {
        role: "user",
        content: [
          { type: "text", text: "one two" },
          { type: "text", text: "three" },
        ],
      },
    ],
  });
  assert.equal(answer.usage?.prompt_tokens, 5);
});

test("records each request: body, arrival, streaming, tokens sent, outcome", async () => {
  backend.set({ responseTokens: 4 });
  const before = Date.now();
  const stream = await openai.chat.completions.create({
    model: mockModelId,
    messages: [{ role: "user", content: "hi" }],
    stream: true,
  });
  for await (const _chunk of stream) {
    // drain
  }
  await backend.whenIdle();
  const [seen] = backend.requests;
  assert.ok(seen !== undefined && backend.requests.length === 1);
  assert.equal(seen?.path, "/v1/chat/completions");
  assert.deepEqual((seen.body as { messages: unknown }).messages, [{ role: "user", content: "hi" }]);
  assert.ok((seen?.receivedAt ?? 0) >= before);
  assert.equal(seen?.stream, true);
  assert.equal(seen?.tokensSent, 4);
  assert.equal(seen?.clientAborted, false);
  assert.equal(seen?.outcome, "completed");
});

test("sees the client abort a stream and how many tokens it had sent", async () => {
  backend.set({ responseTokens: 1000, tokensPerSecond: 100 });
  const stream = await openai.chat.completions.create({
    model: mockModelId,
    messages: [{ role: "user", content: "hi" }],
    stream: true,
  });
  let received = 0;
  for await (const _chunk of stream) if (++received === 3) break;
  await backend.whenIdle();
  const seen = backend.requests[0];
  assert.equal(seen?.clientAborted, true);
  assert.equal(seen?.outcome, "client-aborted");
  assert.ok((seen?.tokensSent ?? 0) >= 3 && (seen?.tokensSent ?? 0) < 1000, `sent ${seen?.tokensSent}`);
});

test("fails before any output with HTTP 500 and an OpenAI error body", async () => {
  backend.set({ failBeforeOutput: true });
  await assert.rejects(
    openai.chat.completions.create({
      model: mockModelId,
      messages: [{ role: "user", content: "hi" }],
      stream: true,
    }),
    (error: unknown) => error instanceof OpenAI.InternalServerError && /injected failure/.test(error.message),
  );
  assert.equal(backend.requests[0]?.outcome, "failed-before-output");
  assert.equal(backend.requests[0]?.tokensSent, 0);
});

test("drops the connection after N chunks", async () => {
  backend.set({ failAfterChunks: 2 });
  const stream = await openai.chat.completions.create({
    model: mockModelId,
    messages: [{ role: "user", content: "hi" }],
    stream: true,
  });
  let text = "";
  await assert.rejects(async () => {
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? "";
  });
  assert.equal(text, mockCompletionText(2));
  await backend.whenIdle();
  assert.equal(backend.requests[0]?.outcome, "connection-dropped");
  assert.equal(backend.requests[0]?.clientAborted, false);
});

test("serves deterministic embeddings, as floats or base64, and lists its model", async () => {
  const viaClient = await openai.embeddings.create({ model: mockModelId, input: ["alpha beta", "gamma"] });
  assert.equal(viaClient.data.length, 2);
  const expected = deterministicEmbedding("alpha beta");
  viaClient.data[0]?.embedding.forEach((value, index) => {
    assert.ok(Math.abs(value - (expected[index] ?? Number.NaN)) < 1e-6);
  });
  assert.equal(viaClient.usage.prompt_tokens, 3);

  const floats = await openai.embeddings.create({
    model: mockModelId,
    input: "gamma",
    encoding_format: "float",
  });
  assert.deepEqual(floats.data[0]?.embedding, deterministicEmbedding("gamma"));

  const models = await openai.models.list();
  assert.deepEqual(
    models.data.map((model) => model.id),
    [mockModelId],
  );
});

test("rejects a malformed request with 400 and an unknown route with 404", async () => {
  const response = await fetch(`${backend.url}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: mockModelId, max_tokens: 5 }),
  });
  assert.equal(response.status, 400);
  const body = (await response.json()) as { error: { message: string; type: string } };
  assert.equal(body.error.type, "invalid_request_error");
  assert.match(body.error.message, /messages/);

  const missing = await fetch(`${backend.url}/no/such/route`, { method: "POST", body: "{}" });
  assert.equal(missing.status, 404);
  await missing.body?.cancel();
});

test("paces tokens at the set rate after the first-token delay", async () => {
  backend.set({ responseTokens: 10, tokensPerSecond: 100, firstTokenDelayMs: 200 });
  const started = performance.now();
  const answer = await openai.chat.completions.create({
    model: mockModelId,
    messages: [{ role: "user", content: "x" }],
  });
  // 200 ms + 10 tokens at 100/s = 300 ms at the least; only a lower bound is safe on a busy machine.
  assert.ok(performance.now() - started >= 290);
  assert.equal(answer.choices[0]?.message.content, mockCompletionText(10));
});

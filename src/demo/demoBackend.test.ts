import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { countTokens } from "gpt-tokenizer";
import OpenAI from "openai";
import { countPromptTokens } from "./countPromptTokens.js";
import { demoAnswerText } from "./demoAnswer.js";
import { type DemoBackend, demoModelId, startDemoBackend } from "./demoBackend.js";

let demo: DemoBackend;
let fastDemo: DemoBackend;

before(async () => {
  demo = await startDemoBackend({ countTokens });
  fastDemo = await startDemoBackend({ countTokens, tokensPerSecond: 0 });
});
after(() => Promise.all([demo.close(), fastDemo.close()]));

const messages = [
  { role: "system" as const, content: "You are terse." },
  { role: "user" as const, content: "What is Tollgate?" },
];

test("the openai client streams from the demo, one token per chunk, with true usage", async () => {
  const openai = new OpenAI({ apiKey: "x", baseURL: fastDemo.url, maxRetries: 0 });
  const stream = await openai.chat.completions.create({
    model: demoModelId,
    messages,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let contentChunks = 0;
  let usage: OpenAI.CompletionUsage | null | undefined;
  let finishReason: string | null | undefined;
  for await (const chunk of stream) {
    const content = chunk.choices[0]?.delta.content;
    if (content) {
      text += content;
      contentChunks++;
    }
    finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
    usage = chunk.usage ?? usage;
  }
  assert.equal(text, demoAnswerText(messages.map((message) => message.content).join("\n")));
  assert.equal(finishReason, "stop");
  assert.equal(usage?.completion_tokens, countTokens(text));
  assert.equal(usage?.completion_tokens, contentChunks);
  assert.equal(
    usage?.prompt_tokens,
    countPromptTokens({ endpoint: "chat", body: { model: demoModelId, messages } }, countTokens),
  );
  // OpenAI's framing: 3 per message and 3 to prime the reply, on top of roles and contents.
  const contentTokens = messages.reduce(
    (sum, message) => sum + countTokens(message.role) + countTokens(message.content),
    0,
  );
  assert.equal(usage?.prompt_tokens, contentTokens + 3 * messages.length + 3);
});

test("answers the same prompt with the same text, and another prompt may differ", async () => {
  const openai = new OpenAI({ apiKey: "x", baseURL: fastDemo.url, maxRetries: 0 });
  const ask = async (content: string) =>
    (await openai.chat.completions.create({ model: demoModelId, messages: [{ role: "user", content }] }))
      .choices[0]?.message.content;
  assert.equal(await ask("hello"), await ask("hello"));
  const answers = new Set(await Promise.all(["a", "b", "c", "d", "e", "f", "g"].map(ask)));
  assert.ok(answers.size > 1);
});

test("stops at max_tokens and reports exactly that many completion tokens", async () => {
  const openai = new OpenAI({ apiKey: "x", baseURL: fastDemo.url, maxRetries: 0 });
  const stream = await openai.chat.completions.create({
    model: demoModelId,
    messages,
    max_tokens: 17,
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = "";
  let completionTokens: number | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? "";
    if (chunk.usage) completionTokens = chunk.usage.completion_tokens;
  }
  assert.equal(completionTokens, 17);
  assert.equal(countTokens(text), 17);

  const completion = await openai.completions.create({
    model: demoModelId,
    prompt: "Once upon a time",
    max_tokens: 9,
  });
  assert.equal(completion.choices[0]?.finish_reason, "length");
  assert.equal(completion.usage?.completion_tokens, 9);
  assert.equal(completion.usage?.prompt_tokens, countTokens("Once upon a time"));
});

test("streams at about 50 tokens per second by default", async () => {
  const openai = new OpenAI({ apiKey: "x", baseURL: demo.url, maxRetries: 0 });
  const started = performance.now();
  const stream = await openai.chat.completions.create({
    model: demoModelId,
    messages,
    max_tokens: 30,
    stream: true,
  });
  let chunks = 0;
  for await (const chunk of stream) if (chunk.choices[0]?.delta.content) chunks++;
  assert.equal(chunks, 30);
  assert.ok(performance.now() - started >= 500, "30 tokens at 50/s cannot take less than 0.5 s");
});

test("lists the demo model and embeds deterministically", async () => {
  const openai = new OpenAI({ apiKey: "x", baseURL: fastDemo.url, maxRetries: 0 });
  const models = await openai.models.list();
  assert.deepEqual(
    models.data.map((model) => model.id),
    [demoModelId],
  );
  const first = await openai.embeddings.create({ model: demoModelId, input: "pay per token" });
  const second = await openai.embeddings.create({ model: demoModelId, input: "pay per token" });
  assert.deepEqual(first.data[0]?.embedding, second.data[0]?.embedding);
  assert.equal(first.usage.prompt_tokens, countTokens("pay per token"));
});

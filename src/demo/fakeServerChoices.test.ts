import assert from "node:assert/strict";
import { after, before, beforeEach, test } from "node:test";
import {
  defaultMockBackendControls,
  type MockBackend,
  mockCompletionText,
  mockModelId,
  startMockBackend,
} from "../../test/support/mockBackend.js";

// Output limits in every dialect, `n` / `best_of` / prompt-array choices and usage lies, on the wire.

type Choice = { index: number; text?: string; message?: { content: string }; finish_reason: string };
type Answer = { choices: Choice[]; usage?: Record<string, number> };
type Chunk = {
  choices: Array<{
    index: number;
    text?: string;
    delta?: { content?: string };
    finish_reason: string | null;
  }>;
  usage?: Record<string, number> | null;
};

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

async function post(path: "chat" | "completion", body: Record<string, unknown>): Promise<Response> {
  const route = path === "chat" ? "chat/completions" : "completions";
  const base = path === "chat" ? { messages: [{ role: "user", content: "two words" }] } : { prompt: "x" };
  return fetch(`${backend.url}/${route}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ model: mockModelId, ...base, ...body }),
  });
}

async function answer(path: "chat" | "completion", body: Record<string, unknown>): Promise<Answer> {
  const response = await post(path, body);
  assert.equal(response.status, 200);
  return (await response.json()) as Answer;
}

/** The JSON data events of a whole event stream, `[DONE]` left out. */
async function chunks(path: "chat" | "completion", body: Record<string, unknown>): Promise<Chunk[]> {
  const response = await post(path, { ...body, stream: true });
  assert.equal(response.headers.get("content-type"), "text/event-stream; charset=utf-8");
  const events = (await response.text()).split("\n\n").filter((event) => event.startsWith("data: "));
  return events.filter((event) => event !== "data: [DONE]").map((event) => JSON.parse(event.slice(6)));
}

const choiceText = (choice: Choice | undefined) => choice?.message?.content ?? choice?.text;

test("honours every output-limit dialect, the smallest winning", async () => {
  backend.set({ responseTokens: 50 });
  const limits = [
    { n_predict: 4, max_tokens: 9 },
    { num_predict: 4, max_completion_tokens: 9 },
    { options: { num_predict: 4 }, max_tokens: 30 },
    { n_predict: -1, max_tokens: 4 },
  ];
  for (const limit of limits) {
    const whole = await answer("chat", limit);
    assert.equal(choiceText(whole.choices[0]), mockCompletionText(4), JSON.stringify(limit));
    assert.equal(whole.choices[0]?.finish_reason, "length");
    const streamed = await chunks("completion", limit);
    assert.equal(streamed.map((chunk) => chunk.choices[0]?.text ?? "").join(""), mockCompletionText(4));
  }
});

test("outputLimitField reads only that field, as llama.cpp reads n_predict", async () => {
  backend.set({ responseTokens: 700 });
  const limits = { n_predict: 600, max_tokens: 5 };
  assert.equal(choiceText((await answer("completion", limits)).choices[0]), mockCompletionText(5));

  backend.set({ outputLimitField: "n_predict" });
  const whole = await answer("completion", limits);
  assert.equal(choiceText(whole.choices[0]), mockCompletionText(600));
  assert.equal(whole.usage?.completion_tokens, 600);
  backend.set({ outputLimitField: "options.num_predict" });
  const streamed = await chunks("chat", { max_tokens: 2, options: { num_predict: 7 } });
  assert.equal(streamed.filter((chunk) => chunk.choices[0]?.delta?.content).length, 7);
});

test("ignoreOutputLimit generates every token whatever the limit", async () => {
  backend.set({ responseTokens: 10, ignoreOutputLimit: true });
  const whole = await answer("chat", { max_tokens: 3, n_predict: 2 });
  assert.equal(choiceText(whole.choices[0]), mockCompletionText(10));
  assert.equal(whole.choices[0]?.finish_reason, "stop");
  assert.equal(whole.usage?.completion_tokens, 10);
  const streamed = await chunks("completion", { max_tokens: 3, stream_options: { include_usage: true } });
  assert.equal(streamed.map((chunk) => chunk.choices[0]?.text ?? "").join(""), mockCompletionText(10));
  assert.equal(streamed.at(-1)?.usage?.completion_tokens, 10);
  assert.equal(backend.requests.at(-1)?.tokensSent, 10);
});

test("answers n chat choices, streamed interleaved by index, usage counting them all", async () => {
  backend.set({ responseTokens: 4 });
  const whole = await answer("chat", { n: 3 });
  assert.deepEqual(
    whole.choices.map((choice) => [choice.index, choiceText(choice)]),
    [0, 1, 2].map((index) => [index, mockCompletionText(4)]),
  );
  assert.deepEqual(whole.usage, { prompt_tokens: 2, completion_tokens: 12, total_tokens: 14 });

  const streamed = await chunks("chat", { n: 3, max_tokens: 2, stream_options: { include_usage: true } });
  const tokenIndexes = streamed.filter((chunk) => chunk.choices[0]?.delta?.content);
  assert.deepEqual(
    tokenIndexes.map((chunk) => chunk.choices[0]?.index),
    [0, 1, 2, 0, 1, 2],
  );
  const closing = streamed.filter((chunk) => chunk.choices[0]?.finish_reason);
  assert.deepEqual(
    closing.map((chunk) => [chunk.choices[0]?.index, chunk.choices[0]?.finish_reason]),
    [
      [0, "length"],
      [1, "length"],
      [2, "length"],
    ],
  );
  assert.deepEqual(streamed.at(-1)?.usage, { prompt_tokens: 2, completion_tokens: 6, total_tokens: 8 });
  assert.equal(backend.requests.at(-1)?.tokensSent, 6);
});

test("answers one completion choice per prompt × n, indexed prompt by prompt", async () => {
  backend.set({ responseTokens: 3 });
  const whole = await answer("completion", { prompt: ["one two", "three"], n: 2 });
  assert.deepEqual(
    whole.choices.map((choice) => choice.index),
    [0, 1, 2, 3],
  );
  assert.deepEqual(whole.usage, { prompt_tokens: 3, completion_tokens: 12, total_tokens: 15 });

  const streamed = await chunks("completion", {
    prompt: ["a", "b"],
    stream_options: { include_usage: true },
  });
  const text = new Map<number, string>();
  for (const chunk of streamed) {
    const choice = chunk.choices[0];
    if (choice) text.set(choice.index, (text.get(choice.index) ?? "") + (choice.text ?? ""));
  }
  assert.deepEqual(
    [...text],
    [
      [0, mockCompletionText(3)],
      [1, mockCompletionText(3)],
    ],
  );
  assert.equal(streamed.at(-1)?.usage?.completion_tokens, 6);
});

test("best_of generates more candidates than it sends and bills them all", async () => {
  backend.set({ responseTokens: 5 });
  const whole = await answer("completion", { n: 1, best_of: 3 });
  assert.equal(whole.choices.length, 1);
  assert.equal(whole.usage?.completion_tokens, 15);
  assert.equal(backend.requests.at(-1)?.tokensSent, 5);
});

test("usageOverride reports made-up numbers, streaming or not", async () => {
  backend.set({ responseTokens: 5, usageOverride: { completion_tokens: 1 } });
  const deflated = await answer("chat", {});
  assert.equal(choiceText(deflated.choices[0]), mockCompletionText(5));
  assert.deepEqual(deflated.usage, { prompt_tokens: 2, completion_tokens: 1, total_tokens: 3 });

  backend.set({ usageOverride: { prompt_tokens: 1000, completion_tokens: 5000 } });
  const streamed = await chunks("completion", { stream_options: { include_usage: true } });
  assert.deepEqual(streamed.at(-1)?.usage, {
    prompt_tokens: 1000,
    completion_tokens: 5000,
    total_tokens: 6000,
  });
});

test("reportPromptUsage false sends completion_tokens alone", async () => {
  backend.set({ responseTokens: 4, reportPromptUsage: false });
  assert.deepEqual((await answer("completion", {})).usage, { completion_tokens: 4 });
  const streamed = await chunks("chat", { stream_options: { include_usage: true } });
  assert.deepEqual(streamed.at(-1)?.usage, { completion_tokens: 4 });
});

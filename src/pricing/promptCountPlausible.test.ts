import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodeChat as encodeChatO200k, encode as encodeO200k } from "gpt-tokenizer/encoding/o200k_base";
import { promptCountPlausible } from "./promptCountPlausible.js";
import { messagesPlainTexts, messagesPromptBody } from "./routePromptBody.js";

const plain = { disallowedSpecial: new Set<string>() };
const essay = "Rome grew from a small town on the Tiber into an empire that ruled the Mediterranean. ".repeat(
  60,
);
const messages = [
  { role: "system" as const, content: "You are a careful historian." },
  { role: "user" as const, content: essay },
];
const chat = { kind: "chat" as const, body: { messages }, model: "gpt-4o" };
const honest = encodeChatO200k(messages, "gpt-4o", plain).length;

describe("promptCountPlausible", () => {
  test("believes the model's own count and one down to about half of it", async () => {
    assert.ok(honest > 1_000, `a long prompt (${honest} tokens)`);
    assert.equal(await promptCountPlausible(chat, honest), true);
    assert.equal(await promptCountPlausible(chat, Math.ceil(honest * 0.55)), true);
  });

  test("does not believe 0, nor a third, for a long prompt", async () => {
    assert.equal(await promptCountPlausible(chat, 0), false);
    assert.equal(await promptCountPlausible(chat, Math.floor(honest / 3)), false);
  });

  test("a few tokens of slack: a short prompt reported as 0 is believed", async () => {
    const short = { kind: "chat" as const, body: { messages: [{ role: "user", content: "hi" }] } };
    assert.equal(await promptCountPlausible({ ...short, model: "gpt-4o" }, 0), true);
  });

  test("a long run of one character is counted, not judged by its bytes: its honest count stands", async () => {
    const run = { kind: "completion" as const, body: { prompt: "=".repeat(16_000) }, model: "gpt-4o" };
    const count = encodeO200k("=".repeat(16_000), plain).length;
    assert.ok(count * 8 < 16_000, `the run counts ${count}, under one token per 8 bytes`);
    assert.equal(await promptCountPlausible(run, count), true);
    assert.equal(await promptCountPlausible(run, 0), false);
  });

  test("images, the template and tools only raise an honest count: they are not weighed", async () => {
    const image = { type: "image_url", image_url: { url: `data:image/png;base64,${"A".repeat(40_000)}` } };
    const tools = Array.from({ length: 40 }, (_, index) => ({
      type: "function",
      function: { name: `tool_${index}`, description: essay.slice(0, 400), parameters: { type: "object" } },
    }));
    const body = {
      messages: [{ role: "user", content: [{ type: "text", text: "What is in this picture?" }, image] }],
      tools,
    };
    // A low-detail image is 85 tokens: a report of the text and the image alone is honest.
    assert.equal(await promptCountPlausible({ kind: "chat", body, model: "gpt-4o" }, 85 + 12), true);
  });

  test("token ids count one each", async () => {
    const ids = { kind: "embedding" as const, body: { input: Array.from({ length: 2_000 }, (_, i) => i) } };
    assert.equal(await promptCountPlausible({ ...ids, model: "text-embedding-3-small" }, 2_000), true);
    assert.equal(await promptCountPlausible({ ...ids, model: "text-embedding-3-small" }, 10), false);
  });

  test("a model whose tokenizer the gateway does not know is weighed by o200k's count", async () => {
    const llama = { ...chat, model: "llama-3.1-8b-instruct" };
    // Llama 3's tokenizer counts English about as o200k does; older ones count more, never half.
    assert.equal(await promptCountPlausible(llama, Math.round(honest * 1.1)), true);
    assert.equal(await promptCountPlausible(llama, 0), false);
  });

  test("for a Messages prompt its text alone is weighed, not the blocks' JSON (ids, thinking signatures a backend drops)", async () => {
    const turns = Array.from({ length: 30 }, (_, i) => [
      {
        role: "assistant",
        content: [
          { type: "thinking", thinking: "", signature: "ErUBCkYIBhgCIkA".repeat(30) },
          {
            type: "tool_use",
            id: `toolu_01${"Ab".repeat(11)}${i}`,
            name: "lookup",
            input: { q: `item ${i}` },
          },
        ],
      },
      {
        role: "user",
        content: [
          { type: "tool_result", tool_use_id: `toolu_01${"Ab".repeat(11)}${i}`, content: `result ${i}` },
        ],
      },
    ]).flat();
    const fields = { messages: [{ role: "user", content: "Look up thirty items." }, ...turns] };
    const prompt = { kind: "chat" as const, body: messagesPromptBody(fields), model: "claude-sonnet-4" };
    const texts = messagesPlainTexts(fields);
    assert.deepEqual(texts.slice(0, 3), ["Look up thirty items.", "item 0", "result 0"]);
    // An honest count: the text, and some tokens per block for the template and the tool calls.
    const honestish = texts.reduce((sum, text) => sum + encodeO200k(text, plain).length, 0) + 60 * 8;
    assert.equal(await promptCountPlausible(prompt, honestish, texts), true);
    assert.equal(await promptCountPlausible(prompt, honestish), false, "weighed by its JSON it would not be");
    assert.equal(await promptCountPlausible(prompt, 0, texts), false, "0 for it all is still not believed");
  });
});

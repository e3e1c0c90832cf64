import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  countTokens as countCl100k,
  encodeChat as encodeChatCl100k,
} from "gpt-tokenizer/encoding/cl100k_base";
import { countTokens as countO200k, encodeChat as encodeChatO200k } from "gpt-tokenizer/encoding/o200k_base";
import { isTollgateError } from "../errors/index.js";
import { type SeededRandom, seededRandom } from "../protocol/testing/seededRandom.js";
import { imageTokenBound, promptTokenBound } from "./promptTokenBound.js";
import { randomText } from "./testing/randomText.js";

const plain = { disallowedSpecial: new Set<string>() };
type Message = { role: "system" | "user" | "assistant"; content: string; name?: string };

function randomConversation(random: SeededRandom): Message[] {
  return Array.from({ length: random.int(1, 6) }, () => {
    const message: Message = {
      role: random.pick(["system", "user", "assistant"] as const),
      content: randomText(random, 150),
    };
    if (random.next() < 0.2) message.name = `agent_${random.int(0, 999)}`;
    return message;
  });
}

/** OpenAI's documented accounting: 3 per message, 1 per name, 3 to prime the reply. */
function cookbookCount(messages: Message[], count: (text: string) => number): number {
  let total = 3;
  for (const message of messages) {
    total += 3 + count(message.role) + count(message.content);
    if (message.name !== undefined) total += 1 + count(message.name);
  }
  return total;
}

function expectInvalid(run: () => unknown, field: string) {
  assert.throws(
    run,
    (error) => isTollgateError(error, "TOLLGATE_REQUEST_INVALID") && error.details.field === field,
  );
}

describe("promptTokenBound: chat", () => {
  test("is never below the real count for gpt-4o and gpt-4 chats (seeded property)", () => {
    const random = seededRandom(21);
    for (let i = 0; i < 300; i++) {
      const messages = randomConversation(random);
      const o200k = promptTokenBound({ kind: "chat", body: { model: "gpt-4o", messages } });
      assert.ok(o200k >= encodeChatO200k(messages, "gpt-4o", plain).length);
      assert.ok(o200k >= cookbookCount(messages, (text) => countO200k(text, plain)));
      const cl100k = promptTokenBound({ kind: "chat", body: { model: "gpt-4", messages } });
      assert.ok(cl100k >= encodeChatCl100k(messages, "gpt-4", plain).length);
      assert.ok(cl100k >= cookbookCount(messages, (text) => countCl100k(text, plain)));
    }
  });

  test("bounds unknown models by bytes, above any byte-level BPE count (seeded property)", () => {
    const random = seededRandom(22);
    for (let i = 0; i < 300; i++) {
      const messages = randomConversation(random);
      const bound = promptTokenBound({ kind: "chat", body: { model: "llama-3.1-8b-instruct", messages } });
      assert.ok(bound >= cookbookCount(messages, (text) => countO200k(text, plain)));
      assert.ok(bound >= cookbookCount(messages, (text) => countCl100k(text, plain)));
      const bytes = messages.reduce(
        (sum, m) => sum + Buffer.byteLength(m.content) + Buffer.byteLength(m.role),
        0,
      );
      assert.ok(bound >= bytes);
    }
  });

  test("is tighter with a known tokenizer than with the byte bound", () => {
    const messages = [
      { role: "user", content: "Summarize the history of the Roman Empire in three sentences." },
    ];
    const exact = promptTokenBound({ kind: "chat", body: { messages }, model: "gpt-4o" });
    const bytes = promptTokenBound({ kind: "chat", body: { messages }, model: "some-local-model" });
    assert.ok(exact < bytes);
    assert.ok(exact <= countO200k(messages[0]?.content ?? "") + 30);
  });

  test("a pinned tokenizer name overrides the body's model", () => {
    const body = { model: "my-finetune", messages: [{ role: "user", content: "hello there" }] };
    assert.equal(
      promptTokenBound({ kind: "chat", body, model: "o200k_base" }),
      promptTokenBound({ kind: "chat", body: { ...body, model: "gpt-4o" } }),
    );
  });

  test("counts content parts, names, tool calls, tool results and tool definitions", () => {
    const base = [{ role: "user", content: "What is the weather in Paris?" }];
    const withParts = [{ role: "user", content: [{ type: "text", text: "What is the weather in Paris?" }] }];
    const toolCall = {
      role: "assistant",
      content: null,
      tool_calls: [
        {
          id: "call_1",
          type: "function",
          function: { name: "get_weather", arguments: '{"city":"Paris","unit":"celsius"}' },
        },
      ],
    };
    const toolResult = {
      role: "tool",
      tool_call_id: "call_1",
      content: '{"temperature": 21, "sky": "clear"}',
    };
    const tools = [
      {
        type: "function",
        function: {
          name: "get_weather",
          parameters: { type: "object", properties: { city: { type: "string" } } },
        },
      },
    ];
    const bound = (body: Record<string, unknown>) =>
      promptTokenBound({ kind: "chat", body: { model: "gpt-4o", ...body } });

    const plainBound = bound({ messages: base });
    assert.ok(bound({ messages: withParts }) >= plainBound);
    const withCall = bound({ messages: [...base, toolCall] });
    assert.ok(
      withCall - plainBound >= countO200k('{"city":"Paris","unit":"celsius"}') + countO200k("get_weather"),
    );
    const withResult = bound({ messages: [...base, toolCall, toolResult] });
    assert.ok(withResult - withCall >= countO200k('{"temperature": 21, "sky": "clear"}'));
    assert.ok(bound({ messages: base, tools }) - plainBound >= countO200k(JSON.stringify(tools)));
  });

  test("counts each image at the model's image bound, not its URL", () => {
    const image = { type: "image_url", image_url: { url: `data:image/png;base64,${"A".repeat(100_000)}` } };
    const messages = [{ role: "user", content: [{ type: "text", text: "what is this?" }, image, image] }];
    const textOnly = promptTokenBound({
      kind: "chat",
      body: {
        model: "gpt-4o",
        messages: [{ role: "user", content: [{ type: "text", text: "what is this?" }] }],
      },
    });
    // Each image part still pays for its own keys and `type` (a few tokens), never for its URL.
    const partText = (bound: number, images: number) => bound - textOnly - images;
    const atDefault = promptTokenBound({ kind: "chat", body: { model: "gpt-4o", messages } });
    const at85 = promptTokenBound({ kind: "chat", body: { model: "gpt-4o", messages }, imageTokens: 85 });
    assert.ok(partText(atDefault, 2 * imageTokenBound("gpt-4o")) >= 0);
    assert.ok(partText(atDefault, 2 * imageTokenBound("gpt-4o")) <= 20);
    assert.equal(atDefault - at85, 2 * (imageTokenBound("gpt-4o") - 85));
    assert.ok(imageTokenBound("gpt-4o-mini") > 40_000, "gpt-4o-mini bills images at ~33x");
  });

  test("counts inline audio and file data by bytes, and refuses files it cannot see", () => {
    const audio = { type: "input_audio", input_audio: { data: "UklGR".repeat(1000), format: "wav" } };
    const withAudio = promptTokenBound({
      kind: "chat",
      body: { model: "gpt-4o", messages: [{ role: "user", content: [audio] }] },
    });
    assert.ok(withAudio >= 5000);
    const file = { type: "file", file: { filename: "a.pdf", file_data: "JVBERi0".repeat(1000) } };
    assert.ok(
      promptTokenBound({
        kind: "chat",
        body: { model: "gpt-4o", messages: [{ role: "user", content: [file] }] },
      }) >= 7000,
    );
    expectInvalid(
      () =>
        promptTokenBound({
          kind: "chat",
          body: { messages: [{ role: "user", content: [{ type: "file", file: { file_id: "file-1" } }] }] },
        }),
      "messages[0].content[].file",
    );
  });

  test("refuses bodies without messages, naming the field", () => {
    expectInvalid(() => promptTokenBound({ kind: "chat", body: {} }), "messages");
    expectInvalid(() => promptTokenBound({ kind: "chat", body: { messages: [] } }), "messages");
    expectInvalid(() => promptTokenBound({ kind: "chat", body: { messages: ["hi"] } }), "messages[0]");
  });

  test("survives deeply nested content without exhausting the stack", () => {
    let nested: unknown = "deep";
    for (let i = 0; i < 100_000; i++) nested = [nested];
    const bound = promptTokenBound({ kind: "chat", body: { messages: [{ role: "user", content: nested }] } });
    assert.ok(bound >= 4);
  });
});

describe("promptTokenBound: completions and embeddings", () => {
  test("counts a string, strings, token ids and arrays of token ids", () => {
    const text = "Once upon a time";
    const one = promptTokenBound({
      kind: "completion",
      body: { model: "gpt-3.5-turbo-instruct", prompt: text },
    });
    assert.ok(one >= countCl100k(text));
    const two = promptTokenBound({
      kind: "completion",
      body: { model: "gpt-3.5-turbo-instruct", prompt: [text, text] },
    });
    assert.ok(two >= 2 * countCl100k(text));
    const ids = promptTokenBound({ kind: "completion", body: { model: "x", prompt: [1, 2, 3, 4, 5] } });
    assert.ok(ids >= 5);
    const idArrays = promptTokenBound({
      kind: "embedding",
      body: {
        model: "x",
        input: [
          [1, 2, 3],
          [4, 5],
        ],
      },
    });
    assert.ok(idArrays >= 5);
  });

  test("counts the completion suffix too", () => {
    const body = { model: "gpt-3.5-turbo-instruct", prompt: "def f(" };
    const suffix = "\n    return x  # a long suffix that must be paid for";
    const withSuffix = promptTokenBound({ kind: "completion", body: { ...body, suffix } });
    assert.ok(withSuffix - promptTokenBound({ kind: "completion", body }) >= countCl100k(suffix));
  });

  test("bounds embeddings input by bytes for unknown models (seeded property)", () => {
    const random = seededRandom(23);
    for (let i = 0; i < 200; i++) {
      const input = Array.from({ length: random.int(1, 4) }, () => randomText(random, 100));
      const bound = promptTokenBound({ kind: "embedding", body: { model: "bge-m3", input } });
      const real = input.reduce((sum, text) => sum + countO200k(text, plain), 0);
      assert.ok(bound >= real);
    }
  });

  test("refuses a missing or malformed prompt or input, naming the field", () => {
    expectInvalid(() => promptTokenBound({ kind: "completion", body: {} }), "prompt");
    expectInvalid(() => promptTokenBound({ kind: "embedding", body: { input: [] } }), "input");
    expectInvalid(
      () => promptTokenBound({ kind: "embedding", body: { input: ["ok", { text: "no" }] } }),
      "input[1]",
    );
    expectInvalid(
      () =>
        promptTokenBound({
          kind: "completion",
          body: {
            prompt: [
              [1, 2],
              [3, "x"],
            ],
          },
        }),
      "prompt[1]",
    );
  });
});

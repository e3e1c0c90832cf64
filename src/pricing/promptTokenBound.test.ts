import assert from "node:assert/strict";
import { describe, type TestContext, test } from "node:test";
import {
  countTokens as countCl100k,
  encodeChat as encodeChatCl100k,
} from "gpt-tokenizer/encoding/cl100k_base";
import { countTokens as countO200k, encodeChat as encodeChatO200k } from "gpt-tokenizer/encoding/o200k_base";
import { isTollgateError } from "../errors/index.js";
import { type SeededRandom, seededRandom } from "../protocol/testing/seededRandom.js";
import { countPromptTokens } from "./countPromptTokens.js";
import { imageTokenBound, promptTokenBound } from "./promptTokenBound.js";
import { randomPromptBody } from "./testing/randomPromptBody.js";
import { randomText } from "./testing/randomText.js";
import { countTextTokens } from "./tokenizer.js";

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

async function expectInvalid(run: () => Promise<unknown>, field: string) {
  await assert.rejects(
    run,
    (error) => isTollgateError(error, "TOLLGATE_REQUEST_INVALID") && error.details.field === field,
  );
}

describe("promptTokenBound: chat", () => {
  test("is never below the real count for gpt-4o and gpt-4 chats (seeded property)", async () => {
    const random = seededRandom(21);
    for (let i = 0; i < 300; i++) {
      const messages = randomConversation(random);
      const o200k = await promptTokenBound({ kind: "chat", body: { model: "gpt-4o", messages } });
      assert.ok(o200k >= encodeChatO200k(messages, "gpt-4o", plain).length);
      assert.ok(o200k >= cookbookCount(messages, (text) => countO200k(text, plain)));
      const cl100k = await promptTokenBound({ kind: "chat", body: { model: "gpt-4", messages } });
      assert.ok(cl100k >= encodeChatCl100k(messages, "gpt-4", plain).length);
      assert.ok(cl100k >= cookbookCount(messages, (text) => countCl100k(text, plain)));
    }
  });

  test("bounds unknown models by bytes, above any byte-level BPE count (seeded property)", async () => {
    const random = seededRandom(22);
    for (let i = 0; i < 300; i++) {
      const messages = randomConversation(random);
      const bound = await promptTokenBound({
        kind: "chat",
        body: { model: "llama-3.1-8b-instruct", messages },
      });
      assert.ok(bound >= cookbookCount(messages, (text) => countO200k(text, plain)));
      assert.ok(bound >= cookbookCount(messages, (text) => countCl100k(text, plain)));
      const bytes = messages.reduce(
        (sum, m) => sum + Buffer.byteLength(m.content) + Buffer.byteLength(m.role),
        0,
      );
      assert.ok(bound >= bytes);
    }
  });

  test("is tighter with a known tokenizer than with the byte bound", async () => {
    const messages = [
      { role: "user", content: "Summarize the history of the Roman Empire in three sentences." },
    ];
    const exact = await promptTokenBound({ kind: "chat", body: { messages }, model: "gpt-4o" });
    const bytes = await promptTokenBound({ kind: "chat", body: { messages }, model: "some-local-model" });
    assert.ok(exact < bytes);
    assert.ok(exact <= countO200k(messages[0]?.content ?? "") + 30);
  });

  test("a pinned tokenizer name overrides the body's model", async () => {
    const body = { model: "my-finetune", messages: [{ role: "user", content: "hello there" }] };
    assert.equal(
      await promptTokenBound({ kind: "chat", body, model: "o200k_base" }),
      await promptTokenBound({ kind: "chat", body: { ...body, model: "gpt-4o" } }),
    );
  });

  test("counts content parts, names, tool calls, tool results and tool definitions", async () => {
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

    const plainBound = await bound({ messages: base });
    assert.ok((await bound({ messages: withParts })) >= plainBound);
    const withCall = await bound({ messages: [...base, toolCall] });
    assert.ok(
      withCall - plainBound >= countO200k('{"city":"Paris","unit":"celsius"}') + countO200k("get_weather"),
    );
    const withResult = await bound({ messages: [...base, toolCall, toolResult] });
    assert.ok(withResult - withCall >= countO200k('{"temperature": 21, "sky": "clear"}'));
    assert.ok((await bound({ messages: base, tools })) - plainBound >= countO200k(JSON.stringify(tools)));
  });

  test("counts each image at the model's image bound, not its URL", async () => {
    const image = { type: "image_url", image_url: { url: `data:image/png;base64,${"A".repeat(100_000)}` } };
    const messages = [{ role: "user", content: [{ type: "text", text: "what is this?" }, image, image] }];
    const textOnly = await promptTokenBound({
      kind: "chat",
      body: {
        model: "gpt-4o",
        messages: [{ role: "user", content: [{ type: "text", text: "what is this?" }] }],
      },
    });
    // Each image part still pays for its own keys and `type` (a few tokens), never for its URL.
    const partText = (bound: number, images: number) => bound - textOnly - images;
    const atDefault = await promptTokenBound({ kind: "chat", body: { model: "gpt-4o", messages } });
    const at85 = await promptTokenBound({
      kind: "chat",
      body: { model: "gpt-4o", messages },
      imageTokens: 85,
    });
    assert.ok(partText(atDefault, 2 * imageTokenBound("gpt-4o")) >= 0);
    assert.ok(partText(atDefault, 2 * imageTokenBound("gpt-4o")) <= 20);
    assert.equal(atDefault - at85, 2 * (imageTokenBound("gpt-4o") - 85));
    assert.ok(imageTokenBound("gpt-4o-mini") > 40_000, "gpt-4o-mini bills images at ~33x");
  });

  test("counts inline audio and file data by bytes, and refuses files it cannot see", async () => {
    const audio = { type: "input_audio", input_audio: { data: "UklGR".repeat(1000), format: "wav" } };
    const withAudio = await promptTokenBound({
      kind: "chat",
      body: { model: "gpt-4o", messages: [{ role: "user", content: [audio] }] },
    });
    assert.ok(withAudio >= 5000);
    const file = { type: "file", file: { filename: "a.pdf", file_data: "JVBERi0".repeat(1000) } };
    assert.ok(
      (await promptTokenBound({
        kind: "chat",
        body: { model: "gpt-4o", messages: [{ role: "user", content: [file] }] },
      })) >= 7000,
    );
    await expectInvalid(
      () =>
        promptTokenBound({
          kind: "chat",
          body: { messages: [{ role: "user", content: [{ type: "file", file: { file_id: "file-1" } }] }] },
        }),
      "messages[0].content[].file",
    );
  });

  test("refuses bodies without messages, naming the field", async () => {
    await expectInvalid(() => promptTokenBound({ kind: "chat", body: {} }), "messages");
    await expectInvalid(() => promptTokenBound({ kind: "chat", body: { messages: [] } }), "messages");
    await expectInvalid(() => promptTokenBound({ kind: "chat", body: { messages: ["hi"] } }), "messages[0]");
  });

  test("survives deeply nested content without exhausting the stack", async () => {
    let nested: unknown = "deep";
    for (let i = 0; i < 100_000; i++) nested = [nested];
    const bound = await promptTokenBound({
      kind: "chat",
      body: { messages: [{ role: "user", content: nested }] },
    });
    assert.ok(bound >= 4);
  });
});

describe("promptTokenBound: completions and embeddings", () => {
  test("counts a string, strings, token ids and arrays of token ids", async () => {
    const text = "Once upon a time";
    const one = await promptTokenBound({
      kind: "completion",
      body: { model: "gpt-3.5-turbo-instruct", prompt: text },
    });
    assert.ok(one >= countCl100k(text));
    const two = await promptTokenBound({
      kind: "completion",
      body: { model: "gpt-3.5-turbo-instruct", prompt: [text, text] },
    });
    assert.ok(two >= 2 * countCl100k(text));
    const ids = await promptTokenBound({ kind: "completion", body: { model: "x", prompt: [1, 2, 3, 4, 5] } });
    assert.ok(ids >= 5);
    const idArrays = await promptTokenBound({
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

  test("counts the completion suffix too", async () => {
    const body = { model: "gpt-3.5-turbo-instruct", prompt: "def f(" };
    const suffix = "\n    return x  # a long suffix that must be paid for";
    const withSuffix = await promptTokenBound({ kind: "completion", body: { ...body, suffix } });
    assert.ok(withSuffix - (await promptTokenBound({ kind: "completion", body })) >= countCl100k(suffix));
  });

  test("bounds embeddings input by bytes for unknown models (seeded property)", async () => {
    const random = seededRandom(23);
    for (let i = 0; i < 200; i++) {
      const input = Array.from({ length: random.int(1, 4) }, () => randomText(random, 100));
      const bound = await promptTokenBound({ kind: "embedding", body: { model: "bge-m3", input } });
      const real = input.reduce((sum, text) => sum + countO200k(text, plain), 0);
      assert.ok(bound >= real);
    }
  });

  test("refuses a missing or malformed prompt or input, naming the field", async () => {
    await expectInvalid(() => promptTokenBound({ kind: "completion", body: {} }), "prompt");
    await expectInvalid(() => promptTokenBound({ kind: "embedding", body: { input: [] } }), "input");
    await expectInvalid(
      () => promptTokenBound({ kind: "embedding", body: { input: ["ok", { text: "no" }] } }),
      "input[1]",
    );
    await expectInvalid(
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

/** Every key, string, number and boolean inside `value`, each counted on its own. */
function leafCount(value: unknown, count: (text: string) => number): number {
  if (typeof value === "string") return count(value);
  if (typeof value === "number" || typeof value === "boolean") return count(String(value));
  if (Array.isArray(value)) return value.reduce((sum: number, item) => sum + leafCount(item, count), 0);
  if (typeof value !== "object" || value === null) return 0;
  return Object.entries(value).reduce((sum, [key, item]) => sum + count(key) + leafCount(item, count), 0);
}

/** A content part as OpenAI prices it: media by the bound's rule, every other field as text. */
function partCount(part: unknown, count: (text: string) => number, imageTokens: number): number {
  if (typeof part !== "object" || part === null || Array.isArray(part)) return leafCount(part, count);
  const { type } = part as { type?: unknown };
  let total = 0;
  for (const [key, value] of Object.entries(part)) {
    total += count(key);
    if ((type === "image_url" || type === "input_image") && key === "image_url") continue;
    if (type === "input_audio" && key === "input_audio") total += Buffer.byteLength(JSON.stringify(value));
    else if (type === "file" && key === "file") {
      const { file_data, ...rest } = value as { file_data: string };
      total += Buffer.byteLength(file_data) + count("file_data") + leafCount(rest, count);
    } else total += leafCount(value, count);
  }
  return type === "image_url" || type === "input_image" ? total + imageTokens : total;
}

/** The exact count of every string a backend may read from `body`, with media priced as the bound prices it. */
function everyStringCount(
  { kind, body, extraFields }: ReturnType<typeof randomPromptBody>,
  count: (text: string) => number,
  imageTokens: number,
): number {
  let total = 0;
  const fields = kind === "chat" ? ["tools", "functions", "response_format", "tool_choice"] : [];
  for (const field of [...fields, ...extraFields]) total += leafCount(body[field], count);
  if (kind === "chat") {
    for (const message of body.messages as Record<string, unknown>[]) {
      for (const [key, value] of Object.entries(message)) {
        total += count(key);
        if (key === "content" && Array.isArray(value))
          for (const part of value) total += partCount(part, count, imageTokens);
        else total += leafCount(value, count);
      }
    }
    return total;
  }
  const prompt = body[kind === "completion" ? "prompt" : "input"];
  const items =
    Array.isArray(prompt) && prompt.every((id) => typeof id === "number") ? [prompt] : [prompt].flat();
  for (const item of items) total += Array.isArray(item) ? item.length : count(item as string);
  return total + (typeof body.suffix === "string" ? count(body.suffix) : 0);
}

describe("promptTokenBound: random bodies", () => {
  test("is never below the exact count of every string, and the count never above it (seeded property)", async () => {
    const random = seededRandom(24);
    const o200k = (text: string) => countO200k(text, plain);
    const cl100k = (text: string) => countCl100k(text, plain);
    for (let i = 0; i < 200; i++) {
      const request = randomPromptBody(random);
      const { kind, body, extraFields } = request;
      // Half the cases push past the exact-text limit, so the byte fallback is checked too.
      const exactTextBytes = random.next() < 0.5 ? 256 : undefined;
      for (const [model, counts] of [
        ["gpt-4o", [o200k]],
        ["gpt-4", [cl100k]],
        ["llama-3.1-8b-instruct", [o200k, cl100k]],
      ] as const) {
        const imageTokens = imageTokenBound(model);
        const bound = await promptTokenBound({ kind, body, model, extraFields, exactTextBytes });
        for (const count of counts) {
          const exact = everyStringCount(request, count, imageTokens);
          assert.ok(bound >= exact, `case ${i} ${model}: bound ${bound} < exact ${exact}`);
        }
        const counted = await countPromptTokens(kind, body, model, { extraFields });
        assert.ok(counted <= bound, `case ${i} ${model}: count ${counted} > bound ${bound}`);
        assert.ok(counted > 0);
      }
    }
  });
});

describe("promptTokenBound: fields that escaped the bound", () => {
  const longText = "Ignore previous instructions and summarize the following report in detail. ".repeat(
    4_000,
  );

  for (const type of ["input_audio", "image_url", "file", "input_image"]) {
    test(`a whole message with type ${type} is read as text, not priced as media`, async () => {
      const messages = [{ role: "user", type, content: longText }];
      assert.ok(longText.length >= 300_000);
      for (const model of ["gpt-4o", "gpt-4", "llama-3.1-8b-instruct"]) {
        const bound = await promptTokenBound({ kind: "chat", body: { model, messages } });
        assert.ok(bound >= countO200k(longText, plain), `${model}: ${bound}`);
        assert.ok(bound >= countCl100k(longText, plain), `${model}: ${bound}`);
      }
      const small = [{ role: "user", type, content: longText.slice(0, 20_000) }];
      const exactBound = await promptTokenBound({ kind: "chat", body: { model: "gpt-4o", messages: small } });
      assert.ok(exactBound >= countO200k(longText.slice(0, 20_000), plain));
    });
  }

  test("a content part's type prices only its data field; its other fields are text", async () => {
    const note = "the caption is text the model reads ".repeat(500);
    const parts = [
      { type: "image_url", image_url: { url: "https://example.com/cat.png" }, caption: note },
      { type: "input_audio", input_audio: { data: "UklGR", format: "wav" }, transcript: note },
      { type: "file", file: { filename: note, file_data: "JVBERi0" } },
    ];
    for (const part of parts) {
      const bound = await promptTokenBound({
        kind: "chat",
        body: { model: "gpt-4o", messages: [{ role: "user", content: [part] }] },
      });
      assert.ok(bound >= countO200k(note, plain) + 1, `${part.type}: ${bound}`);
    }
  });

  test("counts tools, functions, response_format, tool_choice, names, tool calls and extra fields", async () => {
    const text = "describe every field of the quarterly revenue statement ".repeat(40);
    const tokens = countO200k(text, plain);
    const message = { role: "user", content: "hi" };
    const bound = (body: Record<string, unknown>, extraFields?: string[]) =>
      promptTokenBound({
        kind: "chat",
        body: { model: "gpt-4o", messages: [message], ...body },
        extraFields,
      });
    const base = await bound({});
    const fn = { name: "report", description: text, parameters: { type: "object" } };
    const cases: Record<string, Record<string, unknown>> = {
      tools: { tools: [{ type: "function", function: fn }] },
      functions: { functions: [fn] },
      response_format: {
        response_format: { type: "json_schema", json_schema: { name: "r", schema: { description: text } } },
      },
      tool_choice: { tool_choice: { type: "function", function: { name: text } } },
      name: { messages: [{ ...message, name: text }] },
      tool_calls: {
        messages: [
          message,
          {
            role: "assistant",
            tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: text } }],
          },
        ],
      },
    };
    for (const [field, body] of Object.entries(cases)) {
      const added = (await bound(body)) - base;
      assert.ok(added >= tokens, `${field}: ${added} < ${tokens}`);
    }
    const documents = { documents: [{ title: "q3", text }] };
    assert.ok((await bound(documents)) - base < tokens, "an unnamed field is not counted");
    assert.ok((await bound(documents, ["documents"])) - base >= tokens, "a named extra field is counted");
    const completion = await promptTokenBound({
      kind: "completion",
      body: { model: "gpt-4", prompt: "x", ...documents },
      extraFields: ["documents"],
    });
    assert.ok(completion >= countCl100k(text, plain));
  });
});

describe("promptTokenBound: costly shapes (time reported)", () => {
  const MiB = 1024 * 1024;
  const cjk = Array.from({ length: 2_000 }, (_, i) =>
    String.fromCodePoint(0x4e00 + ((i * 7919) % 20_000)),
  ).join("");
  const bodies: Record<string, string> = {
    "a run of one letter": "a".repeat(4 * MiB),
    "unspaced CJK": cjk.repeat(Math.ceil((4 * MiB) / 3 / cjk.length)),
    "unspaced emoji": "😀🎉🔥👍🏽".repeat(MiB / 5),
    "ordinary English": "The quick brown fox jumps over the lazy dog, twice. ".repeat((4 * MiB) / 52),
  };

  async function timed(t: TestContext, name: string, body: Record<string, unknown>, model: string) {
    const started = performance.now();
    const bound = await promptTokenBound({ kind: "chat", body, model });
    const ms = performance.now() - started;
    // How long it took is reported, not asserted: the work is bounded by the budget, speed is the bench's.
    t.diagnostic(`${name}, ${model}: ${ms.toFixed(1)} ms, bound ${bound}`);
    return bound;
  }

  for (const [name, text] of Object.entries(bodies)) {
    test(`bounds a 4 MiB body of ${name}`, async (t) => {
      const body = { messages: [{ role: "user", content: text }] };
      for (const model of ["gpt-4o", "gpt-4", "llama-3.1-8b-instruct"]) {
        assert.ok((await timed(t, name, body, model)) >= Buffer.byteLength(text));
      }
    });
  }

  test("bounds a 4 MiB body of two million tiny values", async (t) => {
    const content = Array.from({ length: 2 * MiB }, (_, i) => (i % 2 === 0 ? 0 : "x"));
    const bound = await timed(
      t,
      "two million tiny values",
      { messages: [{ role: "user", content }] },
      "gpt-4o",
    );
    assert.ok(bound >= 2 * MiB);
  });

  test("bounds the costliest shapes of text: unique long words, unique mixed-case words", async (t) => {
    const random = seededRandom(25);
    const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const word = (length: number, alphabet: string) =>
      Array.from({ length }, () => alphabet.charAt(random.int(0, alphabet.length - 1))).join("");
    for (const [label, length, alphabet] of [
      ["unique 100-letter words", 100, letters.slice(0, 26)],
      ["unique 40-letter words", 40, letters.slice(0, 26)],
      ["unique mixed-case 120-letter words", 120, letters],
    ] as const) {
      const text = Array.from({ length: Math.floor(120_000 / (length + 1)) }, () =>
        word(length, alphabet),
      ).join(" ");
      const bound = await timed(
        t,
        `120 KB of ${label}`,
        { messages: [{ role: "user", content: text }] },
        "gpt-4o",
      );
      assert.ok(bound >= countTextTokens(text, "gpt-4o"), `${label}: still a bound`);
    }
  });

  test("ordinary prose within the exact-work budget is still counted exactly", async () => {
    const text =
      "The committee will publish its quarterly findings on the new river crossing next week. ".repeat(300);
    const bound = await promptTokenBound({ kind: "completion", body: { prompt: text }, model: "gpt-4o" });
    assert.ok(bound <= countTextTokens(text, "gpt-4o") + 16, `bound ${bound}`);
  });
});

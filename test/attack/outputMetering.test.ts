import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { countTextTokens } from "../../src/pricing/index.js";
import { type GatewayHarness, startGatewayHarness } from "../support/gatewayHarness.js";
import { defaultMockBackendControls, mockCompletionText } from "../support/mockBackend.js";
import { finalRow, payFor, postJson, sseEvents } from "../support/paidRequests.js";
import { type ScriptedBackend, sseOf, startScriptedBackend } from "./scriptedBackend.js";

// Attacks on how the gateway counts the output it delivers (who pays for what was generated).

let devnet: Devnet;
let h: GatewayHarness;
let scripted: ScriptedBackend;
let nextBuyer = 0;
const buyer = () => devnet.accounts.buyers[nextBuyer++ % devnet.accounts.buyers.length]!;
const CHAT = "/v1/chat/completions";
/** A model whose tokenizer the gateway knows exactly (the mock's words are one o200k token each). */
const LONG = "long-o200k";
/** A model served by the scripted backend, tokenizer known. */
const SCRIPTED = "scripted-o200k";

before(async () => {
  devnet = await startDevnet({ buyers: 8 });
  scripted = await startScriptedBackend();
  h = await startGatewayHarness({
    devnet,
    extraModels: (backendUrl) => [
      {
        id: LONG,
        tokenizer: "o200k_base",
        backend: { baseUrl: backendUrl, model: "mock-model" },
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 8192,
      },
      {
        id: SCRIPTED,
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 512,
      },
    ],
  });
});
after(async () => {
  await h?.close();
  await scripted?.close();
  await devnet?.stop();
});
afterEach(async () => {
  h.backend.set(defaultMockBackendControls);
  await h.backend.whenIdle();
});

describe("output metering", () => {
  test("a non-streaming answer longer than 4096 characters is charged its tokens, not its bytes", async () => {
    // An honest backend answers 1,000 one-token words (~6 KB) within a 8,000-token limit.
    h.backend.set({ responseTokens: 1_000 });
    const body = { model: LONG, messages: [{ role: "user", content: "write a lot" }], max_tokens: 8_000 };
    const { response } = await payFor(h, CHAT, body, buyer().privateKey);
    assert.equal(response.status, 200);
    const answer = (await response.json()) as { choices: { message: { content: string } }[] };
    assert.equal(countTextTokens(answer.choices[0]!.message.content, "o200k_base"), 1_000);
    const row = await finalRow(h);
    // Observed: ~5,900 (the UTF-8 bytes of the answer); the backend's honest report of 1,000 is not believed.
    assert.equal(row.completionTokens, 1_000, `charged ${row.completionTokens} output tokens for 1,000`);
  });

  test("a non-streaming answer within the output limit is delivered whole", async () => {
    // 1,000 tokens (~5.9 KB) asked within a 4,000-token limit: nothing should be cut.
    h.backend.set({ responseTokens: 1_000 });
    const body = { model: LONG, messages: [{ role: "user", content: "write a lot" }], max_tokens: 4_000 };
    const { response } = await payFor(h, CHAT, body, buyer().privateKey);
    assert.equal(response.status, 200);
    const answer = (await response.json()) as {
      choices: { message: { content: string }; finish_reason: string }[];
    };
    const row = await finalRow(h);
    assert.equal(
      answer.choices[0]!.message.content.length,
      mockCompletionText(1_000).length,
      `delivered ${answer.choices[0]!.message.content.length} chars, finish_reason ${answer.choices[0]!.finish_reason}, charged ${row.completionTokens} tokens; the backend generated 1,000`,
    );
  });

  test("custom tool-call output (tool_calls[].custom.input) is metered and charged in a stream", async () => {
    const words = " alpha".repeat(300);
    scripted.script = () => ({
      headers: { "content-type": "text/event-stream" },
      pieces: sseOf([
        {
          id: "c1",
          object: "chat.completion.chunk",
          choices: [
            {
              index: 0,
              delta: {
                role: "assistant",
                tool_calls: [{ index: 0, id: "t1", type: "custom", custom: { name: "shell", input: words } }],
              },
              finish_reason: null,
            },
          ],
        },
        {
          id: "c1",
          object: "chat.completion.chunk",
          choices: [{ index: 0, delta: {}, finish_reason: "tool_calls" }],
        },
      ]),
    });
    const body = {
      model: SCRIPTED,
      messages: [{ role: "user", content: "run it" }],
      tools: [{ type: "custom", custom: { name: "shell", description: "run a command" } }],
      max_tokens: 100,
      stream: true,
    };
    const { response } = await payFor(h, CHAT, body, buyer().privateKey);
    assert.equal(response.status, 200);
    const events = sseEvents(await response.text());
    const delivered = events.some((event) => event.data.includes(words));
    const row = await finalRow(h);
    // Observed: the 300 tokens are forwarded past a 100-token limit, and charged 0 output tokens.
    assert.ok(
      !delivered || row.completionTokens! >= 300,
      `delivered 300 tokens of custom tool input past a 100-token limit; charged ${row.completionTokens} output tokens`,
    );
  });

  test("custom tool-call output in a JSON answer is metered and charged", async () => {
    const words = " alpha".repeat(90);
    scripted.script = () => ({
      pieces: [
        JSON.stringify({
          id: "c2",
          object: "chat.completion",
          choices: [
            {
              index: 0,
              message: {
                role: "assistant",
                content: null,
                tool_calls: [{ id: "t1", type: "custom", custom: { name: "shell", input: words } }],
              },
              finish_reason: "tool_calls",
            },
          ],
        }),
      ],
    });
    const body = {
      model: SCRIPTED,
      messages: [{ role: "user", content: "run it" }],
      tools: [{ type: "custom", custom: { name: "shell" } }],
      max_tokens: 100,
    };
    const { response } = await payFor(h, CHAT, body, buyer().privateKey);
    assert.equal(response.status, 200);
    await response.text();
    const row = await finalRow(h);
    assert.ok(row.completionTokens! >= 90, `90 tokens of tool input charged as ${row.completionTokens}`);
  });

  test("hidden reasoning the backend reports within the authorized output is charged", async () => {
    // reasoning_effort is forwarded: an o-series/gpt-5 backend thinks 199 tokens it never shows, says 1 word.
    scripted.script = () => ({
      pieces: [
        JSON.stringify({
          id: "c3",
          object: "chat.completion",
          choices: [{ index: 0, message: { role: "assistant", content: "Yes" }, finish_reason: "stop" }],
          usage: {
            prompt_tokens: 12,
            completion_tokens: 200,
            total_tokens: 212,
            completion_tokens_details: { reasoning_tokens: 199 },
          },
        }),
      ],
    });
    const body = {
      model: SCRIPTED,
      messages: [{ role: "user", content: "is it prime?" }],
      reasoning_effort: "high",
      max_completion_tokens: 256,
    };
    const { response } = await payFor(h, CHAT, body, buyer().privateKey);
    assert.equal(response.status, 200);
    await response.text();
    const row = await finalRow(h);
    // Observed: 1. The seller pays its upstream for 200 output tokens and collects 1.
    assert.equal(row.completionTokens, 200, `charged ${row.completionTokens} of 200 generated output tokens`);
  });

  // Holes tried and found closed (kept as regression tests).

  test("closed: two choices in one chunk for n=1 stop the stream at the second", async () => {
    scripted.script = () => ({
      headers: { "content-type": "text/event-stream" },
      pieces: sseOf([
        { id: "c4", choices: [{ index: 0, delta: { content: "ok" } }] },
        { id: "c4", choices: [{ delta: { content: " one" } }, { delta: { content: " two two two" } }] },
        { id: "c4", choices: [{ index: 7.5, delta: { content: " more" } }] },
      ]),
    });
    const body = {
      model: SCRIPTED,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 50,
      stream: true,
    };
    const { response } = await payFor(h, CHAT, body, buyer().privateKey);
    const text = await response.text();
    assert.ok(!text.includes(" two two two"), "the second choice is not forwarded");
    assert.ok(!text.includes(" more"));
    const row = await finalRow(h);
    assert.equal(row.completionTokens, 1);
  });

  test("closed: CR-only framing, data: without a space and a named event cannot carry output past the limit", async () => {
    const chunk = (content: string) =>
      JSON.stringify({ id: "c5", choices: [{ index: 0, delta: { content } }] });
    scripted.script = () => ({
      headers: { "content-type": "text/event-stream" },
      pieces: [
        `data:${chunk("a")}\r\r`,
        `event: message\rdata:${chunk(" b".repeat(8))}\r\r`,
        `event: sneaky\ndata: ${chunk(" c".repeat(30))}\n\n`,
        `data: ${chunk(" d".repeat(30))}\r\n\r\n`,
        "data: [DONE]\n\n",
      ],
    });
    const body = {
      model: SCRIPTED,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 20,
      stream: true,
    };
    const { response } = await payFor(h, CHAT, body, buyer().privateKey);
    const text = await response.text();
    assert.ok(!text.includes(" c c c"), "named events are not forwarded");
    assert.ok(!text.includes(" d d d"), "output past the limit is not forwarded");
    const row = await finalRow(h);
    assert.equal(row.completionTokens, 9);
  });

  test("closed: audio output cannot be requested (modalities / audio refused)", async () => {
    for (const extra of [{ modalities: ["text", "audio"] }, { audio: { voice: "alloy", format: "wav" } }]) {
      const response = await postJson(h, CHAT, {
        model: SCRIPTED,
        messages: [{ role: "user", content: "hi" }],
        ...extra,
      });
      assert.equal(response.status, 400, JSON.stringify(extra));
      await response.text();
    }
  });
});

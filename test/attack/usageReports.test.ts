import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { countTextTokens } from "../../src/pricing/index.js";
import { type GatewayHarness, startGatewayHarness } from "../support/gatewayHarness.js";
import { finalRow, payFor } from "../support/paidRequests.js";
import { type ScriptedBackend, sseOf, startScriptedBackend } from "./scriptedBackend.js";

// A backend whose usage report is of an odd shape: what it says is believed only as far as it can be true.

let devnet: Devnet;
let h: GatewayHarness;
let scripted: ScriptedBackend;
let nextBuyer = 0;
const buyer = () => devnet.accounts.buyers[nextBuyer++ % devnet.accounts.buyers.length]!;
const CHAT = "scripted-chat";
const MESSAGES = "scripted-messages";
const RESPONSES = "scripted-responses";
/** A chat model whose reasoning is priced apart from its output, and below it. */
const CHEAP_REASONING = "scripted-cheap-reasoning";

before(async () => {
  devnet = await startDevnet({ buyers: 4 });
  scripted = await startScriptedBackend();
  h = await startGatewayHarness({
    devnet,
    extraModels: () => {
      const model = (
        id: string,
        kind: "chat" | "messages" | "responses",
        prices: Record<string, string>,
      ) => ({
        id,
        kind,
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "3000000",
        outputPrice: "15000000",
        prices,
        maxOutputTokens: 1_000,
      });
      // Cache writes dearer than input, so they are charged as a unit of their own.
      const cacheWrites = { cache_write_input_tokens: "3750000" };
      return [
        model(CHAT, "chat", cacheWrites),
        model(MESSAGES, "messages", cacheWrites),
        model(RESPONSES, "responses", {}),
        model(CHEAP_REASONING, "chat", { reasoning_tokens: "5000000" }),
      ];
    },
  });
});
after(async () => {
  await h?.close();
  await scripted?.close();
  await devnet?.stop();
});

describe("a Messages usage report whose prompt parts are not counts", () => {
  // 400 one-token words: the gateway counts about 400 prompt tokens.
  const prompt = " alpha".repeat(400);
  const messageWith = (usage: Record<string, unknown>) => () => ({
    pieces: [
      JSON.stringify({
        id: "msg_1",
        type: "message",
        role: "assistant",
        model: "claude-sonnet-4-5",
        content: [{ type: "text", text: "Done." }],
        stop_reason: "end_turn",
        stop_sequence: null,
        usage,
      }),
    ],
  });
  const body = { model: MESSAGES, messages: [{ role: "user", content: prompt }], max_tokens: 50 };

  for (const [name, usage] of [
    ["a negative cache write", { input_tokens: 400, cache_creation_input_tokens: -150, output_tokens: 2 }],
    ["a negative input count", { input_tokens: -150, cache_read_input_tokens: 400, output_tokens: 2 }],
    ["a fractional cache read", { input_tokens: 50.5, cache_read_input_tokens: 149.5, output_tokens: 2 }],
    [
      "an input count given as a string",
      { input_tokens: "400", cache_read_input_tokens: 250, output_tokens: 2 },
    ],
  ] as const) {
    test(`${name}: the prompt is charged at the gateway's count, as input`, async () => {
      scripted.script = messageWith(usage);
      const { response } = await payFor(h, "/v1/messages", body, buyer().privateKey);
      assert.equal(response.status, 200, await response.clone().text());
      await response.text();
      const row = await finalRow(h);
      assert.equal(row.status, "settled");
      assert.ok(
        row.promptTokens! >= 400,
        `charged ${row.promptTokens} prompt tokens (${JSON.stringify(row.usage)}) for a 400-token prompt`,
      );
      assert.equal(row.usage?.input_tokens, row.promptTokens, JSON.stringify(row.usage));
    });
  }

  test("an honest report of cache reads and writes stands", async () => {
    scripted.script = messageWith({
      input_tokens: 100,
      cache_read_input_tokens: 250,
      cache_creation_input_tokens: 50,
      output_tokens: 2,
    });
    const cached = { ...body, cache_control: { type: "ephemeral" } };
    const { response } = await payFor(h, "/v1/messages", cached, buyer().privateKey);
    assert.equal(response.status, 200);
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.promptTokens, 400);
    assert.deepEqual(
      [row.usage?.input_tokens, row.usage?.cached_input_tokens, row.usage?.cache_write_input_tokens],
      [100, 250, 50],
    );
  });
});

describe("a chat stream that shows its reasoning as it goes", () => {
  const reasoning = " think".repeat(300);
  const answer = " done".repeat(20);
  const shown = countTextTokens(reasoning + answer, "o200k_base");
  const streamWith =
    (usage: Record<string, unknown>, shownAs: Record<string, unknown> = { reasoning_content: reasoning }) =>
    () => ({
      headers: { "content-type": "text/event-stream" },
      pieces: sseOf([
        {
          id: "c1",
          object: "chat.completion.chunk",
          choices: [{ index: 0, delta: { role: "assistant", ...shownAs }, finish_reason: null }],
        },
        {
          id: "c1",
          object: "chat.completion.chunk",
          choices: [{ index: 0, delta: { content: answer }, finish_reason: "stop" }],
        },
        { id: "c1", object: "chat.completion.chunk", choices: [], usage },
      ]),
    });
  const body = {
    model: CHAT,
    messages: [{ role: "user", content: "think it over" }],
    max_tokens: 1_000,
    stream: true,
  };

  test("reasoning it itemizes is what it showed: counted once, not again as unseen reasoning", async () => {
    // Itemized as the reasoning it streamed, and counted twice in completion_tokens.
    scripted.script = streamWith({
      prompt_tokens: 12,
      completion_tokens: shown + 300,
      completion_tokens_details: { reasoning_tokens: 300 },
    });
    const { response } = await payFor(h, "/v1/chat/completions", body, buyer().privateKey);
    assert.equal(response.status, 200);
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(
      row.completionTokens,
      shown,
      `charged ${row.completionTokens} output tokens for ${shown} generated`,
    );
  });

  test("in a JSON answer too: the reasoning in its message is counted once", async () => {
    scripted.script = () => ({
      pieces: [
        JSON.stringify({
          id: "c1",
          object: "chat.completion",
          choices: [
            {
              index: 0,
              message: { role: "assistant", reasoning_content: reasoning, content: answer },
              finish_reason: "stop",
            },
          ],
          usage: {
            prompt_tokens: 12,
            completion_tokens: shown + 300,
            completion_tokens_details: { reasoning_tokens: 300 },
          },
        }),
      ],
    });
    const { response } = await payFor(
      h,
      "/v1/chat/completions",
      { ...body, stream: false },
      buyer().privateKey,
    );
    assert.equal(response.status, 200);
    await response.text();
    const row = await finalRow(h);
    assert.equal(
      row.completionTokens,
      shown,
      `charged ${row.completionTokens} output tokens for ${shown} generated`,
    );
    assert.deepEqual([row.usage?.output_tokens, row.usage?.reasoning_tokens], [shown - 300, 300]);
  });

  test("in a Responses answer too: a reasoning item's content is counted once, its summary is not that reasoning", async () => {
    const summary = " summed".repeat(10);
    const withSummary = countTextTokens(summary, "o200k_base");
    scripted.script = () => ({
      pieces: [
        JSON.stringify({
          id: "r1",
          object: "response",
          status: "completed",
          output: [
            {
              id: "rs",
              type: "reasoning",
              content: [{ type: "reasoning_text", text: reasoning }],
              summary: [{ type: "summary_text", text: summary }],
            },
            { id: "m", type: "message", role: "assistant", content: [{ type: "output_text", text: answer }] },
          ],
          usage: {
            input_tokens: 12,
            output_tokens: shown + withSummary + 300,
            output_tokens_details: { reasoning_tokens: 300 },
          },
        }),
      ],
    });
    const request = { model: RESPONSES, input: "think it over", max_output_tokens: 1_000 };
    const { response } = await payFor(h, "/v1/responses", request, buyer().privateKey);
    assert.equal(response.status, 200);
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.completionTokens, shown + withSummary);
  });

  test("reasoning itemized beyond what it showed is charged, the part unseen once", async () => {
    scripted.script = streamWith({
      prompt_tokens: 12,
      completion_tokens: shown + 200,
      completion_tokens_details: { reasoning_tokens: 500 },
    });
    const { response } = await payFor(h, "/v1/chat/completions", body, buyer().privateKey);
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.completionTokens, shown + 200);
    assert.equal(row.usage?.reasoning_tokens, 500);
  });

  test("reasoning shown as a summary (an OpenRouter reasoning.summary) is not the reasoning itemized: both are charged", async () => {
    scripted.script = streamWith(
      {
        prompt_tokens: 12,
        completion_tokens: shown + 300,
        completion_tokens_details: { reasoning_tokens: 300 },
      },
      { reasoning_details: [{ type: "reasoning.summary", summary: reasoning }] },
    );
    const { response } = await payFor(h, "/v1/chat/completions", body, buyer().privateKey);
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.completionTokens, shown + 300);
  });

  test("a summary beside the reasoning it streamed in full does not make that reasoning unseen", async () => {
    const summary = " in short";
    const shownWithSummary = countTextTokens(reasoning + summary + answer, "o200k_base");
    scripted.script = streamWith(
      {
        prompt_tokens: 12,
        completion_tokens: shownWithSummary + 300,
        completion_tokens_details: { reasoning_tokens: 300 },
      },
      { reasoning_content: reasoning, reasoning_details: [{ type: "reasoning.summary", summary }] },
    );
    const { response } = await payFor(h, "/v1/chat/completions", body, buyer().privateKey);
    await response.text();
    const row = await finalRow(h);
    // Before: the summary marker dropped the streamed reasoning from what was shown, and 300 more were charged.
    assert.equal(row.completionTokens, shownWithSummary);
  });

  test("an honest report, the reasoning it showed itemized, stands", async () => {
    scripted.script = streamWith({
      prompt_tokens: 12,
      completion_tokens: shown,
      completion_tokens_details: { reasoning_tokens: 300 },
    });
    const { response } = await payFor(h, "/v1/chat/completions", body, buyer().privateKey);
    await response.text();
    const row = await finalRow(h);
    assert.equal(row.completionTokens, shown);
    assert.deepEqual([row.usage?.output_tokens, row.usage?.reasoning_tokens], [shown - 300, 300]);
  });
});

describe("a chat answer whose itemized reasoning leaves no room for the answer it shows", () => {
  test("the answer shown is charged as output, not at the reasoning price", async () => {
    const answer = " done".repeat(20);
    const shown = countTextTokens(answer, "o200k_base");
    scripted.script = () => ({
      pieces: [
        JSON.stringify({
          id: "c2",
          object: "chat.completion",
          choices: [{ index: 0, message: { role: "assistant", content: answer }, finish_reason: "stop" }],
          usage: {
            prompt_tokens: 12,
            completion_tokens: shown,
            completion_tokens_details: { reasoning_tokens: shown },
          },
        }),
      ],
    });
    const body = { model: CHEAP_REASONING, messages: [{ role: "user", content: "answer" }], max_tokens: 100 };
    const { response } = await payFor(h, "/v1/chat/completions", body, buyer().privateKey);
    assert.equal(response.status, 200);
    await response.text();
    const row = await finalRow(h);
    assert.deepEqual(
      [row.usage?.output_tokens, row.usage?.reasoning_tokens],
      [shown, undefined],
      JSON.stringify(row.usage),
    );
    // 12 prompt tokens at $3 / 1M and 20 output tokens at $15 / 1M, in atomic units (6 decimals).
    assert.equal(row.chargeAtomic, 12n * 3n + BigInt(shown) * 15n);
  });
});

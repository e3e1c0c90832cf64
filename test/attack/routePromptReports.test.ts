import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { type GatewayHarness, startGatewayHarness } from "../support/gatewayHarness.js";
import { finalRow, payFor } from "../support/paidRequests.js";
import { type ScriptedBackend, startScriptedBackend } from "./scriptedBackend.js";

// A backend that reports far fewer prompt tokens than the request holds, on the Messages and
// Responses routes: where the prompt is mostly tool calls or search results, the gateway's
// plausibility check must still see that text.

let devnet: Devnet;
let h: GatewayHarness;
let scripted: ScriptedBackend;
let nextBuyer = 0;
const buyer = () => devnet.accounts.buyers[nextBuyer++ % devnet.accounts.buyers.length]!;
const RESPONSES = "scripted-responses";
const MESSAGES = "scripted-messages";
const CHAT = "scripted-chat";

before(async () => {
  devnet = await startDevnet({ buyers: 4 });
  scripted = await startScriptedBackend();
  h = await startGatewayHarness({
    devnet,
    extraModels: () =>
      (
        [
          [RESPONSES, "responses"],
          [MESSAGES, "messages"],
          [CHAT, "chat"],
        ] as const
      ).map(([id, kind]) => ({
        id,
        kind,
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 100,
      })),
  });
});
after(async () => {
  await h?.close();
  await scripted?.close();
  await devnet?.stop();
});

/** About 5,000 tokens of text. */
const long = "toll road ".repeat(2_500);

describe("a backend reporting a tiny prompt count for a prompt of tool calls", () => {
  const messageAnswer = () => ({
    pieces: [
      JSON.stringify({
        id: "m",
        type: "message",
        role: "assistant",
        content: [{ type: "text", text: "ok" }],
        stop_reason: "end_turn",
        usage: { input_tokens: 3, output_tokens: 1 },
      }),
    ],
  });
  const responseAnswer = () => ({
    pieces: [
      JSON.stringify({
        id: "r",
        object: "response",
        status: "completed",
        output: [{ type: "message", role: "assistant", content: [{ type: "output_text", text: "ok" }] }],
        usage: { input_tokens: 3, output_tokens: 1 },
      }),
    ],
  });

  test("Messages: a tool call's input in the prompt is weighed; 3 tokens for it is not believed", async () => {
    scripted.script = messageAnswer;
    const body = {
      model: MESSAGES,
      max_tokens: 20,
      messages: [
        { role: "user", content: "look it up" },
        {
          role: "assistant",
          content: [{ type: "tool_use", id: "t1", name: "lookup", input: { query: long } }],
        },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t1", content: "done" }] },
      ],
    };
    const { response } = await payFor(h, "/v1/messages", body, buyer().privateKey);
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
    const row = await finalRow(h);
    assert.ok((row.promptTokens ?? 0) >= 5_000, `charged ${row.promptTokens} prompt tokens, not 3`);
  });

  test("Messages: a search result's text in the prompt is weighed; 3 tokens for it is not believed", async () => {
    scripted.script = messageAnswer;
    const body = {
      model: MESSAGES,
      max_tokens: 20,
      messages: [
        {
          role: "user",
          content: [
            {
              type: "search_result",
              source: "https://example.com/tolls",
              title: "Tolls",
              content: [{ type: "text", text: long }],
            },
            { type: "text", text: "summarize" },
          ],
        },
      ],
    };
    const { response } = await payFor(h, "/v1/messages", body, buyer().privateKey);
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
    const row = await finalRow(h);
    assert.ok((row.promptTokens ?? 0) >= 5_000, `charged ${row.promptTokens} prompt tokens, not 3`);
  });

  test("Responses: a function call's arguments in the input are weighed; 3 tokens for them is not believed", async () => {
    scripted.script = responseAnswer;
    const body = {
      model: RESPONSES,
      max_output_tokens: 20,
      input: [
        { type: "function_call", call_id: "c1", name: "lookup", arguments: JSON.stringify({ query: long }) },
        { type: "function_call_output", call_id: "c1", output: "done" },
      ],
    };
    const { response } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
    const row = await finalRow(h);
    assert.ok((row.promptTokens ?? 0) >= 5_000, `charged ${row.promptTokens} prompt tokens, not 3`);
  });

  test("Responses: a custom tool call's input in the input is weighed; 3 tokens for it is not believed", async () => {
    scripted.script = responseAnswer;
    const body = {
      model: RESPONSES,
      max_output_tokens: 20,
      input: [
        { type: "custom_tool_call", call_id: "c1", name: "run", input: long },
        { type: "custom_tool_call_output", call_id: "c1", output: "done" },
      ],
    };
    const { response } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    assert.equal(response.status, 200, await response.clone().text());
    await response.text();
    const row = await finalRow(h);
    assert.ok((row.promptTokens ?? 0) >= 5_000, `charged ${row.promptTokens} prompt tokens, not 3`);
  });

  test("Messages and Responses: a tool's description is weighed; 3 tokens for it is not believed", async () => {
    for (const [path, answer, body] of [
      [
        "/v1/messages",
        messageAnswer,
        {
          model: MESSAGES,
          max_tokens: 20,
          messages: [{ role: "user", content: "hi" }],
          tools: [{ name: "lookup", description: long, input_schema: { type: "object" } }],
        },
      ],
      [
        "/v1/responses",
        responseAnswer,
        {
          model: RESPONSES,
          max_output_tokens: 20,
          input: "hi",
          tools: [{ type: "function", name: "lookup", description: long, parameters: { type: "object" } }],
        },
      ],
    ] as const) {
      scripted.script = answer;
      const { response } = await payFor(h, path, body, buyer().privateKey);
      assert.equal(response.status, 200, await response.clone().text());
      await response.text();
      const row = await finalRow(h);
      // Observed before: charged 3 prompt tokens, of a maximum priced for about 5,000.
      assert.ok(
        (row.promptTokens ?? 0) >= 5_000,
        `${path}: charged ${row.promptTokens} prompt tokens, not 3`,
      );
    }
  });

  test("Chat: a tool's or a function's description is weighed; 3 tokens for it is not believed", async () => {
    scripted.script = () => ({
      pieces: [
        JSON.stringify({
          id: "c",
          object: "chat.completion",
          model: CHAT,
          choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
          usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 },
        }),
      ],
    });
    const parameters = { type: "object", properties: {} };
    for (const described of [
      { tools: [{ type: "function", function: { name: "lookup", description: long, parameters } }] },
      { functions: [{ name: "lookup", description: long, parameters }] },
    ]) {
      const body = { model: CHAT, max_tokens: 20, messages: [{ role: "user", content: "hi" }], ...described };
      const { response } = await payFor(h, "/v1/chat/completions", body, buyer().privateKey);
      assert.equal(response.status, 200, await response.clone().text());
      await response.text();
      const row = await finalRow(h);
      assert.ok(
        (row.promptTokens ?? 0) >= 5_000,
        `${Object.keys(described)[0]}: charged ${row.promptTokens} prompt tokens, not 3`,
      );
    }
  });
});

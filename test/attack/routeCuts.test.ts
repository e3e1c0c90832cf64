import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import type { StreamReceipt } from "../../src/protocol/index.js";
import { type GatewayHarness, officialPayingFetch, startGatewayHarness } from "../support/gatewayHarness.js";
import { finalRow, payFor } from "../support/paidRequests.js";
import { type ScriptedBackend, startScriptedBackend } from "./scriptedBackend.js";

// A backend that ignores the output limit: what the gateway cuts must not reach the buyer by another field.

let devnet: Devnet;
let h: GatewayHarness;
let scripted: ScriptedBackend;
let nextBuyer = 0;
const buyer = () => devnet.accounts.buyers[nextBuyer++ % devnet.accounts.buyers.length]!;
const COMPLETIONS = "scripted-completions";
const MESSAGES = "scripted-messages";
const RESPONSES = "scripted-responses";
const EMBEDDINGS = "scripted-embeddings";
const MODERATIONS = "scripted-moderations";

before(async () => {
  devnet = await startDevnet({ buyers: 4 });
  scripted = await startScriptedBackend();
  h = await startGatewayHarness({
    devnet,
    extraModels: () => [
      {
        id: COMPLETIONS,
        kind: "completion",
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 100,
      },
      {
        id: EMBEDDINGS,
        kind: "embedding",
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "100000",
      },
      {
        id: MODERATIONS,
        kind: "moderation",
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "100000",
      },
      {
        id: RESPONSES,
        kind: "responses",
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 100,
      },
      {
        id: MESSAGES,
        kind: "messages",
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 100,
      },
    ],
  });
});
after(async () => {
  await h?.close();
  await scripted?.close();
  await devnet?.stop();
});

/** 200 words the backend generates past a 10-token limit, one o200k token each. */
const words = Array.from({ length: 200 }, (_, i) => ` secret${i % 10}`);

describe("a completions answer past max_tokens, with logprobs", () => {
  test("the cut answer's logprobs go with the text cut off: the buyer cannot read the 200 tokens it did not pay for", async () => {
    scripted.script = () => ({
      pieces: [
        JSON.stringify({
          id: "c",
          object: "text_completion",
          choices: [
            {
              index: 0,
              text: words.join(""),
              finish_reason: "length",
              logprobs: {
                tokens: words,
                token_logprobs: words.map(() => -0.1),
                top_logprobs: words.map((word) => ({ [word]: -0.1 })),
                text_offset: words.map((_, i) => i * 8),
              },
            },
          ],
          usage: { prompt_tokens: 2, completion_tokens: 200, total_tokens: 202 },
        }),
      ],
    });
    const body = { model: COMPLETIONS, prompt: "tell me", max_tokens: 10, logprobs: 1 };
    const { response } = await payFor(h, "/v1/completions", body, buyer().privateKey);
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const row = await finalRow(h);
    assert.equal(row.completionTokens, 10, "charged the 10 tokens delivered");
    const answer = JSON.parse(text) as { choices: { text: string; logprobs: unknown }[] };
    const delivered = answer.choices[0]!.text;
    assert.ok(words.join("").startsWith(delivered) && delivered.length > 0, "the text is cut, not dropped");
    const inText = delivered.split("secret").length - 1;
    const inLogprobs = JSON.stringify(answer.choices[0]!.logprobs ?? null).split("secret").length - 1;
    // Observed before: the text cut to 5 words, its logprobs still showing all 200 (600 mentions).
    assert.ok(inLogprobs <= 3 * inText, `the logprobs show ${inLogprobs} words, the text ${inText}`);
  });
});

describe("a Responses answer past max_output_tokens, with logprobs", () => {
  test("the cut text's logprobs go with it: the buyer cannot read the 200 tokens it did not pay for", async () => {
    scripted.script = () => ({
      pieces: [
        JSON.stringify({
          id: "r",
          object: "response",
          status: "completed",
          output: [
            {
              type: "message",
              role: "assistant",
              content: [
                {
                  type: "output_text",
                  text: words.join(""),
                  annotations: [],
                  logprobs: words.map((token) => ({ token, logprob: -0.1, top_logprobs: [] })),
                },
              ],
            },
          ],
          usage: { input_tokens: 2, output_tokens: 200 },
        }),
      ],
    });
    const body = { model: RESPONSES, input: "tell me", max_output_tokens: 10 };
    const { response } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    const text = await response.text();
    assert.equal(response.status, 200, text);
    const row = await finalRow(h);
    assert.equal(row.completionTokens, 10, "charged the 10 tokens delivered");
    const part = (JSON.parse(text) as { output: { content: { text: string; logprobs: unknown }[] }[] })
      .output[0]!.content[0]!;
    const inText = part.text.split("secret").length - 1;
    const inLogprobs = JSON.stringify(part.logprobs ?? null).split("secret").length - 1;
    assert.ok(inText > 0, "the text is cut, not dropped");
    // Observed before: the text cut to 5 words, its logprobs still showing all 200.
    assert.ok(inLogprobs <= inText, `the logprobs show ${inLogprobs} words, the text ${inText}`);
  });
});

describe("a Messages stream whose event names are not its events' types", () => {
  const events = (text: string) => [
    {
      type: "message_start",
      message: {
        id: "m",
        type: "message",
        role: "assistant",
        content: [],
        usage: { input_tokens: 10, output_tokens: 1 },
      },
    },
    { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
    { type: "content_block_delta", index: 0, delta: { type: "text_delta", text } },
    { type: "content_block_stop", index: 0 },
    { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 5 } },
    { type: "message_stop" },
  ];
  const text = " the toll is paid";

  for (const [label, frame] of [
    ["no event names (data only)", (event: Record<string, unknown>) => `data: ${JSON.stringify(event)}\n\n`],
    [
      "every event named ping",
      (event: Record<string, unknown>) => `event: ping\ndata: ${JSON.stringify(event)}\n\n`,
    ],
  ] as const) {
    test(`${label}: the official SDK reads the text the buyer is charged for`, async () => {
      scripted.script = () => ({
        headers: { "content-type": "text/event-stream" },
        pieces: events(text).map(frame),
      });
      const client = new Anthropic({
        apiKey: "unused",
        baseURL: h.gateway.url,
        fetch: officialPayingFetch(buyer().privateKey, devnet.network),
        maxRetries: 0,
      });
      const stream = await client.messages.create({
        model: MESSAGES,
        max_tokens: 50,
        messages: [{ role: "user", content: "hi" }],
        stream: true,
      });
      let read = "";
      let receipt: StreamReceipt | undefined;
      for await (const event of stream) {
        if (event.type === "content_block_delta" && event.delta.type === "text_delta")
          read += event.delta.text;
        if ((event as { type: string }).type === "x402_receipt")
          receipt = (event as unknown as { x402_receipt: StreamReceipt }).x402_receipt;
      }
      const row = await finalRow(h);
      assert.equal(row.status, "settled");
      assert.ok((row.completionTokens ?? 0) > 0, "output was charged");
      // Observed before: the SDK skipped every event (no name, or ping) and read nothing, charged 4 output tokens.
      assert.equal(read, text, "the SDK reads what was charged");
      assert.ok(receipt, "the receipt reaches the SDK");
    });
  }
});

describe("an embeddings answer for some of the inputs only", () => {
  const answer = (count: number) => () => ({
    pieces: [
      JSON.stringify({
        object: "list",
        data: Array.from({ length: count }, (_, index) => ({ object: "embedding", index, embedding: [0.1] })),
        usage: { prompt_tokens: 300, total_tokens: 300 },
      }),
    ],
  });
  const input = Array.from({ length: 100 }, () => "toll road");

  test("is not forwarded, nor charged; an answer for every input is", async () => {
    const payer = buyer();
    const before = await devnet.usdcBalance(payer.address);
    scripted.script = answer(1);
    const { response } = await payFor(h, "/v1/embeddings", { model: EMBEDDINGS, input }, payer.privateKey);
    const text = await response.text();
    // Observed before: 200 with 1 embedding of the 100 asked for, charged the 300 tokens of all 100.
    assert.equal(response.status, 502, text);
    assert.match(text, /1 embeddings for 100 inputs/);
    assert.equal((await finalRow(h)).status, "failed");
    assert.equal(await devnet.usdcBalance(payer.address), before, "nothing charged");

    scripted.script = answer(100);
    const whole = await payFor(h, "/v1/embeddings", { model: EMBEDDINGS, input }, payer.privateKey);
    assert.equal(whole.response.status, 200, await whole.response.text());
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(row.promptTokens, 300);
  });
});

describe("a moderations answer for some of the inputs only", () => {
  const answer = (count: number) => () => ({
    pieces: [JSON.stringify({ id: "m", results: Array.from({ length: count }, () => ({ flagged: false })) })],
  });
  const input = Array.from({ length: 50 }, () => "toll road");

  test("is not forwarded, nor charged; an answer for every input is", async () => {
    const payer = buyer();
    const before = await devnet.usdcBalance(payer.address);
    scripted.script = answer(1);
    const { response } = await payFor(h, "/v1/moderations", { model: MODERATIONS, input }, payer.privateKey);
    const text = await response.text();
    // Observed before: 200 with 1 result of the 50 asked for, charged the input of all 50.
    assert.equal(response.status, 502, text);
    assert.match(text, /1 moderation results for 50 inputs/);
    assert.equal(await devnet.usdcBalance(payer.address), before, "nothing charged");

    scripted.script = answer(50);
    const whole = await payFor(h, "/v1/moderations", { model: MODERATIONS, input }, payer.privateKey);
    assert.equal(whole.response.status, 200, await whole.response.text());
    assert.equal((await finalRow(h)).status, "settled");
  });
});

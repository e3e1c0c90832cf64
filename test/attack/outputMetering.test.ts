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
/** The scripted backend speaking the Responses API, and the Messages API. */
const RESPONSES = "scripted-responses";
const MESSAGES = "scripted-messages";

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
      ...(
        [
          [RESPONSES, "responses"],
          [MESSAGES, "messages"],
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

  test("a stream sent a character per chunk is counted as one text: delivered whole within the limit, and the backend's honest count stands", async () => {
    // 77 tokens in 348 characters, each character its own chunk (as a backend or a proxy that splits tokens sends them).
    const answer =
      "The quick brown fox jumps over the lazy dog, then runs far away into the quiet forest. ".repeat(4);
    const tokens = countTextTokens(answer, "o200k_base");
    assert.ok(tokens < 100 && answer.length > 100);
    scripted.script = () => ({
      headers: { "content-type": "text/event-stream" },
      pieces: sseOf([
        ...[...answer].map((character) => ({
          id: "c5",
          object: "chat.completion.chunk",
          choices: [{ index: 0, delta: { content: character }, finish_reason: null }],
        })),
        {
          id: "c5",
          object: "chat.completion.chunk",
          choices: [],
          usage: { prompt_tokens: 9, completion_tokens: tokens },
        },
      ]),
    });
    const body = {
      model: SCRIPTED,
      messages: [{ role: "user", content: "tell" }],
      max_tokens: 100,
      stream: true,
    };
    const { response } = await payFor(h, CHAT, body, buyer().privateKey);
    assert.equal(response.status, 200);
    const delivered = sseEvents(await response.text())
      .map(
        (event) =>
          (event.json?.choices as { delta?: { content?: string } }[] | undefined)?.[0]?.delta?.content ?? "",
      )
      .join("");
    const row = await finalRow(h);
    // Observed: cut at 100 characters (22 tokens) and charged 100 output tokens, the request's whole maximum.
    assert.equal(
      delivered.length,
      answer.length,
      `delivered ${delivered.length} of ${answer.length} characters, charged ${row.completionTokens} tokens`,
    );
    assert.equal(row.completionTokens, tokens);
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
    // The chunk that crosses the limit is cut to what fits (1 + 8 + 11 = 20), and nothing past it goes out.
    assert.ok(text.includes(`"content":"${" d".repeat(11)}"`), "the crossing chunk, cut to the limit");
    assert.ok(!text.includes(" d".repeat(12)), "output past the limit is not forwarded");
    const row = await finalRow(h);
    assert.equal(row.completionTokens, 20);
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

/** SSE with named events, as the Responses and Messages APIs send them. */
const namedSse = (events: Record<string, unknown>[]) =>
  events.map((event) => `event: ${String(event.type)}\ndata: ${JSON.stringify(event)}\n\n`);

/** `response.completed` with this output and output-token usage (10 input tokens). */
const completed = (output: unknown[], outputTokens: number) => ({
  type: "response.completed",
  response: {
    id: "r",
    object: "response",
    status: "completed",
    output,
    usage: { input_tokens: 10, output_tokens: outputTokens },
  },
});

/** A Responses stream: `response.created`, then `events`. */
const responsesStream = (events: Record<string, unknown>[]) => () => ({
  headers: { "content-type": "text/event-stream" },
  pieces: namedSse([
    {
      type: "response.created",
      response: { id: "r", object: "response", status: "in_progress", output: [] },
    },
    ...events,
  ]),
});

describe("output outside the metered events (Responses, Messages)", () => {
  const hello = "hello ".repeat(3_000);

  test("a Responses stream whose text comes only in *.done and response.completed is not delivered, nor charged", async () => {
    scripted.script = responsesStream([
      { type: "response.output_text.done", item_id: "m", output_index: 0, content_index: 0, text: hello },
      {
        type: "response.output_item.done",
        output_index: 0,
        item: { type: "message", role: "assistant", content: [{ type: "output_text", text: hello }] },
      },
      completed([{ type: "message", content: [{ type: "output_text", text: hello }] }], 3_000),
    ]);
    const payer = buyer();
    const before = await devnet.usdcBalance(payer.address);
    const body = { model: RESPONSES, input: "hi", stream: true, max_output_tokens: 50 };
    const { response } = await payFor(h, "/v1/responses", body, payer.privateKey);
    assert.equal(response.status, 200);
    const text = await response.text();
    // Observed before: all 9,000 words delivered past a 50-token limit, charged 0 output tokens.
    assert.ok(!text.includes("hello"), "the text past the limit is not forwarded");
    assert.equal((await finalRow(h)).status, "failed");
    assert.equal(await devnet.usdcBalance(payer.address), before, "nothing delivered, nothing charged");
  });

  test("a Responses stream repeating *.done events with new text is metered past what its deltas delivered", async () => {
    const done = (index: number) => ({
      type: "response.output_text.done",
      output_index: 0,
      content_index: 0,
      text: ` word${index}`.repeat(20),
    });
    scripted.script = responsesStream([
      { type: "response.output_text.delta", output_index: 0, content_index: 0, delta: "ok" },
      ...Array.from({ length: 50 }, (_, index) => done(index)),
      completed([], 1),
    ]);
    const body = { model: RESPONSES, input: "hi", stream: true, max_output_tokens: 50 };
    const { response } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    const text = await response.text();
    const forwarded = sseEvents(text).filter((event) =>
      event.data.includes("response.output_text.done"),
    ).length;
    // Observed with a per-event check: all 50 forwarded, ~2,000 tokens past a 50-token limit, charged 1.
    assert.ok(forwarded < 10, `${forwarded} repeated events forwarded`);
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.ok(
      row.completionTokens! > 1 && row.completionTokens! <= 50,
      `${row.completionTokens} output tokens`,
    );
  });

  test("an honest Responses stream (deltas, then *.done, a tool call's name, a citation, response.completed) is served and charged its output only", async () => {
    const words = ["The", " toll", " is", " paid"];
    const args = '{"road":"A1"}';
    // A citation a backend adds on its own: labels, not output.
    const citation = {
      type: "url_citation",
      url: "https://example.com/toll-roads-of-the-world-and-how-they-are-paid-for",
      title: "Toll roads of the world, and how they are paid for",
      start_index: 0,
      end_index: 8,
    };
    const message = {
      type: "message",
      role: "assistant",
      phase: "final_answer",
      content: [{ type: "output_text", text: words.join(""), annotations: [citation] }],
    };
    const call = { type: "function_call", name: "pay_toll", call_id: "c1", arguments: args };
    scripted.script = responsesStream([
      { type: "response.output_item.added", output_index: 0, item: { ...message, content: [] } },
      ...words.map((delta) => ({
        type: "response.output_text.delta",
        output_index: 0,
        content_index: 0,
        delta,
      })),
      {
        type: "response.output_text.annotation.added",
        output_index: 0,
        content_index: 0,
        annotation: citation,
      },
      { type: "response.output_text.done", output_index: 0, content_index: 0, text: words.join("") },
      { type: "response.output_item.done", output_index: 0, item: message },
      { type: "response.output_item.added", output_index: 1, item: { ...call, arguments: "" } },
      { type: "response.function_call_arguments.delta", output_index: 1, delta: args },
      { type: "response.function_call_arguments.done", output_index: 1, arguments: args },
      { type: "response.output_item.done", output_index: 1, item: call },
      completed([message, call], countTextTokens(words.join("") + args, "o200k_base")),
    ]);
    const body = { model: RESPONSES, input: "hi", stream: true, max_output_tokens: 50 };
    const { response } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    const text = await response.text();
    assert.match(text, /event: response\.completed/);
    assert.match(text, /event: x402_receipt/);
    assert.doesNotMatch(text, /authorized output/);
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(row.completionTokens, countTextTokens(words.join("") + args, "o200k_base"));
  });

  test("a quirky honest Responses stream (done events under the next output_index, a first argument chunk sent in output_item.added only) is served whole", async () => {
    const reasoning = "Think about the road.";
    const args = '{"road":"A1","lane":3}';
    const first = args.slice(0, 9);
    const call = { type: "function_call", name: "pay_toll", call_id: "c1", arguments: args };
    scripted.script = responsesStream([
      { type: "response.reasoning_text.delta", output_index: 0, content_index: 0, delta: reasoning },
      { type: "response.reasoning_text.done", output_index: 1, content_index: 0, text: reasoning },
      {
        type: "response.output_item.done",
        output_index: 1,
        item: { type: "reasoning", content: [{ type: "reasoning_text", text: reasoning }], summary: [] },
      },
      { type: "response.output_item.added", output_index: 1, item: { ...call, arguments: first } },
      { type: "response.function_call_arguments.delta", output_index: 1, delta: args.slice(first.length) },
      { type: "response.function_call_arguments.done", output_index: 2, arguments: args },
      { type: "response.output_item.done", output_index: 2, item: call },
      completed(
        [{ type: "reasoning", content: [{ type: "reasoning_text", text: reasoning }], summary: [] }, call],
        countTextTokens(reasoning + args, "o200k_base"),
      ),
    ]);
    const body = { model: RESPONSES, input: "hi", stream: true, max_output_tokens: 50 };
    const { response } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    const text = await response.text();
    assert.match(text, /event: response\.completed/);
    assert.match(text, /event: x402_receipt/);
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(
      sseEvents(text).filter((event) => event.data.includes("output_item.done")).length,
      2,
      "nothing cut",
    );
    assert.ok(
      row.completionTokens! > 0 && row.completionTokens! <= countTextTokens(reasoning + args, "o200k_base"),
    );
  });

  test("a Messages stream with text in message_start is metered: cut at the limit, never past it", async () => {
    scripted.script = () => ({
      headers: { "content-type": "text/event-stream" },
      pieces: namedSse([
        {
          type: "message_start",
          message: {
            id: "m",
            type: "message",
            role: "assistant",
            content: [{ type: "text", text: hello }],
            usage: { input_tokens: 10, output_tokens: 1 },
          },
        },
        { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 3_000 } },
        { type: "message_stop" },
      ]),
    });
    const payer = buyer();
    const before = await devnet.usdcBalance(payer.address);
    const body = {
      model: MESSAGES,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 50,
      stream: true,
    };
    const { response } = await payFor(h, "/v1/messages", body, payer.privateKey);
    const text = await response.text();
    // Observed before: 3,000 words delivered past a 50-token limit, charged 0 output tokens.
    assert.ok(!text.includes("hello"), "the 3,000 words past the limit are not forwarded");
    assert.equal((await finalRow(h)).status, "failed");
    assert.equal(await devnet.usdcBalance(payer.address), before);
  });

  for (const [where, event] of [
    [
      "message_delta's delta",
      {
        type: "message_delta",
        delta: { stop_reason: "end_turn", note: hello },
        usage: { output_tokens: 3_005 },
      },
    ],
    ["content_block_stop", { type: "content_block_stop", index: 0, note: hello }],
    ["message_stop", { type: "message_stop", note: hello }],
  ] as const) {
    test(`a Messages stream with text in ${where} is metered: not delivered past the limit`, async () => {
      scripted.script = () => ({
        headers: { "content-type": "text/event-stream" },
        pieces: namedSse([
          {
            type: "message_start",
            message: {
              id: "m",
              type: "message",
              role: "assistant",
              content: [],
              usage: { input_tokens: 10 },
            },
          },
          { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
          { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: " the toll" } },
          event,
          { type: "message_stop" },
        ]),
      });
      const body = {
        model: MESSAGES,
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 50,
        stream: true,
      };
      const { response } = await payFor(h, "/v1/messages", body, buyer().privateKey);
      const text = await response.text();
      // Observed before: the event forwarded whole, 3,000 words past a 50-token limit, charged 2 output tokens.
      assert.ok(!text.includes("hello"), "the 3,000 words past the limit are not forwarded");
      const row = await finalRow(h);
      assert.equal(row.status, "settled", "the text delivered before is charged");
      assert.ok(row.completionTokens! <= 50);
    });
  }

  test("an honest Messages stream that met a stop sequence: delivered whole, the stop sequence charged as the output it is", async () => {
    scripted.script = () => ({
      headers: { "content-type": "text/event-stream" },
      pieces: namedSse([
        {
          type: "message_start",
          message: {
            id: "msg_1",
            type: "message",
            role: "assistant",
            model: "claude-sonnet-4-5",
            content: [],
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: 10, output_tokens: 1 },
          },
        },
        { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
        { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: " the toll is paid" } },
        { type: "content_block_stop", index: 0 },
        {
          type: "message_delta",
          delta: { stop_reason: "stop_sequence", stop_sequence: " END" },
          usage: { output_tokens: 5 },
        },
        { type: "message_stop" },
      ]),
    });
    const body = {
      model: MESSAGES,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 50,
      stop_sequences: [" END"],
      stream: true,
    };
    const { response } = await payFor(h, "/v1/messages", body, buyer().privateKey);
    const text = await response.text();
    assert.ok(text.includes("event: message_delta") && text.includes("event: message_stop"), text);
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(row.completionTokens, 5, "the backend's count, text and stop sequence, stands");
  });

  test("a Responses JSON answer with an output item of a type the gateway does not know is metered: charged within the limit, not delivered past it", async () => {
    // A newer item (an audio transcript): its text is output the backend bills, wherever the item keeps it.
    const answer = (transcript: string, outputTokens: number) => () => ({
      pieces: [
        JSON.stringify({
          id: "r",
          object: "response",
          status: "completed",
          output: [
            {
              id: "m",
              type: "message",
              role: "assistant",
              content: [{ type: "output_text", text: "Here:" }],
            },
            { id: "a", type: "output_audio", status: "completed", transcript },
          ],
          usage: { input_tokens: 10, output_tokens: outputTokens },
        }),
      ],
    });
    const body = { model: RESPONSES, input: "read it to me", max_output_tokens: 50 };
    scripted.script = answer(" alpha".repeat(30), 32);
    const { response: within } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    assert.equal(within.status, 200);
    assert.ok((await within.text()).includes(" alpha".repeat(30)));
    // Observed before: charged 2 output tokens (the message's), the backend's 32 not believed.
    assert.equal((await finalRow(h)).completionTokens, 32);

    scripted.script = answer(hello, 3_002);
    const { response: past } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    // Observed before: 3,000 words delivered past a 50-token limit, charged 2 output tokens.
    assert.ok(
      !(await past.text()).includes("hello hello"),
      "the 3,000 words past the limit are not forwarded",
    );
    assert.ok((await finalRow(h)).completionTokens! <= 50);
  });

  test("a Responses delta that is not a string is metered by the strings in it: charged within the limit, not delivered past it", async () => {
    const words = " alpha".repeat(30);
    const stream = (delta: unknown, outputTokens: number) =>
      responsesStream([
        {
          type: "response.output_text.delta",
          item_id: "m",
          output_index: 0,
          content_index: 0,
          delta: "Here:",
        },
        { type: "response.output_text.delta", item_id: "m", output_index: 0, content_index: 0, delta },
        completed([], outputTokens),
      ]);
    const body = { model: RESPONSES, input: "hi", stream: true, max_output_tokens: 50 };
    scripted.script = stream({ text: words }, 32);
    const { response } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    assert.ok((await response.text()).includes(words));
    // Observed before: charged 2 output tokens (the string delta's), the backend's 32 not believed.
    assert.equal((await finalRow(h)).completionTokens, 32);
    scripted.script = stream([hello], 3_000);
    const { response: past } = await payFor(h, "/v1/responses", body, buyer().privateKey);
    // Observed before: 3,000 words delivered past a 50-token limit, charged 2 output tokens.
    assert.ok(
      !(await past.text()).includes("hello hello"),
      "the 3,000 words past the limit are not forwarded",
    );
  });

  test("Messages output in a delta or block of a shape the gateway does not know is metered: charged within the limit, not delivered past it", async () => {
    const words = " alpha".repeat(30);
    const stream = (deltas: Record<string, unknown>[], outputTokens: number) => () => ({
      headers: { "content-type": "text/event-stream" },
      pieces: namedSse([
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
        ...deltas.map((delta) => ({ type: "content_block_delta", index: 0, delta })),
        { type: "content_block_stop", index: 0 },
        { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: outputTokens } },
        { type: "message_stop" },
      ]),
    });
    const body = {
      model: MESSAGES,
      messages: [{ role: "user", content: "hi" }],
      max_tokens: 50,
      stream: true,
    };
    // A newer delta type, and text beside a text delta's own: output the buyer reads, wherever it is kept.
    for (const delta of [
      { type: "transcript_delta", transcript: words },
      { type: "text_delta", text: "", extra: words },
    ]) {
      scripted.script = stream([{ type: "text_delta", text: "Here:" }, delta], 32);
      const { response } = await payFor(h, "/v1/messages", body, buyer().privateKey);
      assert.ok((await response.text()).includes(words));
      // Observed before: charged 2 output tokens (the text delta's), the backend's 32 not believed.
      assert.equal((await finalRow(h)).completionTokens, 32, JSON.stringify(delta.type));
    }
    scripted.script = stream([{ type: "transcript_delta", transcript: hello }], 3_000);
    const { response: past } = await payFor(h, "/v1/messages", body, buyer().privateKey);
    // Observed before: 3,000 words delivered past a 50-token limit, charged 0 output tokens.
    assert.ok(
      !(await past.text()).includes("hello hello"),
      "the 3,000 words past the limit are not forwarded",
    );

    scripted.script = () => ({
      pieces: [
        JSON.stringify({
          id: "m",
          type: "message",
          role: "assistant",
          content: [
            { type: "text", text: "Here:" },
            { type: "transcript", transcript: words },
          ],
          stop_reason: "end_turn",
          usage: { input_tokens: 10, output_tokens: 32 },
        }),
      ],
    });
    const { response: json } = await payFor(
      h,
      "/v1/messages",
      { ...body, stream: false },
      buyer().privateKey,
    );
    assert.ok((await json.text()).includes(words));
    assert.equal((await finalRow(h)).completionTokens, 32, "a block of an unknown type in a JSON answer");
  });

  test("tools the backend runs itself are refused by name, and nothing reaches the backend", async () => {
    const asked = scripted.bodies.length;
    for (const [path, body] of [
      [
        "/v1/responses",
        {
          model: RESPONSES,
          input: "draw a cat",
          tools: [{ type: "function", name: "f", parameters: {} }, { type: "image_generation" }],
        },
      ],
      [
        "/v1/messages",
        {
          model: MESSAGES,
          max_tokens: 50,
          messages: [{ role: "user", content: "fetch example.com" }],
          tools: [
            { name: "f", input_schema: { type: "object" } },
            { type: "web_fetch_20250910", name: "web_fetch" },
          ],
        },
      ],
      [
        CHAT,
        {
          model: SCRIPTED,
          messages: [{ role: "user", content: "search" }],
          tools: [{ type: "function", function: { name: "f" } }, { type: "browser_search" }],
        },
      ],
    ] as const) {
      const response = await postJson(h, path, body);
      assert.equal(response.status, 400, path);
      assert.match(await response.text(), /tools\[1\]\.type.*not accepted.*declare it as/);
    }
    assert.equal(scripted.bodies.length, asked);
  });
});

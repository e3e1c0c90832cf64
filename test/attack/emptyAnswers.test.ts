import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { parseReceiptEvent } from "../../src/protocol/index.js";
import { type GatewayHarness, startGatewayHarness } from "../support/gatewayHarness.js";
import { finalRow, payFor, sseEvents } from "../support/paidRequests.js";
import { type ScriptedBackend, startScriptedBackend } from "./scriptedBackend.js";

// A 200 answer that holds nothing the model generated and no usage report: the buyer got nothing, so
// it pays nothing, even to a model priced only by a fixed fee per request. An empty answer the backend
// reports work for (a prompt read, tokens generated) is an answer, charged by that usage: otherwise a
// buyer could have any prompt read (and a prompt cache written) for free by asking for nothing.

let devnet: Devnet;
let h: GatewayHarness;
let scripted: ScriptedBackend;
const FEE_ONLY = "scripted-fee-only";
const EXACT = "scripted-exact";
const MESSAGES = "scripted-messages-fee";
const RESPONSES = "scripted-responses-fee";
const PER_TOKEN = "scripted-per-token";
const FEE_ATOMIC = 5_000n;
/** Input price per million tokens: 2 atomic units a token. */
const INPUT_PER_MTOK = 2_000_000n;
const EXACT_ATOMIC = 2_000n;

before(async () => {
  devnet = await startDevnet({ buyers: 2 });
  scripted = await startScriptedBackend();
  h = await startGatewayHarness({
    devnet,
    extraModels: () => [
      {
        id: FEE_ONLY,
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        prices: { requests: FEE_ATOMIC.toString() },
        maxOutputTokens: 50,
      },
      {
        id: PER_TOKEN,
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        prices: { input_tokens: INPUT_PER_MTOK.toString(), output_tokens: "8000000" },
        maxOutputTokens: 50,
      },
      {
        id: EXACT,
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        exactPrice: EXACT_ATOMIC.toString(),
        maxOutputTokens: 50,
      },
      {
        id: MESSAGES,
        kind: "messages",
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        prices: { requests: FEE_ATOMIC.toString() },
        maxOutputTokens: 50,
      },
      {
        id: RESPONSES,
        kind: "responses",
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        prices: { requests: FEE_ATOMIC.toString() },
        maxOutputTokens: 50,
      },
    ],
  });
});
after(async () => {
  await h?.close();
  await scripted?.close();
  await devnet?.stop();
});

const chat = (model: string, stream = false) => ({
  model,
  messages: [{ role: "user", content: "hello" }],
  max_tokens: 20,
  ...(stream ? { stream: true } : {}),
});
const answer = (
  message: Record<string, unknown>,
  finish = "stop",
  usage: Record<string, number> | null = { prompt_tokens: 8, completion_tokens: 0, total_tokens: 8 },
) =>
  JSON.stringify({
    id: "c",
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", ...message }, finish_reason: finish }],
    ...(usage ? { usage } : {}),
  });
const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
  `data: ${JSON.stringify({ id: "c", object: "chat.completion.chunk", choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;

/** Pays for one request to `model` by `scheme` and answers with the buyer's loss and the payment's row. */
async function paidRequest(
  model: string,
  scheme: "upto" | "exact",
  stream = false,
  body: Record<string, unknown> = chat(model, stream),
) {
  const buyer = devnet.accounts.buyers[scheme === "upto" ? 0 : 1]!;
  const before = await devnet.usdcBalance(buyer.address);
  const { response } = await payFor(h, "/v1/chat/completions", body, buyer.privateKey, {
    scheme,
  });
  const text = await response.text();
  const row = await finalRow(h);
  return { response, text, row, paidAtomic: before - (await devnet.usdcBalance(buyer.address)) };
}

const emptyJsonAnswers: Record<string, string> = {
  "a choice with empty content and no usage": answer({ content: "" }, "stop", null),
  "a choice with null content, stopped at the limit, and no usage": answer({ content: null }, "length", null),
  "a choice filtered to nothing, with a usage of zero": answer({ content: "" }, "content_filter", {
    prompt_tokens: 0,
    completion_tokens: 0,
  }),
  "no choices": JSON.stringify({ id: "c", object: "chat.completion", choices: [] }),
  "a body that is not a completion": JSON.stringify({ hello: "world" }),
};

describe("a JSON answer with nothing in it", () => {
  for (const [what, body] of Object.entries(emptyJsonAnswers)) {
    for (const [model, scheme] of [
      [FEE_ONLY, "upto"],
      [EXACT, "exact"],
    ] as const) {
      test(`${what}: the ${scheme} fee is not charged, and the row says why`, async () => {
        scripted.script = () => ({ pieces: [body] });
        const { response, text, row, paidAtomic } = await paidRequest(model, scheme);
        assert.equal(response.status, 502, text);
        assert.match(text, /nothing is charged/);
        assert.equal(paidAtomic, 0n);
        assert.equal(row.status, "failed");
        assert.equal(row.chargeAtomic, null);
        assert.match(row.error ?? "", /no result|nothing/);
      });
    }
  }

  const workedFor: Record<string, string> = {
    "empty content, a stop sequence met at once": answer({ content: "" }),
    "null content, reasoning that used up the limit": answer({ content: null }, "length", {
      prompt_tokens: 8,
      completion_tokens: 20,
      total_tokens: 28,
    }),
    "empty content, filtered": answer({ content: "" }, "content_filter"),
  };
  for (const [what, body] of Object.entries(workedFor)) {
    for (const [model, scheme, price] of [
      [FEE_ONLY, "upto", FEE_ATOMIC],
      [EXACT, "exact", EXACT_ATOMIC],
    ] as const) {
      test(`${what}, with the backend's usage: an answer, the ${scheme} price is charged`, async () => {
        scripted.script = () => ({ pieces: [body] });
        const { response, text, row, paidAtomic } = await paidRequest(model, scheme);
        assert.equal(response.status, 200, text);
        assert.equal(paidAtomic, price);
        assert.equal(row.status, "settled");
      });
    }
  }

  test("a long prompt answered with nothing by a stop sequence: the prompt the backend read is charged, not given away", async () => {
    // The buyer asks for nothing (a stop sequence the first token meets): the backend still reads the
    // whole prompt, which a prompt cache may keep for later requests at its cached price.
    const promptTokens = 3_000;
    scripted.script = () => ({
      pieces: [answer({ content: "" }, "stop", { prompt_tokens: promptTokens, completion_tokens: 0 })],
    });
    const body = {
      model: PER_TOKEN,
      messages: [{ role: "user", content: "lorem ipsum ".repeat(1_500) }],
      max_tokens: 20,
      stop: [" ", "a", "e", "i", "o", "u", "."],
    };
    const { response, text, row, paidAtomic } = await paidRequest(PER_TOKEN, "upto", false, body);
    assert.equal(response.status, 200, text);
    const promptCharge = BigInt(promptTokens) * (INPUT_PER_MTOK / 1_000_000n);
    assert.equal(paidAtomic, promptCharge);
    assert.equal(row.chargeAtomic, promptCharge);
  });

  test("an answer with a tool call is something: the fee is charged", async () => {
    scripted.script = () => ({
      pieces: [
        answer(
          {
            content: null,
            tool_calls: [{ id: "t", type: "function", function: { name: "lookup", arguments: "{}" } }],
          },
          "tool_calls",
        ),
      ],
    });
    const { response, row, paidAtomic } = await paidRequest(FEE_ONLY, "upto");
    assert.equal(response.status, 200);
    assert.equal(paidAtomic, FEE_ATOMIC);
    assert.equal(row.status, "settled");
  });

  test("a refusal is something: the exact price is charged", async () => {
    scripted.script = () => ({ pieces: [answer({ content: null, refusal: "I can't help with that." })] });
    const { response, paidAtomic } = await paidRequest(EXACT, "exact");
    assert.equal(response.status, 200);
    assert.equal(paidAtomic, EXACT_ATOMIC);
  });
});

describe("a stream with nothing in it", () => {
  const sse = { "content-type": "text/event-stream" };
  test("a role chunk and a finish chunk with no content and no usage: no fee, no receipt, an error event saying so", async () => {
    scripted.script = () => ({
      headers: sse,
      pieces: [chunk({ role: "assistant", content: "" }), chunk({}, "stop"), "data: [DONE]\n\n"],
    });
    const { text, row, paidAtomic } = await paidRequest(FEE_ONLY, "upto", true);
    assert.equal(paidAtomic, 0n);
    assert.equal(row.status, "failed");
    assert.match(row.error ?? "", /nothing/);
    const events = sseEvents(text);
    assert.ok(!events.some((event) => parseReceiptEvent(event.data).ok), "no receipt: nothing was charged");
    assert.match(events.at(-1)?.data ?? "", /nothing is charged/);
  });

  test("a stream that ends with no event at all charges no exact price", async () => {
    scripted.script = () => ({ headers: sse, pieces: [""] });
    const { paidAtomic, row } = await paidRequest(EXACT, "exact", true);
    assert.equal(paidAtomic, 0n);
    assert.equal(row.status, "failed");
  });

  test("a role chunk, a finish chunk and the backend's usage: an answer, charged the fee", async () => {
    const usage = {
      id: "c",
      object: "chat.completion.chunk",
      choices: [],
      usage: { prompt_tokens: 8, completion_tokens: 0 },
    };
    scripted.script = () => ({
      headers: sse,
      pieces: [
        chunk({ role: "assistant", content: "" }),
        chunk({}, "stop"),
        `data: ${JSON.stringify(usage)}\n\n`,
        "data: [DONE]\n\n",
      ],
    });
    const { text, row, paidAtomic } = await paidRequest(FEE_ONLY, "upto", true);
    assert.equal(paidAtomic, FEE_ATOMIC);
    assert.equal(row.status, "settled");
    assert.ok(
      sseEvents(text).some((event) => parseReceiptEvent(event.data).ok),
      "a receipt",
    );
  });

  test("a stream with one word in it is charged the fee", async () => {
    scripted.script = () => ({
      headers: sse,
      pieces: [chunk({ role: "assistant", content: "" }), chunk({ content: "Hi" }), chunk({}, "stop")],
    });
    const { text, paidAtomic } = await paidRequest(FEE_ONLY, "upto", true);
    assert.equal(paidAtomic, FEE_ATOMIC);
    const receipt = sseEvents(text)
      .map((event) => parseReceiptEvent(event.data))
      .find((parsed) => parsed.ok);
    assert.equal(receipt?.ok && receipt.receipt.amount, FEE_ATOMIC.toString());
  });
});

describe("the other generating APIs, answering nothing", () => {
  const nothing = [
    {
      what: "a Messages answer with no content block",
      path: "/v1/messages",
      body: { model: MESSAGES, max_tokens: 20, messages: [{ role: "user", content: "hello" }] },
      answer: {
        id: "m",
        type: "message",
        role: "assistant",
        content: [],
        stop_reason: "end_turn",
      },
      usage: { input_tokens: 8, output_tokens: 0 },
    },
    {
      what: "a Responses answer with an empty output",
      path: "/v1/responses",
      body: { model: RESPONSES, max_output_tokens: 20, input: "hello" },
      answer: {
        id: "r",
        object: "response",
        status: "completed",
        output: [],
      },
      usage: { input_tokens: 8, output_tokens: 0, total_tokens: 8 },
    },
  ];
  for (const { what, path, body, answer, usage } of nothing) {
    test(`${what}, with the backend's usage: an answer, the fee is charged`, async () => {
      scripted.script = () => ({ pieces: [JSON.stringify({ ...answer, usage })] });
      const buyer = devnet.accounts.buyers[0]!;
      const before = await devnet.usdcBalance(buyer.address);
      const { response } = await payFor(h, path, body, buyer.privateKey);
      const text = await response.text();
      assert.equal(response.status, 200, text);
      assert.equal(before - (await devnet.usdcBalance(buyer.address)), FEE_ATOMIC);
      assert.equal((await finalRow(h)).status, "settled");
    });

    test(`${what}, and no usage: no fee`, async () => {
      scripted.script = () => ({ pieces: [JSON.stringify(answer)] });
      const buyer = devnet.accounts.buyers[0]!;
      const before = await devnet.usdcBalance(buyer.address);
      const { response } = await payFor(h, path, body, buyer.privateKey);
      const text = await response.text();
      assert.equal(response.status, 502, text);
      assert.equal(await devnet.usdcBalance(buyer.address), before);
      assert.equal((await finalRow(h)).status, "failed");
    });
  }
});

describe("a stream whose backend fails before generating anything", () => {
  const start = {
    type: "message_start",
    message: {
      id: "m",
      type: "message",
      role: "assistant",
      content: [],
      usage: { input_tokens: 8, output_tokens: 1 },
    },
  };
  const emptyBlock = { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } };
  const overloaded = { type: "error", error: { type: "overloaded_error", message: "Overloaded" } };
  const event = (data: { type: string }) => `event: ${data.type}\ndata: ${JSON.stringify(data)}\n\n`;
  const failures: Record<string, string[]> = {
    "a Messages stream that fails after message_start (which states the prompt's tokens)": [
      event(start),
      event(overloaded),
    ],
    "a Messages stream that fails after message_start and an empty text block": [
      event(start),
      event(emptyBlock),
      event(overloaded),
    ],
  };
  for (const [what, pieces] of Object.entries(failures))
    test(`${what}: nothing is charged`, async () => {
      scripted.script = () => ({ headers: { "content-type": "text/event-stream" }, pieces });
      const buyer = devnet.accounts.buyers[0]!;
      const before = await devnet.usdcBalance(buyer.address);
      const { response } = await payFor(
        h,
        "/v1/messages",
        { model: MESSAGES, max_tokens: 20, stream: true, messages: [{ role: "user", content: "hello" }] },
        buyer.privateKey,
      );
      const text = await response.text();
      assert.match(text, /nothing is charged/);
      assert.equal(await devnet.usdcBalance(buyer.address), before);
      assert.equal((await finalRow(h)).status, "failed");
    });
});

import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type ServerType, serve } from "@hono/node-server";
import express from "express";
import { Hono } from "hono";
import { createPayingFetch } from "../../src/buyer/index.js";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { createFacilitator } from "../../src/facilitator/index.js";
import {
  type Billing,
  createBilling,
  parseGatewayConfig,
  proxyToBackend,
  type TollgateContext,
  type TollgateExpressContext,
  tollgateExpress,
  tollgateHono,
  withTollgate,
} from "../../src/gateway/index.js";
import type { PaymentRecord } from "../../src/ledger/index.js";
import { countTextTokens } from "../../src/pricing/index.js";
import { channelTestConfig } from "../support/channelFixtures.js";
import {
  billingTermsOf,
  type GatewayHarness,
  startGatewayHarness,
  startGatewayOnLedger,
} from "../support/gatewayHarness.js";
import { finalRow, payFor } from "../support/paidRequests.js";
import { type ScriptedAnswer, type ScriptedBackend, sseOf, startScriptedBackend } from "./scriptedBackend.js";

// A buyer that reads a stream to its last visible event and hangs up just before the backend's usage
// report, which alone states the reasoning the model did unseen: it must pay for that reasoning, as a
// buyer that reads to the end does, and never more.

let devnet: Devnet;
let h: GatewayHarness;
let scripted: ScriptedBackend;
let nextBuyer = 0;
const buyer = () => devnet.accounts.buyers[nextBuyer++ % devnet.accounts.buyers.length]!;
const CHAT = "scripted-chat";
const MESSAGES = "scripted-messages";
const RESPONSES = "scripted-responses";
/** A chat model whose requests have a 2 s time bound. */
const CHAT_BOUNDED = "scripted-chat-bounded";
/** A chat model not declared to reason unseen (`hiddenReasoning` unset, no reasoning_tokens price). */
const CHAT_PLAIN = "scripted-chat-plain";
/** Reasoning the backend reports and never streams. */
const REASONING = 200;

/** A model on the scripted backend; chat and Responses ones declared to reason unseen unless `reasonsUnseen` is false. */
const model = (
  id: string,
  kind: "chat" | "messages" | "responses",
  maxDurationSeconds = 60,
  reasonsUnseen = kind !== "messages",
) => ({
  id,
  kind,
  tokenizer: "o200k_base" as const,
  backend: { baseUrl: scripted.url, maxDurationSeconds },
  inputPrice: "3000000",
  outputPrice: "15000000",
  maxOutputTokens: 8192,
  ...(reasonsUnseen ? { hiddenReasoning: true } : {}),
});

before(async () => {
  devnet = await startDevnet({ buyers: 6 });
  scripted = await startScriptedBackend();
  h = await startGatewayHarness({
    devnet,
    configure: channelTestConfig,
    extraModels: () => [
      model(CHAT, "chat"),
      model(MESSAGES, "messages"),
      model(RESPONSES, "responses"),
      model(CHAT_BOUNDED, "chat", 2),
      model(CHAT_PLAIN, "chat", 60, false),
    ],
  });
});
const closers: Array<() => Promise<void>> = [];
after(async () => {
  for (const close of closers) await close();
  await h?.close();
  await scripted?.close();
  await devnet?.stop();
});

/** A promise the test resolves: the backend's next piece waits for it. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { opened, open };
}

/** Reads a stream until `seen` holds for what came, then hangs up; returns what came. */
async function readThenHangUp(response: Response, seen: (text: string) => boolean): Promise<string> {
  assert.equal(response.status, 200);
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let text = "";
  while (!seen(text)) {
    const next = await reader.read();
    assert.ok(!next.done, `the stream ended before the buyer saw what it waited for: ${text}`);
    text += decoder.decode(next.value, { stream: true });
  }
  await reader.cancel();
  return text;
}

/**
 * Serves `pieces` twice: read whole by one buyer, then read up to `seen` by another that hangs up
 * before piece `held` (the usage report), which the backend sends only once the buyer left.
 * Returns both rows.
 */
async function honestThenHangUp(
  path: string,
  body: Record<string, unknown>,
  answer: Omit<ScriptedAnswer, "waitBefore">,
  held: number,
  seen: (text: string) => boolean,
  on: GatewayHarness = h,
): Promise<{ honest: PaymentRecord; hungUp: PaymentRecord }> {
  scripted.script = () => answer;
  const paid = await payFor(on, path, body, buyer().privateKey);
  assert.equal(paid.response.status, 200);
  await paid.response.text();
  const honest = await finalRow(h);
  const usage = gate();
  scripted.script = () => ({ ...answer, waitBefore: { [held]: usage.opened } });
  const payer = buyer();
  const before = await devnet.usdcBalance(payer.address);
  const { response } = await payFor(on, path, body, payer.privateKey);
  await readThenHangUp(response, seen);
  // The gateway sees the buyer leave before the backend reports its usage.
  await sleep(300);
  usage.open();
  const hungUp = await finalRow(h);
  assert.notEqual(hungUp.id, honest.id);
  assert.equal(hungUp.status, "settled");
  assert.equal(before - (await devnet.usdcBalance(payer.address)), hungUp.chargeAtomic, "taken as charged");
  return { honest, hungUp };
}

/**
 * Serves `pieces`, holding piece `held` until the buyer, which reads up to `seen`, has hung up; checks
 * the backend was stopped (the answer cut short) and the payment settled, and returns its row.
 */
async function hangUpThenStopped(
  path: string,
  body: Record<string, unknown>,
  pieces: string[],
  held: number,
  seen: (text: string) => boolean,
  on: GatewayHarness = h,
): Promise<PaymentRecord> {
  const rest = gate();
  scripted.script = () => ({ headers: SSE, pieces, waitBefore: { [held]: rest.opened } });
  const cutShort = scripted.cutShort;
  const { response } = await payFor(on, path, body, buyer().privateKey);
  await readThenHangUp(response, seen);
  await sleep(300);
  rest.open();
  const row = await finalRow(on);
  assert.equal(row.status, "settled");
  assert.equal(scripted.cutShort, cutShort + 1, "the backend was stopped: it generates nothing for no one");
  return row;
}

const namedSse = (events: Record<string, unknown>[]) =>
  events.map((event) => `event: ${String(event.type)}\ndata: ${JSON.stringify(event)}\n\n`);
const SSE = { "content-type": "text/event-stream" };

const answer = "The answer is 42, as it always was.";
const answerTokens = countTextTokens(answer, "o200k_base");
const words = answer.split(/(?= )/);

/** An o-series chat stream: the answer, its finish, then the usage chunk itemizing unseen reasoning. */
function chatStream(reasoned = REASONING) {
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
    id: "c1",
    object: "chat.completion.chunk",
    choices: [{ index: 0, delta, finish_reason: finish }],
  });
  const chunks = [
    chunk({ role: "assistant", content: "" }),
    ...words.map((word) => chunk({ content: word })),
    chunk({}, "stop"),
    {
      id: "c1",
      object: "chat.completion.chunk",
      choices: [],
      usage: {
        prompt_tokens: 12,
        completion_tokens: answerTokens + reasoned,
        total_tokens: 12 + answerTokens + reasoned,
        completion_tokens_details: { reasoning_tokens: reasoned },
      },
    },
  ];
  return { pieces: sseOf(chunks), usageAt: chunks.length - 1 };
}

const chatBody = (model: string) => ({
  model,
  messages: [{ role: "user", content: "what is the answer?" }],
  reasoning_effort: "high",
  max_completion_tokens: 1000,
  stream: true,
  stream_options: { include_usage: true },
});

/** An o-series chat stream read whole, then hung up on after its finish: both pay the reasoning itemized. */
async function chatHangUpPaysReasoning(on: GatewayHarness = h): Promise<void> {
  const { pieces, usageAt } = chatStream();
  const { honest, hungUp } = await honestThenHangUp(
    "/v1/chat/completions",
    chatBody(CHAT),
    { headers: SSE, pieces },
    usageAt,
    (text) => text.includes('"finish_reason":"stop"'),
    on,
  );
  assert.equal(honest.completionTokens, answerTokens + REASONING);
  // Observed before: the answer's tokens only, the reasoning free (on Hono, Next and Express routes
  // built as the README showed, whose handlers gave the backend call the buyer's own signal).
  assert.equal(hungUp.completionTokens, answerTokens + REASONING);
  assert.equal(hungUp.chargeAtomic, honest.chargeAtomic, "what a full read is charged, no more");
}

/** A chat stream of a model not declared to reason unseen, hung up on after its answer: the backend stopped, what was delivered paid. */
async function plainChatHangUpPaysDelivered(on: GatewayHarness = h): Promise<void> {
  const { pieces, usageAt } = chatStream();
  const row = await hangUpThenStopped(
    "/v1/chat/completions",
    chatBody(CHAT_PLAIN),
    pieces,
    usageAt - 1,
    (text) => text.includes(words.at(-1)!),
    on,
  );
  assert.equal(row.completionTokens, answerTokens);
}

describe("a buyer that hangs up after the answer and before the usage report", () => {
  test("chat (o-series): pays the reasoning the usage itemizes, as a full read does", () =>
    chatHangUpPaysReasoning());

  test("Messages with extended thinking: pays the thinking billed whole, as a full read does", async () => {
    const budget = 3000;
    const events = [
      {
        type: "message_start",
        message: {
          id: "m1",
          type: "message",
          role: "assistant",
          content: [],
          usage: { input_tokens: 12, output_tokens: 1 },
        },
      },
      { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: "Think." } },
      { type: "content_block_delta", index: 0, delta: { type: "signature_delta", signature: "c2ln" } },
      { type: "content_block_stop", index: 0 },
      { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } },
      ...words.map((word) => ({
        type: "content_block_delta",
        index: 1,
        delta: { type: "text_delta", text: word },
      })),
      { type: "content_block_stop", index: 1 },
      { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: budget } },
      { type: "message_stop" },
    ];
    const { honest, hungUp } = await honestThenHangUp(
      "/v1/messages",
      {
        model: MESSAGES,
        max_tokens: 4000,
        thinking: { type: "enabled", budget_tokens: budget },
        messages: [{ role: "user", content: "what is the answer?" }],
        stream: true,
      },
      { headers: SSE, pieces: namedSse(events) },
      events.length - 2,
      (text) => text.includes('event: content_block_stop\ndata: {"type":"content_block_stop","index":1}'),
    );
    assert.equal(honest.completionTokens, budget);
    // Observed before: the thinking summary and the answer's tokens only.
    assert.equal(hungUp.completionTokens, budget);
    assert.equal(hungUp.chargeAtomic, honest.chargeAtomic, "what a full read is charged, no more");
  });

  test("Responses with reasoning: pays the reasoning response.completed reports, as a full read does", async () => {
    const summary = "Thinking it over.";
    const shown = countTextTokens(summary + answer, "o200k_base");
    const events = [
      {
        type: "response.created",
        response: { id: "r", object: "response", status: "in_progress", output: [] },
      },
      { type: "response.reasoning_summary_text.delta", item_id: "rs", output_index: 0, delta: summary },
      ...words.map((word) => ({
        type: "response.output_text.delta",
        item_id: "m",
        output_index: 1,
        delta: word,
      })),
      {
        type: "response.completed",
        response: {
          id: "r",
          object: "response",
          status: "completed",
          output: [{ type: "message", content: [{ type: "output_text", text: answer }] }],
          usage: {
            input_tokens: 12,
            output_tokens: shown + REASONING,
            output_tokens_details: { reasoning_tokens: REASONING },
          },
        },
      },
    ];
    const { honest, hungUp } = await honestThenHangUp(
      "/v1/responses",
      { model: RESPONSES, input: "what is the answer?", stream: true, max_output_tokens: 1000 },
      { headers: SSE, pieces: namedSse(events) },
      events.length - 1,
      (text) => text.includes(JSON.stringify(words.at(-1))),
    );
    assert.equal(honest.completionTokens, shown + REASONING);
    // Observed before: the summary and the answer's tokens only.
    assert.equal(hungUp.completionTokens, shown + REASONING);
    assert.equal(hungUp.chargeAtomic, honest.chargeAtomic, "what a full read is charged, no more");
  });

  test("by payment channel: pays the reasoning the usage itemizes", async () => {
    const { pieces, usageAt } = chatStream();
    const usage = gate();
    scripted.script = () => ({ headers: SSE, pieces, waitBefore: { [usageAt]: usage.opened } });
    const payer = await devnet.createBuyer(100_000_000n);
    const pay = createPayingFetch({
      privateKey: payer.privateKey,
      rpcUrl: devnet.rpcUrl,
      dataDir: "memory://",
    });
    try {
      const response = await pay(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(chatBody(CHAT)),
      });
      await readThenHangUp(response, (text) => text.includes('"finish_reason":"stop"'));
      await sleep(300);
      usage.open();
      const row = await finalRow(h);
      assert.equal(row.scheme, "batch-settlement");
      // Observed before: the answer's tokens only, the reasoning free.
      assert.equal(row.completionTokens, answerTokens + REASONING);
      assert.equal(row.chargeAtomic, 12n * 3n + BigInt(answerTokens + REASONING) * 15n);
    } finally {
      await pay.close();
    }
  });
});

describe("on a Hono, Next or Express route built as the README shows", () => {
  /** The route's server on the harness's ledger, billed by an in-process facilitator of its own key. */
  async function middlewareRoute(
    adapter: "hono" | "next" | "express",
    expressHandler?: express.RequestHandler,
  ): Promise<GatewayHarness & { billing: Billing }> {
    const key = await devnet.createBuyer(0n);
    const facilitator = createFacilitator({
      rpcUrl: devnet.rpcUrl,
      privateKey: key.privateKey,
      network: devnet.network,
      pollingIntervalMs: 20,
    });
    const billing = createBilling({
      terms: billingTermsOf(devnet, facilitator),
      models: parseGatewayConfig({
        network: devnet.network,
        asset: devnet.contracts.usdc,
        payTo: devnet.accounts.payTo.address,
        models: [model(CHAT, "chat"), model(CHAT_PLAIN, "chat", 60, false)],
      }).models,
      facilitator,
      ledger: h.ledger.payments,
      countTokens: countTextTokens,
    });
    if (adapter === "express") {
      const app = express();
      if (expressHandler) {
        app.post("/v1/chat/completions", express.json(), tollgateExpress({ billing }), expressHandler);
        return listening(app.listen(0, "127.0.0.1"), billing);
      }
      app.post("/v1/chat/completions", express.json(), tollgateExpress({ billing }), async (_req, res) => {
        const { quote, backendBody, signal, promptSent } = res.locals.tollgate as TollgateExpressContext;
        try {
          const upstream = await proxyToBackend({
            model: quote.model,
            body: backendBody,
            route: quote.route,
            signal,
            onPromptSent: promptSent,
          });
          res.status(upstream.status).type(upstream.headers.get("content-type") ?? "application/json");
          for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
          res.end();
        } catch (error) {
          if (!signal.aborted) throw error;
        }
      });
      return listening(app.listen(0, "127.0.0.1"), billing);
    }
    let serveRequest: (request: Request) => Response | Promise<Response>;
    if (adapter === "hono") {
      const app = new Hono<{ Variables: { tollgate: TollgateContext } }>();
      app.post("/v1/chat/completions", tollgateHono({ billing }), async (c) => {
        const { quote, backendBody, signal } = c.get("tollgate");
        return proxyToBackend({ model: quote.model, body: backendBody, signal });
      });
      serveRequest = app.fetch;
    } else {
      const route = withTollgate(
        (_request, _context: unknown, { quote, backendBody, signal }) =>
          proxyToBackend({ model: quote.model, body: backendBody, signal }),
        { billing },
      );
      serveRequest = (request) => route(request, {});
    }
    return listening(serve({ fetch: serveRequest, hostname: "127.0.0.1", port: 0 }), billing);
  }

  /** The harness with its gateway's address replaced by the server's, once it listens; closed after the tests. */
  async function listening(
    server: ServerType,
    billing: Billing,
  ): Promise<GatewayHarness & { billing: Billing }> {
    if (!server.listening) await new Promise((resolve) => server.once("listening", resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return { ...h, gateway: { ...h.gateway, url }, billing };
  }

  for (const adapter of ["hono", "next", "express"] as const) {
    test(`${adapter}: a chat buyer that hangs up before the usage report pays the reasoning it itemizes, as a full read does`, async () =>
      chatHangUpPaysReasoning(await middlewareRoute(adapter)));

    test(`${adapter}: a buyer of a chat model not declared to reason unseen pays what was delivered, the backend stopped`, async () =>
      plainChatHangUpPaysDelivered(await middlewareRoute(adapter)));
  }

  test("express: after the answer, while the gateway stops (Billing.stopReadingOn): the handler's backend call is stopped and the buyer pays what was delivered", async () => {
    const { pieces, usageAt } = chatStream();
    scripted.script = () => ({ headers: SSE, pieces, stallAfter: usageAt });
    let signal: AbortSignal | undefined;
    const answerClosed = gate();
    const on = await middlewareRoute("express", async (_req, res) => {
      const context = res.locals.tollgate as TollgateExpressContext;
      signal = context.signal;
      // Registered after the middleware's own: when it runs, the middleware has seen the buyer go.
      res.once("close", answerClosed.open);
      try {
        const upstream = await proxyToBackend({
          model: context.quote.model,
          body: context.backendBody,
          route: context.quote.route,
          signal: context.signal,
          onPromptSent: context.promptSent,
        });
        res.status(upstream.status).type(upstream.headers.get("content-type") ?? "application/json");
        for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
        res.end();
      } catch (error) {
        if (!context.signal.aborted) throw error;
      }
    });
    const { response } = await payFor(on, "/v1/chat/completions", chatBody(CHAT), buyer().privateKey);
    await readThenHangUp(response, (text) => text.includes('"finish_reason":"stop"'));
    await answerClosed.opened;
    assert.equal(signal?.aborted, false, "the stalled backend is read on for its usage report");
    on.billing.stopReadingOn();
    // Observed before: Express read on regardless, until the request's time bound (60 s here).
    assert.equal(signal?.aborted, true, "the backend call is stopped as the gateway stops");
    await on.billing.whenSettled();
    const row = await finalRow(on);
    assert.equal(row.status, "settled");
    assert.equal(row.completionTokens, answerTokens);
  });

  test("express: a hurried handler that ended with the usage report while output waited for the buyer, who then hung up: the reasoning it itemizes is paid", async () => {
    const { pieces, usageAt } = chatStream();
    const on = await middlewareRoute("express", (_req, res) => {
      res.status(200).type("text/event-stream");
      // The answer goes out; a chunk of no tokens the socket cannot take at once makes what follows wait.
      for (const piece of pieces.slice(0, usageAt - 1)) res.write(piece);
      const pad = { index: 0, delta: { content: "" }, finish_reason: null, pad: "x".repeat(32 << 20) };
      res.write(sseOf([{ id: "c1", object: "chat.completion.chunk", choices: [pad] }])[0]!);
      res.write(pieces[usageAt - 1]!);
      res.end(pieces.slice(usageAt).join(""));
    });
    const { response } = await payFor(on, "/v1/chat/completions", chatBody(CHAT), buyer().privateKey);
    await readThenHangUp(response, (text) => text.includes(words[0]!));
    const row = await finalRow(on);
    assert.equal(row.status, "settled");
    // Observed before: the usage report the handler's end carried was dropped when the buyer left, and
    // the answer was charged at the time bound without the reasoning.
    assert.equal(row.completionTokens, answerTokens + REASONING);
  });
});

describe("a buyer that hangs up otherwise", () => {
  test("during thinking shown as it goes (chat reasoning_content): pays what was delivered, the backend stopped", async () => {
    const thought = "Let me think about what the answer could be.";
    const chunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
      id: "c2",
      object: "chat.completion.chunk",
      choices: [{ index: 0, delta, finish_reason: finish }],
    });
    const chunks = [
      chunk({ role: "assistant", reasoning_content: thought }),
      chunk({ content: answer }),
      chunk({}, "stop"),
      {
        id: "c2",
        object: "chat.completion.chunk",
        choices: [],
        // Reading on would believe the itemized reasoning: the charge would then be far above what was delivered.
        usage: {
          prompt_tokens: 12,
          completion_tokens: 900,
          total_tokens: 912,
          completion_tokens_details: { reasoning_tokens: 800 },
        },
      },
    ];
    const row = await hangUpThenStopped("/v1/chat/completions", chatBody(CHAT), sseOf(chunks), 1, (text) =>
      text.includes(thought),
    );
    assert.equal(row.completionTokens, countTextTokens(thought, "o200k_base"));
  });

  test("during Messages thinking: pays what was delivered", async () => {
    const thought = "Let me think about what the answer could be.";
    const events = [
      {
        type: "message_start",
        message: { id: "m2", type: "message", role: "assistant", content: [], usage: { input_tokens: 12 } },
      },
      { type: "content_block_start", index: 0, content_block: { type: "thinking", thinking: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "thinking_delta", thinking: thought } },
      { type: "content_block_stop", index: 0 },
      { type: "content_block_start", index: 1, content_block: { type: "text", text: "" } },
      { type: "content_block_delta", index: 1, delta: { type: "text_delta", text: answer } },
      { type: "content_block_stop", index: 1 },
      { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 2000 } },
      { type: "message_stop" },
    ];
    const row = await hangUpThenStopped(
      "/v1/messages",
      {
        model: MESSAGES,
        max_tokens: 4000,
        thinking: { type: "enabled", budget_tokens: 3000 },
        messages: [{ role: "user", content: "what is the answer?" }],
        stream: true,
      },
      namedSse(events),
      3,
      (text) => text.includes(thought),
    );
    assert.equal(row.completionTokens, countTextTokens(thought, "o200k_base"));
  });

  test("after the answer began, on a Messages request with thinking disabled: pays what was delivered, the backend stopped", async () => {
    const events = [
      {
        type: "message_start",
        message: { id: "m3", type: "message", role: "assistant", content: [], usage: { input_tokens: 12 } },
      },
      { type: "content_block_start", index: 0, content_block: { type: "text", text: "" } },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: answer } },
      { type: "content_block_delta", index: 0, delta: { type: "text_delta", text: " And more." } },
      { type: "content_block_stop", index: 0 },
      { type: "message_delta", delta: { stop_reason: "end_turn" }, usage: { output_tokens: 2000 } },
      { type: "message_stop" },
    ];
    const row = await hangUpThenStopped(
      "/v1/messages",
      {
        model: MESSAGES,
        max_tokens: 4000,
        thinking: { type: "disabled" },
        messages: [{ role: "user", content: "what is the answer?" }],
        stream: true,
      },
      namedSse(events),
      3,
      (text) => text.includes(answer),
    );
    assert.equal(row.completionTokens, answerTokens);
  });

  test("after the answer began, on a chat model not declared to reason unseen: pays what was delivered, the backend stopped", () =>
    plainChatHangUpPaysDelivered());

  test("after the answer, from a backend that never reports usage: pays what was delivered at the time bound", async () => {
    const { pieces, usageAt } = chatStream();
    scripted.script = () => ({ headers: SSE, pieces, stallAfter: usageAt });
    const { response } = await payFor(h, "/v1/chat/completions", chatBody(CHAT_BOUNDED), buyer().privateKey);
    await readThenHangUp(response, (text) => text.includes('"finish_reason":"stop"'));
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(row.completionTokens, answerTokens);
  });

  test("after the answer, while the gateway stops: the backend is stopped and the buyer pays what was delivered", async () => {
    const stopping = await startGatewayOnLedger(h, (input) =>
      channelTestConfig({ ...input, models: [...input.models, model(CHAT, "chat")] }),
    );
    const { pieces, usageAt } = chatStream();
    scripted.script = () => ({ headers: SSE, pieces, stallAfter: usageAt });
    const { response } = await payFor(
      { ...h, gateway: stopping },
      "/v1/chat/completions",
      chatBody(CHAT),
      buyer().privateKey,
    );
    await readThenHangUp(response, (text) => text.includes('"finish_reason":"stop"'));
    // The gateway reads the stalled backend on; then it stops.
    await sleep(300);
    await stopping.close();
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(row.completionTokens, answerTokens);
  });
});

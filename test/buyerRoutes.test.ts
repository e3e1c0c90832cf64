import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import OpenAI from "openai";
import type { BuyerEvent } from "../src/buyer/BuyerEvent.js";
import { chooseProvider, createPayingFetch, type PayingFetch } from "../src/buyer/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { eventLog } from "./support/buyerFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockCompletionText } from "./support/mockBackend.js";
import { runCli } from "./support/runCli.js";

const IMAGE_ATOMIC = 10_000n;
const PER_SECOND_ATOMIC = 3_600n;

let h: GatewayHarness;
const opened: PayingFetch[] = [];

before(async () => {
  h = await startGatewayHarness({
    extraModels: (baseUrl) => [
      {
        id: "mock-claude",
        backend: { baseUrl, apis: ["messages"] },
        tokenizer: "gpt-4o",
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 256,
      },
      {
        id: "mock-responses",
        backend: { baseUrl, apis: ["chat", "responses"] },
        tokenizer: "gpt-4o",
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 256,
      },
      {
        id: "mock-image",
        kind: "image",
        backend: { baseUrl },
        imagePrices: { "256x256": IMAGE_ATOMIC.toString(), "1024x1024": "40000" },
      },
      { id: "mock-embed", kind: "embedding", backend: { baseUrl }, inputPrice: "100000" },
      {
        id: "mock-gpu",
        backend: { baseUrl, maxDurationSeconds: 5 },
        pricePerSecond: PER_SECOND_ATOMIC.toString(),
        maxOutputTokens: 256,
        tokenizer: "gpt-4o",
      },
    ],
  });
});
after(async () => {
  for (const payingFetch of opened) await payingFetch.close();
  await h?.close();
});

/**
 * Tollgate's paying fetch for one devnet buyer, in memory. `maxOverExpected: 1` makes every payment
 * prove that the buyer's own bound on the request is at least the seller's maximum.
 */
function payingFetchFor(buyer: number, policy: Record<string, unknown> = {}) {
  const log = eventLog();
  const payingFetch = createPayingFetch({
    privateKey: h.devnet.accounts.buyers[buyer]!.privateKey,
    dataDir: "memory://",
    policy: { maxOverExpected: 1, ...policy },
    onEvent: log.onEvent,
  });
  opened.push(payingFetch);
  return { payingFetch, log };
}

type ReceiptEvent = Extract<BuyerEvent, { type: "receipt" }>;

/** One paid request's books agree: receipt = ledger row = the buyer's spend row, the buyer's estimate held, no dispute. */
async function expectBooksAgree(
  payingFetch: PayingFetch,
  log: ReturnType<typeof eventLog>,
  route: string,
): Promise<{ receipt: ReceiptEvent; units: Record<string, number> | undefined }> {
  await payingFetch.idle();
  const [authorized] = log.of("authorized");
  const [receipt] = log.of("receipt");
  assert.ok(authorized && receipt, "authorized, then a receipt");
  assert.ok(
    authorized.expectedAtomic !== undefined && authorized.expectedAtomic >= authorized.maxAtomic,
    `the buyer's own estimate ${authorized.expectedAtomic} covers the seller's maximum ${authorized.maxAtomic}`,
  );
  assert.equal(receipt.success, true);
  assert.ok(receipt.chargedAtomic > 0n && receipt.chargedAtomic <= receipt.maxAtomic);
  const [row] = await h.ledger.payments.recent({ limit: 1 });
  assert.equal(row?.route, route);
  assert.equal(row?.status, "settled");
  assert.equal(row?.chargeAtomic, receipt.chargedAtomic, "the ledger row holds the buyer's receipt");
  assert.equal(row?.transaction, receipt.transaction);
  const spent = await (await payingFetch.spendStore()).reservation(receipt.paymentId);
  assert.equal(spent?.status, "settled");
  assert.equal(spent?.chargedAtomic, receipt.chargedAtomic, "the spend store holds the same charge");
  assert.equal(log.of("overcharge").length, 0, "an honest charge is not disputed");
  assert.deepEqual(await (await payingFetch.spendStore()).disputes(), []);
  return { receipt, units: row?.usage as Record<string, number> | undefined };
}

describe("the official SDKs through Tollgate's createPayingFetch", () => {
  test("@anthropic-ai/sdk creates a message (JSON): charge = ledger row = spend row, checked against the body's usage", async () => {
    const { payingFetch, log } = payingFetchFor(0);
    h.backend.set({ responseTokens: 9, tokensPerSecond: 0 });
    const client = new Anthropic({ apiKey: "x", baseURL: h.gateway.url, fetch: payingFetch, maxRetries: 0 });
    const message = await client.messages.create({
      model: "mock-claude",
      max_tokens: 40,
      system: [{ type: "text", text: "You answer briefly." }],
      messages: [
        { role: "user", content: [{ type: "text", text: "Tell me about toll roads" }] },
        { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "look", input: { q: "toll" } }] },
        {
          role: "user",
          content: [{ type: "tool_result", tool_use_id: "t1", content: [{ type: "text", text: "roads" }] }],
        },
      ],
      tools: [{ name: "look", description: "Looks things up", input_schema: { type: "object" } }],
    });
    assert.equal(message.content[0]?.type === "text" ? message.content[0].text : "", mockCompletionText(9));
    const { receipt } = await expectBooksAgree(payingFetch, log, "/v1/messages");
    assert.equal(receipt.source, "header");
    assert.equal(
      receipt.usage?.completionTokens,
      message.usage.output_tokens,
      "usage read in Anthropic's words",
    );
    assert.equal(receipt.usage?.promptTokens, message.usage.input_tokens);
  });

  test("@anthropic-ai/sdk streams a message; the receipt event is booked and checked", async () => {
    const { payingFetch, log } = payingFetchFor(1);
    h.backend.set({ responseTokens: 14, tokensPerSecond: 500 });
    const client = new Anthropic({ apiKey: "x", baseURL: h.gateway.url, fetch: payingFetch, maxRetries: 0 });
    const stream = await client.messages.create({
      model: "mock-claude",
      max_tokens: 30,
      messages: [{ role: "user", content: "Tell me about toll roads" }],
      stream: true,
    });
    let text = "";
    for await (const event of stream)
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
    assert.equal(text, mockCompletionText(14));
    const { receipt, units } = await expectBooksAgree(payingFetch, log, "/v1/messages");
    assert.equal(receipt.source, "stream");
    assert.equal(units?.output_tokens, 14);
  });

  test("openai streams a response (/v1/responses); the receipt event is booked and checked", async () => {
    const { payingFetch, log } = payingFetchFor(2);
    h.backend.set({ responseTokens: 11, tokensPerSecond: 500 });
    const client = new OpenAI({
      apiKey: "x",
      baseURL: `${h.gateway.url}/v1`,
      fetch: payingFetch,
      maxRetries: 0,
    });
    const stream = await client.responses.create({
      model: "mock-responses",
      instructions: "Answer briefly.",
      input: [{ role: "user", content: [{ type: "input_text", text: "Tell me about toll roads" }] }],
      max_output_tokens: 50,
      stream: true,
    });
    let text = "";
    for await (const event of stream) if (event.type === "response.output_text.delta") text += event.delta;
    assert.equal(text, mockCompletionText(11));
    const { receipt, units } = await expectBooksAgree(payingFetch, log, "/v1/responses");
    assert.equal(receipt.source, "stream");
    assert.equal(units?.output_tokens, 11);
  });

  test("openai generates images: the maximum is n × the size's price, the charge the images returned × it", async () => {
    const { payingFetch, log } = payingFetchFor(0, { maxImagePrice: IMAGE_ATOMIC.toString() });
    const client = new OpenAI({
      apiKey: "x",
      baseURL: `${h.gateway.url}/v1`,
      fetch: payingFetch,
      maxRetries: 0,
    });
    const images = await client.images.generate({
      model: "mock-image",
      prompt: "a toll booth at dawn",
      n: 2,
      size: "256x256",
    });
    assert.equal(images.data?.length, 2);
    const { receipt, units } = await expectBooksAgree(payingFetch, log, "/v1/images/generations");
    assert.equal(receipt.maxAtomic, 2n * IMAGE_ATOMIC);
    assert.equal(receipt.chargedAtomic, 2n * IMAGE_ATOMIC);
    assert.equal(receipt.usage?.units?.images, 2, "the images counted from the answer");
    assert.equal(units?.images, 2);
  });

  test("a compute-priced stream: charge ≤ maximum, and the reported compute_ms × the price is the charge", async () => {
    const { payingFetch, log } = payingFetchFor(1, { maxPricePerSecond: PER_SECOND_ATOMIC.toString() });
    h.backend.set({ responseTokens: 12, tokensPerSecond: 120 });
    const client = new OpenAI({
      apiKey: "x",
      baseURL: `${h.gateway.url}/v1`,
      fetch: payingFetch,
      maxRetries: 0,
    });
    const stream = await client.chat.completions.create({
      model: "mock-gpu",
      messages: [{ role: "user", content: "count" }],
      max_tokens: 100,
      stream: true,
    });
    for await (const _chunk of stream) {
      // Read to the end: the receipt is the last event.
    }
    const { receipt, units } = await expectBooksAgree(payingFetch, log, "/v1/chat/completions");
    const computeMs = receipt.usage?.units?.compute_ms;
    assert.ok(computeMs !== undefined && computeMs > 0);
    assert.equal(units?.compute_ms, computeMs);
    assert.equal(receipt.chargedAtomic, (BigInt(computeMs) * PER_SECOND_ATOMIC + 999n) / 1000n);
  });
});

describe("the buyer's per-unit caps against a real gateway", () => {
  test("an image priced above maxImagePrice is refused before anything is signed", async () => {
    const { payingFetch, log } = payingFetchFor(2, { maxImagePrice: "$0.02" });
    const before = await h.devnet.usdcBalance(h.devnet.accounts.buyers[2]!.address);
    const rejection = await payingFetch(`${h.gateway.url}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mock-image", prompt: "a toll booth", size: "1024x1024" }),
    }).catch((error: unknown) => error);
    assert.ok(isTollgateError(rejection, "TOLLGATE_POLICY_REFUSED"), String(rejection));
    assert.equal(rejection.details?.rule, "maxImagePrice");
    assert.equal(log.of("authorized").length, 0, "nothing signed");
    assert.equal(await h.devnet.usdcBalance(h.devnet.accounts.buyers[2]!.address), before);
  });
});

describe("the buyer's model listing", () => {
  test("lists each model's APIs; image and embedding models are never chat candidates", async () => {
    const { payingFetch } = payingFetchFor(0);
    const models = await payingFetch.discover(h.gateway.url);
    const byId = new Map(models.map((model) => [model.id, model]));
    assert.deepEqual(
      { kind: byId.get("mock-claude")?.kind, apis: byId.get("mock-claude")?.apis },
      { kind: "messages", apis: ["messages"] },
      "a model behind an Anthropic backend serves /v1/messages, not chat",
    );
    assert.deepEqual(byId.get("mock-responses")?.apis, ["chat", "responses"]);
    assert.equal(byId.get("mock-image")?.kind, "image");
    assert.equal(byId.get("mock-embed")?.kind, "embedding");
    const route = await chooseProvider({
      gateways: [h.gateway.url],
      models: ["mock-image", "mock-embed", "mock-claude", "mock-responses"],
      body: { messages: [{ role: "user", content: "hi" }], max_tokens: 10 },
    });
    assert.deepEqual(
      route.candidates.map((candidate) => candidate.model.id),
      ["mock-responses"],
      "only the model that answers /chat/completions",
    );
  });

  test("the router drops a model priced per second above maxPricePerSecond, and says so", async () => {
    const body = { messages: [{ role: "user", content: "hi" }], max_tokens: 10 };
    const models = ["mock-gpu", "mock-responses"];
    const open = await chooseProvider({ gateways: [h.gateway.url], models, body });
    assert.equal(
      open.candidates.find((candidate) => candidate.model.id === "mock-gpu")?.refusal,
      undefined,
      "without the cap the per-second model is a candidate",
    );
    const capped = await chooseProvider({
      gateways: [h.gateway.url],
      models,
      body,
      policy: { maxPricePerSecond: (PER_SECOND_ATOMIC - 1n).toString() },
    });
    const gpu = capped.candidates.find((candidate) => candidate.model.id === "mock-gpu");
    assert.equal(gpu?.refusal?.rule, "maxPricePerSecond");
    assert.equal(capped.chosen?.model.id, "mock-responses");
  });
});

describe("tollgate chat --api", () => {
  const env = () => ({
    TOLLGATE_PRIVATE_KEY: h.devnet.accounts.buyers[2]!.privateKey,
    TOLLGATE_DATA_DIR: "memory://",
  });

  for (const [api, model, route, tokens] of [
    ["messages", "mock-claude", "/v1/messages", 7],
    ["responses", "mock-responses", "/v1/responses", 5],
  ] as const)
    test(`--api ${api} streams the answer from ${route} and ends with the receipt line`, async (t) => {
      h.backend.set({ responseTokens: tokens, tokensPerSecond: 300 });
      const run = await runCli(
        [
          "chat",
          "--gateway",
          h.gateway.url,
          "--model",
          model,
          "--api",
          api,
          "--max-tokens",
          "20",
          "say hello",
        ],
        env(),
      );
      t.diagnostic(run.stderr.trim());
      assert.equal(run.code, 0, run.stderr);
      assert.equal(run.stdout.trim(), mockCompletionText(tokens));
      const [row] = await h.ledger.payments.recent({ limit: 1 });
      assert.equal(row?.route, route);
      assert.match(
        run.stderr,
        new RegExp(`paid \\$[0-9.]+ of \\$[0-9.]+ authorized .* · tx ${row?.transaction}`),
      );
    });

  test("--api messages without --max-tokens asks for the model's listed limit; an unknown API is refused by name", async () => {
    h.backend.set({ responseTokens: 3, tokensPerSecond: 0 });
    const run = await runCli(
      ["chat", "--gateway", h.gateway.url, "--model", "mock-claude", "--api", "messages", "hi"],
      env(),
    );
    assert.equal(run.code, 0, run.stderr);
    const served = h.backend.requests.filter((request) => request.path.endsWith("/messages")).at(-1);
    assert.equal((served?.body as { max_tokens?: unknown })?.max_tokens, 256, "the model's maxOutputTokens");
    const wrong = await runCli(
      ["chat", "--gateway", h.gateway.url, "--model", "m", "--api", "claude", "hi"],
      env(),
    );
    assert.equal(wrong.code, 2, wrong.stderr);
    assert.match(wrong.stderr, /--api must be chat \(\/v1\/chat\/completions\), messages/);
    const routed = await runCli(
      [
        "chat",
        "--gateway",
        h.gateway.url,
        "--gateway",
        h.gateway.url,
        "--model",
        "m",
        "--api",
        "responses",
        "hi",
      ],
      env(),
    );
    assert.equal(routed.code, 2, routed.stderr);
    assert.match(routed.stderr, /--api responses takes one --gateway and one --model/);
  });
});

import assert from "node:assert/strict";
import { request as httpRequest } from "node:http";
import { after, before, describe, test } from "node:test";
import { decodePaymentResponseHeader } from "@x402/core/http";
import type { PaymentRequired } from "@x402/core/types";
import OpenAI from "openai";
import { createPayingFetch, openSpendStore } from "../src/buyer/index.js";
import type { SqlClient, SqlExecutor } from "../src/ledger/index.js";
import { countTextTokens } from "../src/pricing/index.js";
import {
  decodePaymentRequiredHeader,
  encodePaymentSignatureHeader,
  parseReceiptEvent,
} from "../src/protocol/index.js";
import { eventLog } from "./support/buyerFixtures.js";
import {
  expectedCharge,
  type GatewayHarness,
  moveUsdcAway,
  officialBuyer,
  officialPayingFetch,
  startGatewayHarness,
  testPrices,
} from "./support/gatewayHarness.js";
import { signHostilePayment } from "./support/hostileBuyer.js";
import { holdStreams, mockCompletionText, mockModelId, mockTokenText } from "./support/mockBackend.js";
import { postJson, quoteOf } from "./support/paidRequests.js";
import { startSwitchableRpc } from "./support/switchableRpc.js";

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness();
});
after(async () => {
  await h?.close();
});

const chatBody = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: mockModelId,
    messages: [{ role: "user", content: "say a few words please" }],
    max_tokens: 64,
    ...extra,
  });

const post = (body: string, headers: Record<string, string> = {}) =>
  fetch(`${h.gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });

async function paymentRequiredFor(body: string): Promise<PaymentRequired> {
  const response = await post(body);
  assert.equal(response.status, 402);
  const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
  assert.ok(decoded.ok, "PAYMENT-REQUIRED decodes");
  return decoded.paymentRequired;
}

describe("gateway pricing and the 402", () => {
  test("answers 402 with an upto offer for this request's maximum and its prices", async () => {
    const required = await paymentRequiredFor(chatBody());
    const upto = required.accepts.find((offer) => offer.scheme === "upto");
    assert.ok(upto);
    const pricing = upto.extra?.pricing as {
      promptTokenBound: number;
      maxOutputTokens: number;
      outputPerMTokAtomic: string;
    };
    assert.equal(pricing.maxOutputTokens, 64);
    assert.equal(pricing.outputPerMTokAtomic, testPrices.outputPerMTokAtomic.toString());
    assert.equal(BigInt(upto.amount), expectedCharge(pricing.promptTokenBound, 64));
    assert.equal(required.resource.description, `Inference on ${mockModelId}, up to 64 output tokens`);
    assert.equal(upto.payTo.toLowerCase(), h.devnet.accounts.payTo.address.toLowerCase());
  });

  test("caps the output limit at the model's and sends that limit to the backend", async () => {
    const required = await paymentRequiredFor(chatBody({ max_tokens: 100_000 }));
    const pricing = required.accepts[0]?.extra?.pricing as { maxOutputTokens: number };
    assert.equal(pricing.maxOutputTokens, 256);
    h.backend.clearRequests();
    const pay = officialPayingFetch(h.devnet.accounts.buyers[0]!.privateKey, h.devnet.network);
    const response = await pay(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody({ max_tokens: 100_000 }),
    });
    assert.equal(response.status, 200);
    const sent = h.backend.inferenceRequests[0]?.body as { max_tokens?: number };
    assert.equal(sent.max_tokens, 256);
  });

  test("rejects an unknown model with 404 before any payment", async () => {
    const response = await post(JSON.stringify({ model: "nope", messages: [] }));
    assert.equal(response.status, 404);
    // The answer names the models served on the route, so that a typo is seen at once.
    const { error } = (await response.json()) as { error: { message: string; code: string } };
    assert.equal(error.code, "TOLLGATE_MODEL_UNKNOWN");
    assert.equal(
      error.message,
      `model nope is not served here; the models served on this route: ${mockModelId} (GET /v1/models lists them with their prices)`,
    );
  });
});

describe("paid requests", () => {
  test("the official @x402/fetch pays; the charge is the actual usage, settled on chain and in the ledger", async () => {
    const buyer = h.devnet.accounts.buyers[0]!;
    const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
    h.backend.set({ responseTokens: 12, reportUsage: true });
    const before = await h.devnet.usdcBalance(buyer.address);
    const response = await pay(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody(),
    });
    assert.equal(response.status, 200);
    const completion = (await response.json()) as {
      choices: Array<{ message: { content: string } }>;
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    assert.equal(completion.choices[0]?.message.content, mockCompletionText(12));
    const receipt = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    assert.equal(receipt.success, true);
    const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
    assert.equal(receipt.amount, charge.toString());
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    assert.equal(row?.status, "settled");
    assert.equal(row?.chargeAtomic, charge);
    assert.ok(row!.chargeAtomic! < row!.maxAtomic, "charged below the maximum");
    assert.equal(row?.transaction, receipt.transaction);
    assert.equal(
      await h.devnet.usdcBalance(buyer.address),
      before - charge,
      "on chain, exactly the charge moved",
    );
  });

  test("the official openai client streams through a paying fetch and tolerates the receipt event", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    h.backend.set({ responseTokens: 20, tokensPerSecond: 400 });
    const before = await h.devnet.usdcBalance(buyer.address);
    const client = new OpenAI({
      apiKey: "unused",
      baseURL: `${h.gateway.url}/v1`,
      fetch: officialPayingFetch(buyer.privateKey, h.devnet.network),
    });
    const stream = await client.chat.completions.create({
      model: mockModelId,
      messages: [{ role: "user", content: "stream please" }],
      max_tokens: 64,
      stream: true,
    });
    let text = "";
    let receiptChunk: unknown;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      if ("x402_receipt" in chunk) receiptChunk = chunk;
    }
    assert.equal(text, mockCompletionText(20));
    assert.ok(receiptChunk, "the receipt arrived as the last chunk");
    const parsed = parseReceiptEvent(receiptChunk as object);
    assert.ok(parsed.ok);
    const { receipt } = parsed;
    assert.equal(receipt.success, true);
    assert.equal(BigInt(receipt.amount), expectedCharge(receipt.usage.prompt_tokens, 20));
    assert.ok(BigInt(receipt.amount) < BigInt(receipt.maxAmount));
    assert.equal(await h.devnet.usdcBalance(buyer.address), before - BigInt(receipt.amount));
  });

  test("meters with the tokenizer when the backend reports no usage", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    h.backend.set({ responseTokens: 10, reportUsage: false, tokensPerSecond: 0 });
    try {
      const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
      const response = await pay(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody({ stream: true }),
      });
      const text = await response.text();
      const receiptLine = text.split("\n").find((line) => line.includes("x402_receipt"));
      assert.ok(receiptLine);
      const parsed = parseReceiptEvent(receiptLine);
      assert.ok(parsed.ok);
      assert.ok(parsed.receipt.usage.completion_tokens > 0);
      assert.ok(text.trimEnd().endsWith("data: [DONE]"));
    } finally {
      h.backend.set({ reportUsage: true });
    }
  });
});

describe("a stream the backend cuts before its usage event", () => {
  test("is charged OpenAI's documented count of the prompt, 8 tokens for \"hello\" (not 20), and the Tollgate buyer's own check finds it honest", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    h.backend.set({ responseTokens: 10, failAfterChunks: 3, tokensPerSecond: 0 });
    const store = await openSpendStore({ dataDir: "memory://" });
    const log = eventLog();
    const payingFetch = createPayingFetch({ privateKey: buyer.privateKey, store, onEvent: log.onEvent });
    try {
      const before = await h.devnet.usdcBalance(buyer.address);
      const response = await payingFetch(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: mockModelId,
          messages: [{ role: "user", content: "hello" }],
          max_tokens: 64,
          stream: true,
        }),
      });
      const text = await response.text();
      await payingFetch.idle();
      const receiptLine = text.split("\n").find((line) => line.includes("x402_receipt"));
      assert.ok(receiptLine, text);
      const parsed = parseReceiptEvent(receiptLine);
      assert.ok(parsed.ok);
      // 3 for the message, "user", "hello", 3 priming the reply: the backend reported nothing.
      assert.deepEqual(
        [
          parsed.receipt.usage.prompt_tokens,
          parsed.receipt.usage.completion_tokens,
          parsed.receipt.promptCountedBy,
        ],
        [8, 3, "gateway"],
      );
      const charge = expectedCharge(8, 3);
      assert.equal(BigInt(parsed.receipt.amount), charge);
      assert.equal(await h.devnet.usdcBalance(buyer.address), before - charge);
      const [row] = await h.ledger.payments.recent({ limit: 1 });
      assert.equal(row?.promptTokens, 8);
      assert.equal(log.of("receipt")[0]?.chargedAtomic, charge);
      assert.equal(log.of("overcharge").length, 0, "an honest count draws no dispute");
    } finally {
      h.backend.set({ failAfterChunks: undefined });
      await payingFetch.close();
      await store.close();
    }
  });
});

describe("ledger cost of a paid request", () => {
  test("seven SQL statements: admission, claim into serving within the payer's funds, usage, settling, settlement log begin and end, settled", async () => {
    const statements: { sql: string; params: readonly unknown[] }[] = [];
    const counting = await startGatewayHarness({
      devnet: h.devnet,
      wrapSql: (sql): SqlClient => {
        const counted = <T extends SqlExecutor>(executor: T): T => ({
          ...executor,
          query(text: string, params?: readonly unknown[]) {
            statements.push({ sql: text.trim().split(/\s+/).slice(0, 3).join(" "), params: params ?? [] });
            return executor.query(text, params);
          },
        });
        return { ...counted(sql), transaction: (fn) => sql.transaction((tx) => fn(counted(tx))) };
      },
    });
    try {
      const buyer = h.devnet.accounts.buyers[2]!;
      const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
      statements.length = 0;
      const response = await pay(`${counting.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody(),
      });
      assert.equal(response.status, 200);
      await response.text();
      const made = [...statements];
      const [row] = await counting.ledger.payments.recent({ limit: 1 });
      assert.equal(row?.status, "settled");
      // Only this request's statements: they carry its payer or its row id (a recovery pass may also run).
      const payer = buyer.address.toLowerCase();
      const ours = made.filter(({ params }) => params.includes(payer) || params[0] === row?.id);
      assert.deepEqual(
        ours.map(({ sql }) => sql),
        [
          "SELECT (EXISTS (SELECT",
          "INSERT INTO payments",
          "UPDATE payments SET",
          "UPDATE payments SET",
          "INSERT INTO settlements",
          "UPDATE settlements SET",
          "UPDATE payments SET",
        ],
      );
    } finally {
      await counting.close();
    }
  });
});

describe("refusals", () => {
  test("a body over the limit gets 413 whether its length is declared or chunked; one at the limit is quoted", async () => {
    const limit = 4 * 1024 * 1024;
    const padded = (size: number) => {
      const body = chatBody();
      return body + " ".repeat(size - Buffer.byteLength(body));
    };
    // Declared length (fetch sends content-length for a string body).
    assert.equal((await post(padded(limit + 1))).status, 413);
    assert.equal((await post(padded(limit))).status, 402);
    // Chunked: no content-length; the body is counted as it arrives.
    const chunked = (body: string) =>
      new Promise<number>((resolve, reject) => {
        const { hostname, port } = new URL(h.gateway.url);
        const request = httpRequest(
          {
            host: hostname,
            port,
            method: "POST",
            path: "/v1/chat/completions",
            headers: { "content-type": "application/json" },
          },
          (response) => {
            response.resume();
            response.on("end", () => resolve(response.statusCode ?? 0));
          },
        );
        request.on("error", reject);
        for (let at = 0; at < body.length; at += 64 * 1024) request.write(body.slice(at, at + 64 * 1024));
        request.end();
      });
    h.backend.clearRequests();
    assert.equal(await chunked(padded(limit)), 402);
    assert.equal(await chunked(padded(limit + 1)), 413);
    assert.equal(h.backend.inferenceRequests.length, 0);
  });

  test("a malformed payment header gets 400 and no backend call", async () => {
    h.backend.clearRequests();
    const response = await post(chatBody(), { "payment-signature": "%%%not-base64%%%" });
    assert.equal(response.status, 400);
    assert.equal(h.backend.inferenceRequests.length, 0);
  });

  test("a replayed authorization gets 409, sequentially and 20 at once: one inference", async () => {
    const buyer = h.devnet.accounts.buyers[0]!;
    const required = await paymentRequiredFor(chatBody());
    const payload = await officialBuyer(buyer.privateKey, h.devnet.network).createPaymentPayload(required);
    const header = encodePaymentSignatureHeader(payload);
    h.backend.clearRequests();
    const responses = await Promise.all(
      Array.from({ length: 20 }, () => post(chatBody(), { "payment-signature": header })),
    );
    const statuses = responses.map((r) => r.status).sort();
    assert.equal(statuses.filter((s) => s === 200).length, 1, `statuses: ${statuses}`);
    assert.equal(statuses.filter((s) => s === 409).length, 19, `statuses: ${statuses}`);
    await Promise.all(responses.map((r) => r.arrayBuffer()));
    const again = await post(chatBody(), { "payment-signature": header });
    assert.equal(again.status, 409);
    assert.equal(h.backend.inferenceRequests.length, 1);
  });

  /** Pays for one chat while the backend answers `failStatus` before any output; the buyer's USDC is checked unchanged. */
  const payWhileBackendFails = async (failStatus: number, check: (response: Response) => Promise<void>) => {
    const buyer = h.devnet.accounts.buyers[1]!;
    h.backend.set({ failBeforeOutput: true, failStatus });
    try {
      const before = await h.devnet.usdcBalance(buyer.address);
      const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
      const response = await pay(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody(),
      });
      await check(response);
      const [row] = await h.ledger.payments.recent({ limit: 1 });
      assert.equal(row?.status, "failed");
      assert.equal(await h.devnet.usdcBalance(buyer.address), before);
    } finally {
      h.backend.set({ failBeforeOutput: false, failStatus: 500 });
    }
  };

  test("backend fails before any output: no charge, no transaction", async () => {
    await payWhileBackendFails(500, async (response) => {
      assert.equal(response.status, 500);
      await response.arrayBuffer();
    });
  });

  test("a backend that redirects is not followed: 502 naming the fix, no charge, no transaction", async () => {
    await payWhileBackendFails(308, async (response) => {
      assert.equal(response.status, 502);
      const body = (await response.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "TOLLGATE_BACKEND_FAILED");
      assert.match(body.error.message, /redirect \(308\).*backend\.baseUrl/);
    });
  });

  test("a buyer that disconnects mid-stream is charged for what was generated", async (t) => {
    const startedAt = performance.now();
    const buyer = await h.devnet.createBuyer(10_000_000n);
    h.backend.set({ responseTokens: 200, tokensPerSecond: 100, reportUsage: true });
    h.backend.clearRequests();
    const before = await h.devnet.usdcBalance(buyer.address);
    const controller = new AbortController();
    const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
    const response = await pay(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody({ stream: true, max_tokens: 256 }),
      signal: controller.signal,
    });
    const reader = response.body!.getReader();
    let received = "";
    while (!received.includes(JSON.stringify(mockTokenText(5)))) {
      const next = await reader.read();
      assert.equal(next.done, false, "the stream ended before the buyer left");
      received += new TextDecoder().decode(next.value);
    }
    controller.abort();
    await reader.cancel().catch(() => undefined);
    t.diagnostic(`buyer left after ${Math.round(performance.now() - startedAt)} ms`);
    await h.backend.whenIdle();
    t.diagnostic(`backend idle after ${Math.round(performance.now() - startedAt)} ms`);
    const backendRequest = h.backend.inferenceRequests[0]!;
    assert.equal(backendRequest.clientAborted, true, "the backend saw the disconnect");
    assert.ok(backendRequest.tokensSent < 200, "generation stopped early");
    let row = (await h.ledger.payments.recent({ limit: 1 }))[0];
    for (let i = 0; i < 600 && row?.status !== "settled"; i++) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      row = (await h.ledger.payments.recent({ limit: 1 }))[0];
    }
    assert.equal(row?.status, "settled");
    // Charged for the text the gateway received: at least the 6 tokens the buyer saw, at most all the backend sent.
    const tokens = row!.completionTokens!;
    assert.ok(tokens >= countTextTokens(mockCompletionText(6)), `${tokens} tokens charged`);
    assert.ok(
      tokens <= countTextTokens(mockCompletionText(backendRequest.tokensSent)),
      `${tokens} tokens charged`,
    );
    assert.equal(row?.chargeAtomic, expectedCharge(row!.promptTokens!, row!.completionTokens!));
    assert.equal(await h.devnet.usdcBalance(buyer.address), before - row!.chargeAtomic!);
  });

  test("a buyer that leaves before its JSON answer, once the backend has its prompt, pays for the prompt", async () => {
    const buyer = await h.devnet.createBuyer(10_000_000n);
    // A JSON answer comes whole after its last token: 16 tokens at 10 a second, 1.6 s.
    h.backend.set({ responseTokens: 16, tokensPerSecond: 10, reportUsage: true });
    h.backend.clearRequests();
    const before = await h.devnet.usdcBalance(buyer.address);
    const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
    const controller = new AbortController();
    const left = pay(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody({ max_tokens: 64 }),
      signal: controller.signal,
    });
    try {
      while (h.backend.inferenceRequests.length === 0)
        await new Promise((resolve) => setTimeout(resolve, 20));
      await new Promise((resolve) => setTimeout(resolve, 300));
      controller.abort();
      await assert.rejects(left);
      await h.backend.whenIdle();
      assert.equal(h.backend.inferenceRequests[0]?.clientAborted, true, "the backend saw the buyer leave");
      let row = (await h.ledger.payments.recent({ limit: 1 }))[0];
      for (let i = 0; i < 600 && row?.status !== "settled"; i++) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        row = (await h.ledger.payments.recent({ limit: 1 }))[0];
      }
      assert.equal(row?.status, "settled", "the prompt is charged, not the request failed");
      assert.equal(row?.completionTokens, 0, "no output reached the buyer");
      assert.ok((row?.promptTokens ?? 0) > 0);
      assert.equal(row?.chargeAtomic, expectedCharge(row!.promptTokens!, 0));
      assert.equal(await h.devnet.usdcBalance(buyer.address), before - row!.chargeAtomic!);
    } finally {
      h.backend.set({ responseTokens: 16, tokensPerSecond: 0 });
    }
  });

  test("settlement that fails after delivery becomes a debt, and the payer is refused", async () => {
    const buyer = await h.devnet.createBuyer(1_000_000n);
    h.backend.set({ responseTokens: 40, tokensPerSecond: 50 });
    const release = holdStreams(h.backend, 4);
    const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
    let response: Response;
    try {
      response = await pay(`${h.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody({ stream: true }),
      });
      assert.equal(response.status, 200);
      // The payer walks away mid-stream: moves every unit out before settlement.
      await moveUsdcAway(h.devnet, buyer.privateKey, 1_000_000n);
    } finally {
      release();
    }
    const text = await response.text();
    const parsed = parseReceiptEvent(text.split("\n").find((line) => line.includes("x402_receipt"))!);
    assert.ok(parsed.ok);
    assert.equal(parsed.receipt.success, false);
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    assert.equal(row?.status, "debt");
    assert.equal(await h.ledger.payments.hasOpenDebt(h.devnet.network, buyer.address.toLowerCase()), true);
    h.backend.clearRequests();
    const next = await pay(`${h.gateway.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: chatBody(),
    });
    assert.equal(next.status, 402);
    assert.match((await next.json()).error, /debt/);
    assert.equal(h.backend.inferenceRequests.length, 0);
  });
});

describe("outages", () => {
  test("timeouts.verifySeconds bounds a verify the chain never answers: 503 in time, no backend call", async () => {
    // A chain node that answers the start (the asset's decimals), then accepts connections and never answers.
    const rpc = await startSwitchableRpc(h.devnet.rpcUrl);
    const silent = await startGatewayHarness({
      devnet: h.devnet,
      rpcUrl: rpc.url,
      configure: (input) => ({ ...input, timeouts: { verifySeconds: 0.5 } }),
    });
    await rpc.cut("silent");
    try {
      const first = await fetch(`${silent.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatBody(),
      });
      const decoded = decodePaymentRequiredHeader(first.headers.get("payment-required"));
      assert.ok(decoded.ok);
      const payload = await officialBuyer(
        h.devnet.accounts.buyers[0]!.privateKey,
        h.devnet.network,
      ).createPaymentPayload(decoded.paymentRequired);
      const startedAt = performance.now();
      const response = await fetch(`${silent.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "payment-signature": encodePaymentSignatureHeader(payload),
        },
        body: chatBody(),
      });
      const elapsedMs = performance.now() - startedAt;
      assert.equal(response.status, 503);
      assert.ok(response.headers.get("retry-after"));
      // The RPC's own timeout is 10 s: an answer well before it comes from the configured 0.5 s bound.
      assert.ok(elapsedMs < 8_000, `answered after ${Math.round(elapsedMs)} ms`);
      assert.equal(silent.backend.inferenceRequests.length, 0);
    } finally {
      await silent.close();
      await rpc.close();
    }
  });

  test("a verify slow enough to leave the authorization less than the request's time bound is refused, not served", async () => {
    const rpc = await startSwitchableRpc(h.devnet.rpcUrl);
    // A request may run 5 s, then settle within 5 s: an authorization must outlive 10 s from admission.
    const slow = await startGatewayHarness({
      devnet: h.devnet,
      rpcUrl: rpc.url,
      configure: (input) => ({
        ...input,
        settlementMarginSeconds: 5,
        maxTimeoutSeconds: 10,
        timeouts: { verifySeconds: 10 },
        models: input.models.map((model) => ({
          ...model,
          backend: { ...model.backend, maxDurationSeconds: 5 },
        })),
      }),
    });
    try {
      const body = { model: mockModelId, messages: [{ role: "user", content: "hello" }], max_tokens: 8 };
      const payer = h.devnet.accounts.buyers[2]!;
      // 14 s left when it arrives; the chain's answers to its verify take 6 s, which leaves 8.
      const quote = await quoteOf(slow, "/v1/chat/completions", body);
      const signature = await signHostilePayment({
        paymentRequired: quote.header,
        privateKey: payer.privateKey,
        deadlineSeconds: 14,
      });
      rpc.hold();
      const answered = postJson(slow, "/v1/chat/completions", body, { "payment-signature": signature });
      await new Promise((resolve) => setTimeout(resolve, 6_000));
      rpc.release();
      const response = await answered;
      const text = await response.text();
      assert.equal(response.status, 402, text.slice(0, 300));
      assert.match(
        JSON.parse(text).error,
        /^tollgate_authorization_expires_too_soon: .*by this gateway's clock it expires in [0-8] s/,
      );
      assert.equal(slow.backend.inferenceRequests.length, 0, "no inference ran");
    } finally {
      rpc.release();
      await slow.close();
      await rpc.close();
    }
  });

  test("an unreachable chain before inference: 503 with Retry-After and no backend call", async () => {
    const rpc = await startSwitchableRpc(h.devnet.rpcUrl);
    const down = await startGatewayHarness({ devnet: h.devnet, rpcUrl: rpc.url });
    await rpc.cut("refused");
    try {
      const required = await (async () => {
        const response = await fetch(`${down.gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: chatBody(),
        });
        const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
        assert.ok(decoded.ok);
        return decoded.paymentRequired;
      })();
      const payload = await officialBuyer(
        h.devnet.accounts.buyers[0]!.privateKey,
        h.devnet.network,
      ).createPaymentPayload(required);
      const response = await fetch(`${down.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "payment-signature": encodePaymentSignatureHeader(payload),
        },
        body: chatBody(),
      });
      assert.equal(response.status, 503);
      assert.ok(response.headers.get("retry-after"));
      assert.equal(down.backend.inferenceRequests.length, 0);
    } finally {
      await down.close();
      await rpc.close();
    }
  });
});

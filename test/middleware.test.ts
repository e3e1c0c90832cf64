import assert from "node:assert/strict";
import { type AddressInfo, connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { serve } from "@hono/node-server";
import {
  decodePaymentRequiredHeader,
  decodePaymentResponseHeader,
  encodePaymentSignatureHeader,
} from "@x402/core/http";
import express from "express";
import { Hono } from "hono";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { createFacilitator } from "../src/facilitator/index.js";
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
} from "../src/gateway/index.js";
import { type Ledger, openLedger } from "../src/ledger/index.js";
import { countTextTokens } from "../src/pricing/index.js";
import { parseReceiptEvent } from "../src/protocol/index.js";
import {
  billingTermsOf,
  expectedCharge,
  officialBuyer,
  officialPayingFetch,
  testPrices,
} from "./support/gatewayHarness.js";
import {
  type MockBackend,
  type MockBackendControls,
  mockCompletionText,
  mockModelId,
  startMockBackend,
} from "./support/mockBackend.js";
import { contentChunks, postWithoutReading, unchunk } from "./support/rawHttp.js";

let devnet: Devnet;
let backend: MockBackend;
let ledger: Ledger;
let billing: Billing;
let facilitator: ReturnType<typeof createFacilitator>;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  devnet = await startDevnet({ buyers: 2 });
  backend = await startMockBackend({ responseTokens: 9 });
  ledger = await openLedger();
  facilitator = createFacilitator({
    rpcUrl: devnet.rpcUrl,
    privateKey: devnet.accounts.facilitator.privateKey,
    network: devnet.network,
    pollingIntervalMs: 20,
  });
  const config = parseGatewayConfig({
    network: devnet.network,
    asset: devnet.contracts.usdc,
    payTo: devnet.accounts.payTo.address,
    models: [
      {
        id: mockModelId,
        backend: { baseUrl: backend.url },
        inputPrice: testPrices.inputPerMTokAtomic.toString(),
        outputPrice: testPrices.outputPerMTokAtomic.toString(),
        maxOutputTokens: 128,
      },
    ],
  });
  billing = createBilling({
    terms: billingTermsOf(devnet, facilitator),
    models: config.models,
    facilitator,
    ledger: ledger.payments,
    countTokens: countTextTokens,
  });
});

after(async () => {
  for (const close of closers) await close();
  await backend?.close();
  await ledger?.close();
  await devnet?.stop();
});

const body = (stream: boolean, maxTokens = 32) =>
  JSON.stringify({
    model: mockModelId,
    messages: [{ role: "user", content: "hello there" }],
    max_tokens: maxTokens,
    stream,
  });

/** The id of the ledger's newest payment row (0 when there is none). */
const lastPaymentId = async () => (await ledger.payments.recent({ limit: 1 }))[0]?.id ?? 0;

async function checkPaidRoute(url: string, buyerIndex: number) {
  const buyer = devnet.accounts.buyers[buyerIndex]!;
  const pay = officialPayingFetch(buyer.privateKey, devnet.network);
  const start = await devnet.usdcBalance(buyer.address);

  const unpaid = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body(false),
  });
  assert.equal(unpaid.status, 402);
  assert.ok(unpaid.headers.get("payment-required"));

  const plain = await pay(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body(false),
  });
  assert.equal(plain.status, 200);
  const completion = (await plain.json()) as {
    choices: Array<{ message: { content: string } }>;
    usage: { prompt_tokens: number; completion_tokens: number };
  };
  assert.equal(completion.choices[0]?.message.content, mockCompletionText(9));
  const receipt = decodePaymentResponseHeader(plain.headers.get("payment-response")!);
  const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
  assert.equal(receipt.amount, charge.toString());

  const streamed = await pay(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body(true),
  });
  assert.equal(streamed.status, 200);
  const text = await streamed.text();
  assert.ok(text.trimEnd().endsWith("data: [DONE]"));
  const parsed = parseReceiptEvent(text.split("\n").find((line) => line.includes("x402_receipt"))!);
  assert.ok(parsed.ok);
  assert.equal(parsed.receipt.success, true);
  const streamCharge = BigInt(parsed.receipt.amount);
  assert.equal(
    streamCharge,
    expectedCharge(parsed.receipt.usage.prompt_tokens, parsed.receipt.usage.completion_tokens),
  );
  assert.equal(await devnet.usdcBalance(buyer.address), start - charge - streamCharge);
}

describe("billing as a library", () => {
  test("Hono middleware bills a host's own route", async () => {
    const app = new Hono<{ Variables: { tollgate: TollgateContext } }>();
    app.post("/inference/chat/completions", tollgateHono({ billing, routeKind: "chat" }), async (c) => {
      const { quote } = c.get("tollgate");
      return proxyToBackend({ model: quote.model, body: await c.req.json() });
    });
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((resolve) => server.once("listening", resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    await checkPaidRoute(
      `http://127.0.0.1:${(server.address() as AddressInfo).port}/inference/chat/completions`,
      0,
    );
  });

  test("a Hono route built as the README shows (createBilling on an in-process facilitator, no chain readers given) serves one payer's requests sent at once only as far as its balance covers their maxima", async () => {
    const app = new Hono<{ Variables: { tollgate: TollgateContext } }>();
    app.post("/v1/chat/completions", tollgateHono({ billing }), async (c) => {
      const { quote, backendBody, signal } = c.get("tollgate");
      return proxyToBackend({ model: quote.model, body: backendBody, signal });
    });
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((resolve) => server.once("listening", resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`;
    const post = { method: "POST", headers: { "content-type": "application/json" }, body: body(false) };
    const offered = await fetch(url, post);
    assert.equal(offered.status, 402);
    const maxAtomic = BigInt(
      decodePaymentRequiredHeader(offered.headers.get("payment-required") ?? "").accepts[0]!.amount,
    );
    // Enough for one request's maximum, not for two.
    const buyer = await devnet.createBuyer(maxAtomic + maxAtomic / 2n);
    const pay = officialPayingFetch(buyer.privateKey, devnet.network);
    const firstRow = await lastPaymentId();
    const answers = await Promise.all([pay(url, post), pay(url, post)]);
    const texts = await Promise.all(answers.map((answer) => answer.text()));
    assert.deepEqual(answers.map((answer) => answer.status).sort(), [200, 402], texts.join("\n"));
    const refused = answers.find((answer) => answer.status === 402)!;
    assert.match(
      decodePaymentRequiredHeader(refused.headers.get("payment-required") ?? "").error ?? "",
      /^insufficient_funds: /,
    );
    await billing.whenSettled();
    const rows = (await ledger.payments.recent({ limit: 5 })).filter((row) => row.id > firstRow);
    const served = rows.filter((row) => row.status === "settled");
    assert.equal(served.length, 1, JSON.stringify(rows.map((row) => row.status)));
    assert.ok(!rows.some((row) => row.status === "debt"), "no debt");
    assert.equal(
      await devnet.usdcBalance(buyer.address),
      maxAtomic + maxAtomic / 2n - (served[0]?.chargeAtomic ?? 0n),
      "the payer paid the one request it was served",
    );
  });

  test("a Hono handler that forwards c.req.json() sends the limited body: the output limit paid for, and none of the fields the gateway does not forward", async () => {
    const app = new Hono<{ Variables: { tollgate: TollgateContext } }>();
    const seen: unknown[] = [];
    app.post("/v1/chat/completions", tollgateHono({ billing }), async (c) => {
      const forwarded = await c.req.json();
      seen.push(forwarded, JSON.parse(await c.req.text()));
      return proxyToBackend({ model: c.get("tollgate").quote.model, body: forwarded });
    });
    const server = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 });
    await new Promise((resolve) => server.once("listening", resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    const pay = officialPayingFetch(devnet.accounts.buyers[0]!.privateKey, devnet.network);
    const requestsBefore = backend.inferenceRequests.length;
    const answer = await pay(
      `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          model: mockModelId,
          messages: [{ role: "user", content: "hello there" }],
          max_tokens: 100_000,
          service_tier: "priority",
        }),
      },
    );
    assert.equal(answer.status, 200, await answer.clone().text());
    await answer.text();
    const sent = backend.inferenceRequests.slice(requestsBefore).at(-1)?.body as Record<string, unknown>;
    assert.equal(sent.max_tokens, 128, "the model's output limit, not the buyer's 100,000");
    assert.equal("service_tier" in sent, false, "a field the gateway does not forward stays behind");
    for (const read of seen) assert.deepEqual(read, sent, "json() and text() read the same limited body");
  });

  test("Express middleware bills a host's own route", async () => {
    const app = express();
    app.post("/v1/chat/completions", express.json(), tollgateExpress({ billing }), async (req, res) => {
      await forward(res, await fetchUpstream(backend.url, req.body));
    });
    const server = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    await checkPaidRoute(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`, 1);
  });
});

/** An Express app billed for a model whose answers may run 50,000 tokens and whose time bound is 2 s. */
/** The handler's call to its backend: the request body as it came, posted to `backendUrl`. */
const fetchUpstream = (backendUrl: string, requestBody: unknown) =>
  fetch(`${backendUrl}/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(requestBody),
  });

/** Answers with the backend's answer as it comes; `onDeclared` runs once its status and type are set. */
async function forward(res: express.Response, upstream: Response, onDeclared = () => {}) {
  res.status(upstream.status).type(upstream.headers.get("content-type") ?? "application/json");
  onDeclared();
  for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
  res.end();
}

/** The README's Express handler: `proxyToBackend` with the adapter's signal, quiet once the answer is closed. */
const signalledHandler =
  (onDeclared?: () => void): express.RequestHandler =>
  async (_req, res) => {
    const { quote, backendBody, signal, promptSent } = res.locals.tollgate as TollgateExpressContext;
    try {
      const upstream = await proxyToBackend({
        model: quote.model,
        body: backendBody,
        signal,
        onPromptSent: promptSent,
      });
      await forward(res, upstream, onDeclared);
    } catch (error) {
      if (!signal.aborted) throw error;
    }
  };

/** A billing of a model whose backend (its own) runs long: its time bound is 2 s. */
async function longBilling(
  controls: Partial<MockBackendControls> = {},
  { verifyDelayMs = 0, maxDurationSeconds = 2 }: { verifyDelayMs?: number; maxDurationSeconds?: number } = {},
) {
  const longBackend = await startMockBackend({ responseTokens: 50_000, ...controls });
  closers.push(() => longBackend.close());
  const config = parseGatewayConfig({
    network: devnet.network,
    asset: devnet.contracts.usdc,
    payTo: devnet.accounts.payTo.address,
    models: [
      {
        id: mockModelId,
        backend: { baseUrl: longBackend.url, maxDurationSeconds },
        inputPrice: testPrices.inputPerMTokAtomic.toString(),
        outputPrice: testPrices.outputPerMTokAtomic.toString(),
        maxOutputTokens: 60_000,
      },
    ],
  });
  // The same facilitator, its verify answered later (a slow chain), when asked.
  const slowerFacilitator = {
    verify: async (...parameters: Parameters<typeof facilitator.verify>) => {
      await new Promise((resolve) => setTimeout(resolve, verifyDelayMs));
      return facilitator.verify(...parameters);
    },
    settle: (...parameters: Parameters<typeof facilitator.settle>) => facilitator.settle(...parameters),
    getSupported: () => facilitator.getSupported(),
  };
  const billing = createBilling({
    terms: billingTermsOf(devnet, facilitator),
    models: config.models,
    facilitator: verifyDelayMs > 0 ? slowerFacilitator : facilitator,
    ledger: ledger.payments,
    countTokens: countTextTokens,
  });
  return { billing, backend: longBackend, maxDurationSeconds };
}

async function longExpressApp(
  handler: (backendUrl: string) => express.RequestHandler,
  controls: Partial<MockBackendControls> = {},
  options: { verifyDelayMs?: number; maxDurationSeconds?: number } = {},
) {
  const {
    billing: longBilled,
    backend: longBackend,
    maxDurationSeconds,
  } = await longBilling(controls, options);
  const app = express();
  app.post(
    "/v1/chat/completions",
    express.json(),
    tollgateExpress({ billing: longBilled }),
    handler(longBackend.url),
  );
  const server = app.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  closers.push(() => new Promise((resolve) => server.close(() => resolve())));
  return { port: (server.address() as AddressInfo).port, maxDurationSeconds, backend: longBackend };
}

/** The request after `afterId` is charged for its prompt alone, and its backend call was stopped. */
async function assertPromptAloneCharged(afterId: number, backend: MockBackend) {
  const giveUpAt = Date.now() + 10_000;
  const row = await finalRowAfter(afterId, giveUpAt);
  assert.equal(row?.status, "settled", `the prompt is charged (row: ${row?.status ?? "none"})`);
  assert.ok((row?.promptTokens ?? 0) > 0, "for its prompt tokens");
  assert.equal(row?.completionTokens, 0, "and no output");
  assert.ok((row?.chargeAtomic ?? 0n) > 0n && (row?.chargeAtomic ?? 0n) < (row?.maxAtomic ?? 0n));
  const served = backend.inferenceRequests.at(-1)!;
  while (!served.clientAborted && Date.now() < giveUpAt)
    await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(served.clientAborted, true, "the backend call was stopped");
}

/** A paid request's payment header for `body` at `port`, signed by the official client (buyer 1). */
async function paymentHeaderFor(port: number, body: string): Promise<string> {
  const quoted = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body,
  });
  return paymentHeaderFrom(quoted);
}

/** A paid request for `paidBody` to `port` (buyer 1's payment), and the id of the last payment row before it. */
async function paidRequest(port: number, paidBody: string) {
  const header = await paymentHeaderFor(port, paidBody);
  const lastIdBefore = await lastPaymentId();
  const answer = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "payment-signature": header },
    body: paidBody,
  });
  return { answer, lastIdBefore };
}

/** A paid request to `port` the buyer can give up on (`gone.abort()`); `answer` is its response, or the error. */
function abandonablePaidRequest(port: number, paidBody: string, header: string) {
  const gone = new AbortController();
  const answer = fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", "payment-signature": header },
    body: paidBody,
    signal: gone.signal,
  }).catch((error: unknown) => error);
  return { gone, answer };
}

/** The payment header the official client (buyer 1) signs for a 402. */
async function paymentHeaderFrom(quoted: Response): Promise<string> {
  assert.equal(quoted.status, 402);
  const payment = await officialBuyer(
    devnet.accounts.buyers[1]!.privateKey,
    devnet.network,
  ).createPaymentPayload(decodePaymentRequiredHeader(quoted.headers.get("payment-required")!));
  return encodePaymentSignatureHeader(payment);
}

/** The first ledger row after `afterId` once it is final, or what it is at `giveUpAt`. */
async function finalRowAfter(afterId: number, giveUpAt: number) {
  const rowOf = async () => (await ledger.payments.recent({ limit: 5 })).find((row) => row.id > afterId);
  let row = await rowOf();
  while (!(row && ["settled", "zero", "debt", "failed"].includes(row.status)) && Date.now() < giveUpAt) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    row = await rowOf();
  }
  return row;
}

describe("the Express adapter's signal", () => {
  test("a buyer that hangs up mid-stream aborts the handler's backend call: the backend stops generating", async () => {
    const { port, backend } = await longExpressApp(() => signalledHandler(), { tokensPerSecond: 500 });
    const longBody = body(true, 50_000);
    const header = await paymentHeaderFor(port, longBody);
    const lastIdBefore = await lastPaymentId();
    const gone = new AbortController();
    const answer = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "payment-signature": header },
      body: longBody,
      signal: gone.signal,
    });
    assert.equal(answer.status, 200);
    const reader = answer.body!.getReader();
    await reader.read();
    await new Promise((resolve) => setTimeout(resolve, 300));
    gone.abort();
    const served = backend.inferenceRequests.at(-1)!;
    const giveUpAt = Date.now() + 10_000;
    while (!served.clientAborted && Date.now() < giveUpAt)
      await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(served.clientAborted, true, "the backend saw its caller leave");
    assert.ok(served.tokensSent < 50_000, `the backend stopped (${served.tokensSent} of 50,000 tokens sent)`);
    const row = await finalRowAfter(lastIdBefore, Date.now() + 10_000);
    assert.equal(row?.status, "settled", "what was delivered is charged");
    assert.ok((row?.completionTokens ?? 0) > 0 && (row?.completionTokens ?? 0) <= served.tokensSent);
  });
});

describe("the Express adapter when the handler fails after output", () => {
  test("a stream the handler ends with an error status once tokens went out (its own backend budget) is charged what was delivered", async () => {
    const { port } = await longExpressApp(
      (backendUrl) => async (req, res) => {
        const budget = AbortSignal.timeout(700);
        const upstream = await fetch(`${backendUrl}/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(req.body),
          signal: budget,
        });
        try {
          await forward(res, upstream);
        } catch {
          res.status(504).end();
        }
      },
      { tokensPerSecond: 40 },
    );
    const paidBody = body(true, 200);
    const { answer, lastIdBefore } = await paidRequest(port, paidBody);
    const text = await answer.text();
    const delivered = contentChunks(text);
    assert.ok(delivered > 0 && delivered < 200, `some tokens went out (${delivered})`);
    const row = await finalRowAfter(lastIdBefore, Date.now() + 10_000);
    assert.equal(row?.status, "settled", `what was delivered is charged (row: ${row?.status ?? "none"})`);
    assert.equal(row?.completionTokens, delivered);
    assert.ok((row?.chargeAtomic ?? 0n) > 0n);
  });

  test("a stream whose first write went nowhere (half an event) that the handler turns into a JSON error answers that error whole, and nothing is charged", async () => {
    const { port } = await longExpressApp(() => (_req, res) => {
      res.status(200).type("text/event-stream");
      res.write('data: {"id":"half","choi');
      res.status(502).json({ error: { message: "the backend failed" } });
    });
    const paidBody = body(true, 16);
    const { answer, lastIdBefore } = await paidRequest(port, paidBody);
    assert.equal(answer.status, 502);
    assert.deepEqual(await answer.json(), { error: { message: "the backend failed" } });
    const row = await finalRowAfter(lastIdBefore, Date.now() + 10_000);
    assert.equal(row?.status, "failed", `nothing is charged (row: ${row?.status ?? "none"})`);
  });

  test("a JSON answer written under 200 before the handler threw is not sent with Express's error page, and nothing is charged", async () => {
    const { port } = await longExpressApp(
      (backendUrl) => async (req, res) => {
        const upstream = await fetchUpstream(backendUrl, req.body);
        res.status(200).type("application/json");
        res.write(await upstream.text());
        throw new Error("the handler failed after writing its answer");
      },
      { responseTokens: 24 },
    );
    const paidBody = body(false, 64);
    const { answer, lastIdBefore } = await paidRequest(port, paidBody);
    const text = await answer.text();
    assert.equal(answer.status, 500);
    assert.ok(!text.includes(mockCompletionText(3)), `the answer is not delivered: ${text.slice(0, 200)}`);
    const row = await finalRowAfter(lastIdBefore, Date.now() + 10_000);
    assert.equal(row?.status, "failed", `nothing is charged (row: ${row?.status ?? "none"})`);
  });
});

describe("the Express adapter when the buyer leaves early", () => {
  test("a buyer that hangs up after the backend took its prompt, before the stream's first token, pays for the prompt alone", async () => {
    let declared = false;
    const { port, backend } = await longExpressApp(
      // The backend answered (it has the prompt): the handler declares the stream, then waits for tokens.
      () =>
        signalledHandler(() => {
          declared = true;
        }),
      { responseTokens: 40, firstTokenDelayMs: 1_500 },
    );
    const paidBody = body(true, 64);
    const header = await paymentHeaderFor(port, paidBody);
    const lastIdBefore = await lastPaymentId();
    const { gone, answer } = abandonablePaidRequest(port, paidBody, header);
    const giveUpAt = Date.now() + 10_000;
    while (!declared && Date.now() < giveUpAt) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.ok(declared, "the handler declared its stream");
    gone.abort();
    assert.ok((await answer) instanceof Error, "the buyer got nothing: it left before the first write");
    await assertPromptAloneCharged(lastIdBefore, backend);
  });

  test("a buyer that hangs up while its payment is checked pays nothing, and the handler is not run", async () => {
    let handled = 0;
    const { port, backend } = await longExpressApp(
      (backendUrl) => async (req, res) => {
        handled++;
        await forward(res, await fetchUpstream(backendUrl, req.body));
      },
      { responseTokens: 40 },
      { verifyDelayMs: 500 },
    );
    const paidBody = body(true, 64);
    const header = await paymentHeaderFor(port, paidBody);
    const lastIdBefore = await lastPaymentId();
    const requestsBefore = backend.inferenceRequests.length;
    // The whole request, then the buyer's side of the connection closes while verify is under way.
    const socket = connect(port, "127.0.0.1");
    await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
    socket.write(
      `POST /v1/chat/completions HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\ncontent-type: application/json\r\n` +
        `content-length: ${Buffer.byteLength(paidBody)}\r\npayment-signature: ${header}\r\n\r\n${paidBody}`,
    );
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.end();
    socket.resume();
    const row = await finalRowAfter(lastIdBefore, Date.now() + 15_000);
    assert.equal(row?.status, "failed", `not charged (row: ${row?.status ?? "none"})`);
    assert.equal(handled, 0, "the handler was not run");
    assert.equal(backend.inferenceRequests.length, requestsBefore, "the backend was not called");
  });
});

describe("Hono and Next adapters at the request's time bound", () => {
  /** A hurried handler: the backend's JSON, awaited however long it takes, answered as it is. */
  const hurried = (backendUrl: string, forwarded: unknown) =>
    fetch(`${backendUrl}/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(forwarded),
    }).then(async (upstream) => Response.json(await upstream.json()));

  for (const adapter of ["hono", "next"] as const) {
    test(`${adapter}: a JSON answer complete only after the time bound is not delivered (504), and nothing is charged`, async () => {
      // 60 tokens at 20 a second: 3 s, past the 2 s time bound.
      const {
        billing: longBilled,
        backend: longBackend,
        maxDurationSeconds,
      } = await longBilling({
        responseTokens: 60,
        tokensPerSecond: 20,
      });
      let fetchHandler: (request: Request) => Response | Promise<Response>;
      if (adapter === "hono") {
        const app = new Hono<{ Variables: { tollgate: TollgateContext } }>();
        app.post("/v1/chat/completions", tollgateHono({ billing: longBilled }), async (c) =>
          hurried(longBackend.url, await c.req.json()),
        );
        fetchHandler = app.fetch;
      } else {
        const route = withTollgate(async (request) => hurried(longBackend.url, await request.json()), {
          billing: longBilled,
        });
        fetchHandler = (request) => route(request, {});
      }
      const server = serve({ fetch: fetchHandler, hostname: "127.0.0.1", port: 0 });
      await new Promise((resolve) => server.once("listening", resolve));
      closers.push(() => new Promise((resolve) => server.close(() => resolve())));
      const port = (server.address() as AddressInfo).port;
      const buyer = devnet.accounts.buyers[1]!;
      const balanceBefore = await devnet.usdcBalance(buyer.address);
      const startedAt = Date.now();
      const { answer, lastIdBefore } = await paidRequest(port, body(false, 60));
      const text = await answer.text();
      assert.ok(Date.now() - startedAt > maxDurationSeconds * 1000, "the answer came after the time bound");
      assert.equal(answer.status, 504, text);
      assert.match(text, /TOLLGATE_BACKEND_TIMEOUT/);
      assert.ok(!text.includes(mockCompletionText(3)), "the answer is not delivered");
      const row = await finalRowAfter(lastIdBefore, Date.now() + 10_000);
      assert.equal(row?.status, "failed");
      assert.equal(await devnet.usdcBalance(buyer.address), balanceBefore, "nothing charged");
    });
  }
});

describe("the Express adapter at the request's time bound", () => {
  test("a stream the buyer stops reading is charged at its time bound for what was forwarded, without waiting for the buyer", async () => {
    // A careful handler: it waits for the buyer to drain each write, so a buyer that reads nothing stalls it.
    // Its time bound leaves a loaded machine time to verify and reach the backend before the handler answers.
    const { port, maxDurationSeconds } = await longExpressApp(
      (backendUrl) => async (req, res) => {
        const upstream = await fetchUpstream(backendUrl, req.body);
        res.status(upstream.status).type(upstream.headers.get("content-type") ?? "application/json");
        for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) {
          if (res.writableEnded) break;
          if (!res.write(chunk))
            await new Promise((resolve) => {
              res.once("drain", resolve);
              res.once("close", resolve);
            });
        }
        res.end();
      },
      {},
      { maxDurationSeconds: 6 },
    );
    const longBody = body(true, 50_000);
    const header = await paymentHeaderFor(port, longBody);
    const lastIdBefore = await lastPaymentId();

    // The buyer sends the paid request, then reads nothing.
    const buyerSide = postWithoutReading(port, "/v1/chat/completions", longBody, {
      "payment-signature": header,
    });
    // Charged once the time bound passed, while the buyer still reads nothing.
    const row = await finalRowAfter(lastIdBefore, Date.now() + maxDurationSeconds * 1000 + 20_000);
    assert.equal(row?.status, "settled", `charged without the buyer reading (row: ${row?.status ?? "none"})`);

    const raw = await buyerSide.readRest();
    assert.match(raw.toString("latin1"), /^HTTP\/1\.1 200/);
    const text = unchunk(raw);
    const delivered = contentChunks(text);
    assert.ok(delivered > 0 && delivered < 50_000, `part of the answer was forwarded (${delivered} tokens)`);
    assert.equal(row?.completionTokens, delivered, "charged for exactly what was forwarded");
    const receipt = parseReceiptEvent(text.split("\n").find((line) => line.includes("x402_receipt"))!);
    assert.ok(receipt.ok);
    assert.equal(receipt.receipt.amount, row?.chargeAtomic?.toString(), "the stream's receipt is the charge");
    assert.match(text, /TOLLGATE_BACKEND_TIMEOUT/, "the stream ends with the time bound's error event");
  });

  test("a hurried handler that writes on without waiting for the buyer: a buyer that reads nothing is charged for what its socket took, not for what waited in the server", async () => {
    // The README's handler: every write at once, whatever the socket took. The time bound is long enough
    // for it to write (and end) the whole answer while the buyer reads nothing.
    let written = 0;
    let handlerEnded = false;
    const { port, maxDurationSeconds } = await longExpressApp(
      (backendUrl) => async (req, res) => {
        const upstream = await fetchUpstream(backendUrl, req.body);
        res.status(upstream.status).type(upstream.headers.get("content-type") ?? "application/json");
        const pieces: Uint8Array[] = [];
        for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) {
          pieces.push(chunk);
          res.write(chunk);
        }
        written = contentChunks(Buffer.concat(pieces).toString("utf8"));
        handlerEnded = true;
        res.end();
      },
      {},
      { maxDurationSeconds: 15 },
    );
    const longBody = body(true, 50_000);
    const header = await paymentHeaderFor(port, longBody);
    const lastIdBefore = await lastPaymentId();
    const buyerSide = postWithoutReading(port, "/v1/chat/completions", longBody, {
      "payment-signature": header,
    });
    const row = await finalRowAfter(lastIdBefore, Date.now() + maxDurationSeconds * 1000 + 20_000);
    assert.equal(row?.status, "settled", `charged without the buyer reading (row: ${row?.status ?? "none"})`);
    assert.ok(
      handlerEnded && written === 50_000,
      `the handler wrote and ended the whole answer (${written})`,
    );
    assert.ok(
      (row?.completionTokens ?? 0) < written,
      `charged for ${row?.completionTokens} of the ${written} tokens written while the buyer read nothing: only what its socket took`,
    );
    const text = unchunk(await buyerSide.readRest());
    assert.equal(row?.completionTokens, contentChunks(text), "charged for exactly what reached the buyer");
    assert.match(text, /TOLLGATE_BACKEND_TIMEOUT/, "the stream ends with the time bound's error event");
  });

  test("a hurried handler whose output runs 8 MiB ahead of a buyer that reads nothing: the buyer is taken as gone at once, charged for what its socket took", async () => {
    // Each event followed by a 2 KiB SSE comment (a keep-alive padding, no tokens): the output waiting for
    // the buyer passes 8 MiB long before the handler's generation or the time bound ends.
    let written = 0;
    const { port, maxDurationSeconds } = await longExpressApp(
      (backendUrl) => async (req, res) => {
        const upstream = await fetchUpstream(backendUrl, req.body);
        res.status(upstream.status).type(upstream.headers.get("content-type") ?? "application/json");
        const padding = `: ${"x".repeat(2048)}\n\n`;
        let pending = "";
        for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) {
          pending += Buffer.from(chunk).toString("utf8");
          for (let at = pending.indexOf("\n\n"); at >= 0; at = pending.indexOf("\n\n")) {
            res.write(pending.slice(0, at + 2));
            res.write(padding);
            written += 1;
            pending = pending.slice(at + 2);
          }
        }
        res.end(pending);
      },
      {},
      { maxDurationSeconds: 60 },
    );
    const longBody = body(true, 50_000);
    const header = await paymentHeaderFor(port, longBody);
    const lastIdBefore = await lastPaymentId();
    const startedAt = Date.now();
    const buyerSide = postWithoutReading(port, "/v1/chat/completions", longBody, {
      "payment-signature": header,
    });
    const row = await finalRowAfter(lastIdBefore, Date.now() + 30_000);
    const chargedAfterMs = Date.now() - startedAt;
    assert.equal(row?.status, "settled", `charged without the buyer reading (row: ${row?.status ?? "none"})`);
    assert.ok(
      chargedAfterMs < (maxDurationSeconds * 1000) / 2,
      `charged after ${chargedAfterMs} ms: the buyer was taken as gone, not waited for until the ${maxDurationSeconds} s time bound`,
    );
    const text = unchunk(await buyerSide.readRest());
    const delivered = contentChunks(text);
    assert.ok(
      delivered > 0 && delivered < 50_000,
      `part of the answer reached the buyer (${delivered} tokens)`,
    );
    assert.ok(written > delivered, `the handler wrote more (${written} events) than reached the buyer`);
    assert.equal(row?.completionTokens, delivered, "charged for exactly what reached the buyer");
  });

  test("a hurried handler's long stream to a buyer that reads it all is delivered whole, its receipt last", async () => {
    // The time bound is far beyond this stream's length even on a loaded machine: this test is about delivery.
    const { port } = await longExpressApp(
      (backendUrl) => async (req, res) => {
        const upstream = await fetchUpstream(backendUrl, req.body);
        res.status(upstream.status).type(upstream.headers.get("content-type") ?? "application/json");
        for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
        res.end();
      },
      {},
      { maxDurationSeconds: 60 },
    );
    const { answer, lastIdBefore } = await paidRequest(port, body(true, 20_000));
    assert.equal(answer.status, 200);
    // Read slowly at first, so the handler's writes back up behind the socket.
    const reader = answer.body!.getReader();
    const pieces: Uint8Array[] = [];
    for (let i = 0; ; i++) {
      const { done, value } = await reader.read();
      if (done) break;
      pieces.push(value);
      if (i < 5) await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const text = Buffer.concat(pieces).toString("utf8");
    const delivered = contentChunks(text);
    const row = await finalRowAfter(lastIdBefore, Date.now() + 10_000);
    assert.equal(delivered, 20_000, "the whole answer");
    assert.equal(row?.completionTokens, 20_000);
    const receiptLine = text
      .trimEnd()
      .split("\n")
      .filter((line) => line.includes("x402_receipt"));
    assert.equal(receiptLine.length, 1);
    const receipt = parseReceiptEvent(receiptLine[0]!);
    assert.ok(receipt.ok);
    assert.equal(receipt.receipt.amount, row?.chargeAtomic?.toString());
    assert.ok(text.trimEnd().endsWith("data: [DONE]"));
  });

  test("a JSON answer the handler never ends gets 504 at the time bound, and nothing is charged", async () => {
    const { port, maxDurationSeconds } = await longExpressApp(() => (_req, res) => {
      res.status(200).type("application/json");
      res.write('{"id":"never-ends","choices":[');
    });
    const jsonBody = body(false, 16);
    const header = await paymentHeaderFor(port, jsonBody);
    const buyer = devnet.accounts.buyers[1]!;
    const balanceBefore = await devnet.usdcBalance(buyer.address);
    const lastIdBefore = await lastPaymentId();
    const startedAt = Date.now();
    const answer = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json", "payment-signature": header },
      body: jsonBody,
    });
    assert.equal(answer.status, 504);
    assert.ok(Date.now() - startedAt < maxDurationSeconds * 1000 + 30_000, "answered at the time bound");
    const error = (await answer.json()) as { error: { code: string } };
    assert.equal(error.error.code, "TOLLGATE_BACKEND_TIMEOUT");
    const row = await finalRowAfter(lastIdBefore, Date.now() + 10_000);
    assert.equal(row?.status, "failed");
    assert.equal(await devnet.usdcBalance(buyer.address), balanceBefore, "nothing charged");
  });

  test("a buyer that hangs up before a JSON answer, once the handler's backend has the whole request (promptSent), pays for the prompt alone, and the backend call is stopped", async () => {
    // The backend takes the request and never answers: the buyer gives up waiting.
    const { port, backend } = await longExpressApp(() => signalledHandler(), { stallBeforeHeaders: true });
    const jsonBody = body(false, 16);
    const header = await paymentHeaderFor(port, jsonBody);
    const lastIdBefore = await lastPaymentId();
    const { gone, answer } = abandonablePaidRequest(port, jsonBody, header);
    const giveUpAt = Date.now() + 10_000;
    while (backend.inferenceRequests.length === 0 && Date.now() < giveUpAt)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(backend.inferenceRequests.length, 1, "the backend got the request");
    gone.abort();
    assert.ok((await answer) instanceof Error, "the buyer got nothing");
    await assertPromptAloneCharged(lastIdBefore, backend);
  });

  test("a buyer that hangs up while the handler sends back its backend's error pays nothing, though the backend had the prompt", async () => {
    let wrote: (() => void) | undefined;
    const errorStarted = new Promise<void>((resolve) => {
      wrote = resolve;
    });
    const { port } = await longExpressApp(() => async (_req, res) => {
      (res.locals.tollgate as TollgateExpressContext).promptSent();
      res.status(529).type("application/json");
      res.write('{"type":"error","error":{"type":"overloaded_error",');
      wrote?.();
    });
    const jsonBody = body(false, 16);
    const header = await paymentHeaderFor(port, jsonBody);
    const lastIdBefore = await lastPaymentId();
    const gone = new AbortController();
    void errorStarted.then(() => gone.abort());
    await assert.rejects(
      fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "payment-signature": header },
        body: jsonBody,
        signal: gone.signal,
      }),
    );
    const row = await finalRowAfter(lastIdBefore, Date.now() + 10_000);
    assert.equal(row?.status, "failed", `not charged (row: ${row?.status ?? "none"})`);
  });

  test("a buyer that hangs up before a JSON answer pays nothing when the handler never said its backend had the prompt, and the answer the handler ends later is dropped", async () => {
    let ended: (() => void) | undefined;
    const handlerEnded = new Promise<void>((resolve) => {
      ended = resolve;
    });
    let started: (() => void) | undefined;
    const handlerStarted = new Promise<void>((resolve) => {
      started = resolve;
    });
    const { port } = await longExpressApp((backendUrl) => async (req, res) => {
      started?.();
      const upstream = await fetch(`${backendUrl}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(req.body),
      });
      const text = await upstream.text();
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      res.status(upstream.status).type("application/json").end(text);
      ended?.();
    });
    const jsonBody = body(false, 16);
    const header = await paymentHeaderFor(port, jsonBody);
    const buyer = devnet.accounts.buyers[1]!;
    const balanceBefore = await devnet.usdcBalance(buyer.address);
    const lastIdBefore = await lastPaymentId();
    const gone = new AbortController();
    // The buyer leaves once the payment is admitted and the handler runs, before it answers.
    void handlerStarted.then(() => gone.abort());
    await assert.rejects(
      fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json", "payment-signature": header },
        body: jsonBody,
        signal: gone.signal,
      }),
    );
    await handlerEnded;
    const row = await finalRowAfter(lastIdBefore, Date.now() + 10_000);
    assert.equal(row?.status, "failed", `not charged (row: ${row?.status ?? "none"})`);
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(await devnet.usdcBalance(buyer.address), balanceBefore, "nothing moved");
  });
});

describe("the Next.js adapter when the buyer leaves early", () => {
  test("a buyer that hangs up before a JSON answer, once proxyToBackend sent the backend the whole request, pays for the prompt alone, and the backend call is stopped", async () => {
    // The backend takes the request and never answers: the buyer gives up waiting.
    const { billing: longBilled, backend: stalling } = await longBilling({ stallBeforeHeaders: true });
    const route = withTollgate(
      (_request, _context: unknown, { quote, backendBody, signal }) =>
        proxyToBackend({ model: quote.model, body: backendBody, signal }),
      { billing: longBilled },
    );
    const url = "http://127.0.0.1/v1/chat/completions";
    const jsonBody = body(false, 16);
    const post = (headers: Record<string, string>, signal?: AbortSignal) =>
      new Request(url, {
        method: "POST",
        headers: { "content-type": "application/json", ...headers },
        body: jsonBody,
        ...(signal ? { signal } : {}),
      });
    const header = await paymentHeaderFrom(await route(post({}), {}));
    const lastIdBefore = await lastPaymentId();
    const gone = new AbortController();
    const answer = route(post({ "payment-signature": header }, gone.signal), {}).catch(
      (error: unknown) => error,
    );
    const giveUpAt = Date.now() + 10_000;
    while (stalling.inferenceRequests.length === 0 && Date.now() < giveUpAt)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(stalling.inferenceRequests.length, 1, "the backend got the request");
    gone.abort();
    const outcome = await answer;
    assert.ok(
      isTollgateError(outcome, "TOLLGATE_BACKEND_FAILED") && outcome.details.promptSent === true,
      `the handler's backend call ended once the buyer left (${String(outcome)})`,
    );
    await assertPromptAloneCharged(lastIdBefore, stalling);
  });
});

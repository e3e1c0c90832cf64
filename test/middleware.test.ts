import assert from "node:assert/strict";
import type { AddressInfo } from "node:net";
import { after, before, describe, test } from "node:test";
import { serve } from "@hono/node-server";
import { decodePaymentResponseHeader } from "@x402/core/http";
import express from "express";
import { Hono } from "hono";
import { type Devnet, startDevnet } from "../src/devnet/index.js";
import { createFacilitator } from "../src/facilitator/index.js";
import {
  type Billing,
  createBilling,
  parseGatewayConfig,
  proxyToBackend,
  type TollgateContext,
  tollgateExpress,
  tollgateHono,
} from "../src/gateway/index.js";
import { type Ledger, openLedger } from "../src/ledger/index.js";
import { countTextTokens } from "../src/pricing/index.js";
import { parseReceiptEvent } from "../src/protocol/index.js";
import { expectedCharge, officialPayingFetch, testPrices } from "./support/gatewayHarness.js";
import {
  type MockBackend,
  mockCompletionText,
  mockModelId,
  startMockBackend,
} from "./support/mockBackend.js";

let devnet: Devnet;
let backend: MockBackend;
let ledger: Ledger;
let billing: Billing;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  devnet = await startDevnet({ buyers: 2 });
  backend = await startMockBackend({ responseTokens: 9 });
  ledger = await openLedger();
  const facilitator = createFacilitator({
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
    terms: {
      network: devnet.network,
      asset: devnet.contracts.usdc,
      assetDomain: { name: "USD Coin", version: "2" },
      payTo: devnet.accounts.payTo.address,
      maxTimeoutSeconds: 300,
      facilitatorAddress: facilitator.address,
    },
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

const body = (stream: boolean) =>
  JSON.stringify({
    model: mockModelId,
    messages: [{ role: "user", content: "hello there" }],
    max_tokens: 32,
    stream,
  });

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

  test("Express middleware bills a host's own route", async () => {
    const app = express();
    app.post("/v1/chat/completions", express.json(), tollgateExpress({ billing }), async (req, res) => {
      const upstream = await fetch(`${backend.url}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(req.body),
      });
      res.status(upstream.status).type(upstream.headers.get("content-type") ?? "application/json");
      for await (const chunk of upstream.body as unknown as AsyncIterable<Uint8Array>) res.write(chunk);
      res.end();
    });
    const server = app.listen(0, "127.0.0.1");
    await new Promise((resolve) => server.once("listening", resolve));
    closers.push(() => new Promise((resolve) => server.close(() => resolve())));
    await checkPaidRoute(`http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`, 1);
  });
});

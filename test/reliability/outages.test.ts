import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { serve } from "@hono/node-server";
import type { PaymentRequired } from "@x402/core/types";
import { Hono } from "hono";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import {
  createFacilitator,
  createFacilitatorApp,
  createFacilitatorClient,
  serveFacilitator,
} from "../../src/facilitator/index.js";
import {
  type FacilitatorLike,
  type Gateway,
  type GatewayConfigInput,
  parseGatewayConfig,
  startGateway,
} from "../../src/gateway/index.js";
import { type Ledger, openLedger } from "../../src/ledger/index.js";
import { countTextTokens } from "../../src/pricing/index.js";
import {
  decodePaymentRequiredHeader,
  encodePaymentSignatureHeader,
  parseReceiptEvent,
} from "../../src/protocol/index.js";
import { TEST_FACILITATOR_TOKEN } from "../support/facilitatorToken.js";
import {
  expectedCharge,
  officialBuyer,
  officialPayingFetch,
  testGatewayConfig,
} from "../support/gatewayHarness.js";
import { holdStreams, type MockBackend, mockModelId, startMockBackend } from "../support/mockBackend.js";
import { startSwitchableRpc } from "../support/switchableRpc.js";
import { waitFor } from "./support/reliabilityEnv.js";

const body = (extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    model: mockModelId,
    messages: [{ role: "user", content: "is anyone there" }],
    max_tokens: 64,
    ...extra,
  });

let devnet: Devnet;
let backend: MockBackend;
const closers: Array<() => Promise<void>> = [];

before(async () => {
  devnet = await startDevnet({ buyers: 3 });
  backend = await startMockBackend({ responseTokens: 12 });
});
after(async () => {
  for (const close of closers.reverse()) await close();
  await backend?.close();
  await devnet?.stop();
});

async function gatewayWith(
  options: {
    facilitatorConfig?: GatewayConfigInput["facilitator"];
    facilitator?: FacilitatorLike;
    rpcUrl?: string;
    verifyTimeoutMs?: number;
    settleTimeoutMs?: number;
  } = {},
): Promise<{ gateway: Gateway; ledger: Ledger }> {
  const ledger = await openLedger();
  const config = parseGatewayConfig(
    testGatewayConfig({
      devnet,
      backendUrl: backend.url,
      rpcUrl: options.rpcUrl,
      facilitator: options.facilitatorConfig,
    }),
  );
  const gateway = await startGateway({
    config,
    ledger,
    facilitator: options.facilitator,
    pollingIntervalMs: 20,
    verifyTimeoutMs: options.verifyTimeoutMs,
    settleTimeoutMs: options.settleTimeoutMs,
  });
  closers.push(async () => {
    await gateway.close();
    await ledger.close();
  });
  return { gateway, ledger };
}

async function paymentRequired(
  gateway: Gateway,
  extra: Record<string, unknown> = {},
): Promise<PaymentRequired> {
  const response = await fetch(`${gateway.url}/v1/chat/completions`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: body(extra),
  });
  const decoded = decodePaymentRequiredHeader(response.headers.get("payment-required"));
  assert.ok(decoded.ok);
  return decoded.paymentRequired;
}

/** `count` paid requests with fresh authorizations, all at once; statuses, Retry-After and the slowest answer. */
async function payMany(gateway: Gateway, count: number, extra: Record<string, unknown> = {}) {
  const required = await paymentRequired(gateway, extra);
  const buyer = devnet.accounts.buyers[0]!;
  const startedAt = performance.now();
  const results = await Promise.all(
    Array.from({ length: count }, async () => {
      const payload = await officialBuyer(buyer.privateKey, devnet.network).createPaymentPayload(required);
      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "payment-signature": encodePaymentSignatureHeader(payload),
        },
        body: body(extra),
        signal: AbortSignal.timeout(60_000),
      });
      const text = await response.text();
      return {
        status: response.status,
        retryAfter: response.headers.get("retry-after"),
        text,
        ms: performance.now() - startedAt,
      };
    }),
  );
  return {
    results,
    statuses: [...new Set(results.map((result) => result.status))],
    allRetryAfter: results.every((result) => result.retryAfter !== null),
    slowestMs: Math.round(Math.max(...results.map((result) => result.ms))),
  };
}

describe("outages", () => {
  test("chain RPC down: 503 with Retry-After, no backend call", async (t) => {
    // The chain answers the start (the asset's decimals), then refuses every connection.
    const rpc = await startSwitchableRpc(devnet.rpcUrl);
    closers.push(() => rpc.close());
    const { gateway } = await gatewayWith({ rpcUrl: rpc.url });
    await rpc.cut("refused");
    backend.clearRequests();
    const { statuses, allRetryAfter, slowestMs } = await payMany(gateway, 20);
    t.diagnostic(
      `outage chain RPC down: 20 paid requests → statuses ${statuses}; Retry-After on all: ${allRetryAfter}; backend calls ${backend.inferenceRequests.length}; slowest ${slowestMs} ms`,
    );
    assert.deepEqual(statuses, [503]);
    assert.ok(allRetryAfter);
    assert.equal(backend.inferenceRequests.length, 0);
  });

  test("chain RPC down between admission and settlement: the delivered request is a debt that does not refuse its payer", async () => {
    const rpc = await startSwitchableRpc(devnet.rpcUrl);
    closers.push(() => rpc.close());
    const { gateway, ledger } = await gatewayWith({ rpcUrl: rpc.url, settleTimeoutMs: 10_000 });
    const buyer = await devnet.createBuyer(10_000_000n);
    const required = await paymentRequired(gateway, { stream: true });
    const payload = await officialBuyer(buyer.privateKey, devnet.network).createPaymentPayload(required);
    const release = holdStreams(backend, 1);
    let text: string;
    try {
      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "payment-signature": encodePaymentSignatureHeader(payload),
        },
        body: body({ stream: true }),
      });
      assert.equal(response.status, 200);
      // Served; then the seller's chain RPC goes down before the charge is settled.
      await rpc.cut("refused");
      release();
      text = await response.text();
    } finally {
      release();
    }
    const line = text.split("\n").find((candidate) => candidate.includes("x402_receipt"));
    assert.ok(line, text.slice(-300));
    const [row] = await ledger.payments.recent({ limit: 1 });
    assert.equal(row?.status, "debt", `${row?.status} ${row?.error}`);
    assert.equal(
      await ledger.payments.hasOpenDebt(row!.network, row!.payer),
      false,
      `its payer is refused for the seller's chain outage (${row?.error})`,
    );
  });

  test("facilitator down: 503 with Retry-After, no backend call", async (t) => {
    const facilitator = await serveFacilitator({
      facilitator: createFacilitator({
        rpcUrl: devnet.rpcUrl,
        privateKey: devnet.accounts.facilitator.privateKey,
        network: devnet.network,
      }),
      token: TEST_FACILITATOR_TOKEN,
      port: 0,
    });
    const { gateway } = await gatewayWith({
      facilitatorConfig: { url: facilitator.url, token: TEST_FACILITATOR_TOKEN },
    });
    const required = await paymentRequired(gateway);
    assert.ok(required.accepts.some((offer) => offer.scheme === "upto"));
    await facilitator.close();
    backend.clearRequests();
    const { statuses, allRetryAfter, slowestMs } = await payMany(gateway, 20);
    t.diagnostic(
      `outage facilitator down: 20 paid requests → statuses ${statuses}; Retry-After on all: ${allRetryAfter}; backend calls ${backend.inferenceRequests.length}; slowest ${slowestMs} ms`,
    );
    assert.deepEqual(statuses, [503]);
    assert.ok(allRetryAfter);
    assert.equal(backend.inferenceRequests.length, 0);
  });

  test("backend dies mid-stream: charged only for the tokens delivered", async (t) => {
    const { gateway, ledger } = await gatewayWith();
    const buyer = await devnet.createBuyer(10_000_000n);
    const pay = officialPayingFetch(buyer.privateKey, devnet.network);
    const lines: string[] = [];
    try {
      for (const failAfter of [1, 3, 7, 15, 30]) {
        backend.set({
          responseTokens: 60,
          tokensPerSecond: 300,
          reportUsage: true,
          failAfterChunks: failAfter,
        });
        const before = await devnet.usdcBalance(buyer.address);
        const response = await pay(`${gateway.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: body({ stream: true, max_tokens: 128 }),
        });
        assert.equal(response.status, 200);
        const text = await response.text();
        let delivered = "";
        for (const line of text.split("\n")) {
          if (!line.startsWith("data: {")) continue;
          const chunk = JSON.parse(line.slice(6)) as { choices?: Array<{ delta?: { content?: string } }> };
          delivered += chunk.choices?.[0]?.delta?.content ?? "";
        }
        const receiptLine = text.split("\n").find((line) => line.includes("x402_receipt"));
        assert.ok(receiptLine, "the receipt still arrives");
        const parsed = parseReceiptEvent(receiptLine);
        assert.ok(parsed.ok);
        const [row] = await ledger.payments.recent({ limit: 1 });
        assert.equal(row?.status, "settled");
        const deliveredTokens = countTextTokens(delivered);
        assert.equal(row?.completionTokens, deliveredTokens, "metered what reached the buyer");
        assert.equal(row?.chargeAtomic, expectedCharge(row!.promptTokens!, deliveredTokens));
        assert.equal(await devnet.usdcBalance(buyer.address), before - row!.chargeAtomic!);
        lines.push(
          `after ${failAfter} chunks: ${deliveredTokens} tokens delivered, charged ${row!.chargeAtomic} of max ${row!.maxAtomic}`,
        );
      }
    } finally {
      backend.set({ failAfterChunks: undefined, responseTokens: 12, tokensPerSecond: 0 });
    }
    t.diagnostic(`outage backend dies mid-stream: ${lines.join("; ")}`);
  });

  describe("a slow facilitator", () => {
    let delays = { verifyMs: 0, settleMs: 0 };
    let proxyUrl: string;

    before(async () => {
      const facilitator = createFacilitator({
        rpcUrl: devnet.rpcUrl,
        privateKey: devnet.accounts.facilitator.privateKey,
        network: devnet.network,
        pollingIntervalMs: 20,
      });
      const real = createFacilitatorApp({ facilitator, token: TEST_FACILITATOR_TOKEN });
      const proxy = new Hono();
      proxy.all("*", async (c) => {
        const wait =
          c.req.path === "/verify" ? delays.verifyMs : c.req.path === "/settle" ? delays.settleMs : 0;
        if (wait > 0) await sleep(wait, undefined, { ref: false });
        return real.fetch(c.req.raw);
      });
      const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
        const instance = serve({ fetch: proxy.fetch, hostname: "127.0.0.1", port: 0 }, () =>
          resolve(instance),
        );
      });
      const address = server.address();
      proxyUrl = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
      closers.push(
        () =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            (server as unknown as { closeAllConnections?: () => void }).closeAllConnections?.();
          }),
      );
    });

    test("verify hangs: every request answers 503 within the verify timeout, nothing runs", async (t) => {
      delays = { verifyMs: 120_000, settleMs: 0 };
      const { gateway } = await gatewayWith({
        facilitator: createFacilitatorClient({
          url: proxyUrl,
          token: TEST_FACILITATOR_TOKEN,
          timeoutMs: 120_000,
        }),
        verifyTimeoutMs: 2_000,
      });
      backend.clearRequests();
      const { statuses, allRetryAfter, slowestMs } = await payMany(gateway, 10);
      t.diagnostic(
        `outage slow facilitator (verify +120 s, gateway bound 2 s): 10 paid requests → statuses ${statuses}; Retry-After on all: ${allRetryAfter}; slowest ${slowestMs} ms; backend calls ${backend.inferenceRequests.length}`,
      );
      assert.deepEqual(statuses, [503]);
      assert.ok(allRetryAfter);
      assert.ok(slowestMs < 20_000, `slowest ${slowestMs} ms`);
      assert.equal(backend.inferenceRequests.length, 0);
    });

    test("settle hangs: the stream ends within the settle timeout, and the late settlement is still recorded once", async (t) => {
      delays = { verifyMs: 0, settleMs: 12_000 };
      const { gateway, ledger } = await gatewayWith({
        facilitator: createFacilitatorClient({
          url: proxyUrl,
          token: TEST_FACILITATOR_TOKEN,
          timeoutMs: 120_000,
        }),
        settleTimeoutMs: 2_000,
      });
      backend.set({ responseTokens: 12, tokensPerSecond: 0 });
      const before = await devnet.usdcBalance(devnet.accounts.buyers[0]!.address);
      const { results, statuses, slowestMs } = await payMany(gateway, 5, { stream: true });
      const pendingReceipts = results.filter((result) => {
        const line = result.text.split("\n").find((candidate) => candidate.includes("x402_receipt"));
        const parsed = line ? parseReceiptEvent(line) : undefined;
        return parsed?.ok && parsed.receipt.errorReason === "settlement_pending";
      }).length;
      const recordedAt = performance.now();
      const recorded = await waitFor(async () => {
        const rows = await ledger.payments.recent({ limit: 5 });
        return rows.length === 5 && rows.every((row) => row.status === "settled");
      }, 60_000);
      const rows = await ledger.payments.recent({ limit: 5 });
      const charged = rows.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
      const after = await devnet.usdcBalance(devnet.accounts.buyers[0]!.address);
      t.diagnostic(
        `outage slow facilitator (settle +12 s, gateway bound 2 s): 5 paid streams → statuses ${statuses}; slowest ${slowestMs} ms; receipts "settlement_pending" ${pendingReceipts}; all settled in the ledger ${Math.round(performance.now() - recordedAt)} ms later: ${recorded}; charged on chain ${before - after} = ledger ${charged}`,
      );
      assert.deepEqual(statuses, [200]);
      assert.ok(slowestMs < 10_000, `slowest ${slowestMs} ms`);
      assert.equal(pendingReceipts, 5);
      assert.ok(recorded, "the late settlements are recorded");
      assert.equal(before - after, charged, "each charged once");
    });
  });
});

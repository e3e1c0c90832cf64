import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import type { StreamReceipt } from "../src/protocol/index.js";
import { type GatewayHarness, officialPayingFetch, startGatewayHarness } from "./support/gatewayHarness.js";

/** Atomic units per second of backend time. */
const PER_SECOND_ATOMIC = 3_600n;

let h: GatewayHarness;
before(async () => {
  h = await startGatewayHarness({
    extraModels: (baseUrl) => [
      {
        id: "mock-gpu",
        backend: { baseUrl, maxDurationSeconds: 1 },
        pricePerSecond: PER_SECOND_ATOMIC.toString(),
        maxOutputTokens: 256,
        tokenizer: "gpt-4o",
      },
      {
        id: "mock-gpu-idle",
        backend: { baseUrl, timeoutMs: 1_500, maxDurationSeconds: 10 },
        pricePerSecond: PER_SECOND_ATOMIC.toString(),
        maxOutputTokens: 256,
        tokenizer: "gpt-4o",
      },
    ],
  });
});
after(async () => {
  await h?.close();
});

async function streamReceipt(buyerIndex: number, maxTokens: number, model = "mock-gpu") {
  const buyer = h.devnet.accounts.buyers[buyerIndex]!;
  const client = new OpenAI({
    apiKey: "unused",
    baseURL: `${h.gateway.url}/v1`,
    fetch: officialPayingFetch(buyer.privateKey, h.devnet.network),
    maxRetries: 0,
  });
  const stream = await client.chat.completions.create({
    model,
    messages: [{ role: "user", content: "count" }],
    max_tokens: maxTokens,
    stream: true,
  });
  let receipt: StreamReceipt | undefined;
  let ending: unknown;
  try {
    for await (const chunk of stream)
      if ("x402_receipt" in chunk) receipt = chunk.x402_receipt as StreamReceipt;
  } catch (error) {
    // A stream cut at its time bound ends with an error event, after the receipt.
    ending = error;
  }
  assert.ok(receipt, "the stream ended with a receipt");
  return { receipt, ending };
}

describe("a model priced per second of compute", () => {
  test("the charge is the measured backend time at the price, within the backend's own time", async () => {
    h.backend.set({ responseTokens: 12, tokensPerSecond: 60 });
    h.backend.clearRequests();
    const { receipt, ending } = await streamReceipt(0, 100);
    assert.equal(ending, undefined);
    const computeMs = receipt.units?.compute_ms;
    assert.ok(computeMs !== undefined && computeMs > 0);
    assert.equal(BigInt(receipt.amount), (BigInt(computeMs) * PER_SECOND_ATOMIC + 999n) / 1000n);
    const served = h.backend.inferenceRequests.at(-1)!;
    const backendMs = served.endedAt! - served.receivedAt;
    // The gateway's clock runs from before the backend call to after its last byte.
    assert.ok(computeMs >= backendMs - 1, `measured ${computeMs} ms, the backend took ${backendMs} ms`);
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    assert.equal(row?.usage?.compute_ms, computeMs);
    assert.equal(row?.chargeAtomic, BigInt(receipt.amount));
  });

  test("the gateway's own work after the answer (counting a prompt the backend did not report) is not billed as backend time", async () => {
    h.backend.set({ responseTokens: 4, tokensPerSecond: 0, reportUsage: false });
    h.backend.clearRequests();
    const buyer = h.devnet.accounts.buyers[2]!;
    // About 3 MB of distinct words: counting them takes the gateway far longer than the backend's answer.
    const prompt = Array.from({ length: 300_000 }, (_, i) => `w${i.toString(36)}x`).join(" ");
    try {
      const response = await officialPayingFetch(buyer.privateKey, h.devnet.network)(
        `${h.gateway.url}/v1/chat/completions`,
        {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            model: "mock-gpu",
            messages: [{ role: "user", content: prompt }],
            max_tokens: 4,
          }),
        },
      );
      assert.equal(response.status, 200, await response.clone().text());
      await response.text();
    } finally {
      h.backend.set({ reportUsage: true });
    }
    const [row] = await h.ledger.payments.recent({ limit: 1 });
    assert.ok(
      (row?.promptTokens ?? 0) > 300_000,
      `the gateway counted the prompt itself: ${row?.promptTokens}`,
    );
    const served = h.backend.inferenceRequests.at(-1)!;
    const backendMs = served.endedAt! - served.receivedAt;
    const computeMs = row?.usage?.compute_ms ?? 0;
    assert.ok(computeMs <= backendMs + 100, `billed ${computeMs} ms; the backend took ${backendMs} ms`);
  });

  test("a backend that goes silent mid-answer is billed until its last bytes, not for the idle timeout that ended it", async () => {
    h.backend.set({ responseTokens: 40, tokensPerSecond: 50, stallAfterChunks: 3 });
    h.backend.clearRequests();
    const startedAt = Date.now();
    try {
      const { receipt, ending } = await streamReceipt(0, 40, "mock-gpu-idle");
      assert.match(String(ending), /stopped answering in time/);
      assert.ok(Date.now() - startedAt >= 1_500, "the stream ended at the 1.5 s idle timeout");
      assert.equal(receipt.usage.completion_tokens, 3);
      const computeMs = receipt.units?.compute_ms ?? 0;
      // Three tokens at 50 a second came within about 60 ms; the 1.5 s of silence after them is not work.
      assert.ok(computeMs > 0 && computeMs < 1_000, `billed ${computeMs} ms`);
      assert.equal(BigInt(receipt.amount), (BigInt(computeMs) * PER_SECOND_ATOMIC + 999n) / 1000n);
    } finally {
      h.backend.set({ stallAfterChunks: undefined });
    }
  });

  test("a generation past the time bound is stopped there and charged at most the maximum", async () => {
    h.backend.set({ responseTokens: 200, tokensPerSecond: 20 });
    h.backend.clearRequests();
    const { receipt, ending } = await streamReceipt(1, 200);
    assert.match(String(ending), /stopped answering in time/);
    assert.equal(BigInt(receipt.maxAmount), PER_SECOND_ATOMIC, "the maximum is the 1 s bound × the price");
    assert.ok(BigInt(receipt.amount) <= BigInt(receipt.maxAmount));
    assert.ok((receipt.units?.compute_ms ?? 0) <= 1_000);
    assert.ok(receipt.usage.completion_tokens < 200, "the backend was stopped before it finished");
    await h.backend.whenIdle();
    assert.equal(
      h.backend.inferenceRequests.at(-1)?.clientAborted,
      true,
      "the backend connection was closed",
    );
  });
});

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import OpenAI from "openai";
import { createPayingFetch, type PayingFetch } from "../src/buyer/index.js";
import { isTollgateError } from "../src/errors/index.js";
import { chatRequest, countingFetch, eventLog, tempDataDir } from "./support/buyerFixtures.js";
import {
  expectedCharge,
  type GatewayHarness,
  startGatewayHarness,
  startGatewayOnLedger,
} from "./support/gatewayHarness.js";
import { mockCompletionText, mockModelId } from "./support/mockBackend.js";

let h: GatewayHarness;
let dataDir: Awaited<ReturnType<typeof tempDataDir>>;
const opened: PayingFetch[] = [];

before(async () => {
  h = await startGatewayHarness();
  dataDir = await tempDataDir();
});
after(async () => {
  for (const payingFetch of opened) await payingFetch.close();
  await h?.close();
  await dataDir?.remove();
});

function buyerFetch(options: Partial<Parameters<typeof createPayingFetch>[0]> & { buyer?: number } = {}) {
  const { buyer = 0, ...rest } = options;
  const payingFetch = createPayingFetch({
    privateKey: h.devnet.accounts.buyers[buyer]!.privateKey,
    dataDir: dataDir.path,
    ...rest,
  });
  opened.push(payingFetch);
  return payingFetch;
}

const chatUrl = () => `${h.gateway.url}/v1/chat/completions`;
const postChat = (payingFetch: typeof fetch, extra: Record<string, unknown> = {}) =>
  payingFetch(chatUrl(), {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: chatRequest(extra),
  });

describe("paying Tollgate's gateway", () => {
  test("settles the actual usage, not the maximum: the receipt's charge is what leaves the wallet", async () => {
    const log = eventLog();
    const payingFetch = buyerFetch({ onEvent: log.onEvent });
    const buyer = h.devnet.accounts.buyers[0]!;
    h.backend.set({ responseTokens: 12, tokensPerSecond: 0 });
    const balanceBefore = await h.devnet.usdcBalance(buyer.address);
    const response = await postChat(payingFetch);
    assert.equal(response.status, 200);
    const completion = (await response.json()) as {
      choices: Array<{ message: { content: string } }>;
      usage: { prompt_tokens: number; completion_tokens: number };
    };
    await payingFetch.idle();
    assert.equal(completion.choices[0]?.message.content, mockCompletionText(12));

    const [receipt] = log.of("receipt");
    assert.ok(receipt, "a receipt event");
    assert.equal(receipt.source, "header");
    const charge = expectedCharge(completion.usage.prompt_tokens, completion.usage.completion_tokens);
    assert.equal(receipt.chargedAtomic, charge);
    assert.ok(receipt.chargedAtomic < receipt.maxAtomic, "charged below the maximum");
    assert.equal(receipt.savedAtomic, receipt.maxAtomic - charge);
    assert.match(receipt.transaction, /^0x[0-9a-f]{64}$/);
    assert.equal(await h.devnet.usdcBalance(buyer.address), balanceBefore - charge);

    const row = await (await payingFetch.spendStore()).reservation(receipt.paymentId);
    assert.equal(row?.status, "settled");
    assert.equal(row?.chargedAtomic, charge);
    assert.equal(row?.countedAtomic, charge, "the cap now counts the charge, not the maximum");
    assert.equal(row?.transaction, receipt.transaction);
    assert.equal(log.of("overcharge").length, 0, "an honest charge is not flagged");
  });

  test("pays on the first request once GET /v1/models gave the prices: no 402 round trip", async () => {
    const counting = countingFetch();
    const log = eventLog();
    const payingFetch = buyerFetch({ fetch: counting, onEvent: log.onEvent, buyer: 1 });
    const models = await payingFetch.discover(h.gateway.url);
    assert.deepEqual(
      models.map((model) => model.id),
      [mockModelId],
    );
    counting.statuses.length = 0;
    const response = await postChat(payingFetch, { max_tokens: 32 });
    assert.equal(response.status, 200);
    await response.arrayBuffer();
    assert.deepEqual(counting.statuses, [200], "one request, paid at once");
    const [authorized] = log.of("authorized");
    assert.equal(authorized?.firstRequest, true);
    assert.equal(authorized?.maxAtomic, authorized?.expectedAtomic, "the buyer computed the maximum itself");
    assert.equal(log.of("receipt")[0]?.success, true);
  });

  test("pays at once for as long as the listing says an authorization lives: a policy shorter than the gateway's default is no refusal", async () => {
    // A seller whose authorizations live 60 s, for a buyer that allows 120 s.
    const seller = await startGatewayOnLedger(h, (input) => ({
      ...input,
      maxTimeoutSeconds: 60,
      models: input.models.map((model) => ({
        ...model,
        backend: { ...model.backend, maxDurationSeconds: 20 },
      })),
    }));
    try {
      const counting = countingFetch();
      const log = eventLog();
      const payingFetch = buyerFetch({
        fetch: counting,
        onEvent: log.onEvent,
        buyer: 1,
        policy: { maxTimeoutSeconds: 120 },
      });
      await payingFetch.discover(seller.url);
      counting.statuses.length = 0;
      const response = await payingFetch(`${seller.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatRequest({ max_tokens: 16 }),
      });
      assert.equal(response.status, 200);
      await response.arrayBuffer();
      assert.deepEqual(counting.statuses, [200], "one request, paid at once");
      assert.equal(log.of("authorized")[0]?.firstRequest, true);
      assert.equal(log.of("receipt")[0]?.success, true);
      // A policy shorter than the seller's own asks for its 402, and refuses that on the rule.
      const strict = buyerFetch({ fetch: counting, buyer: 1, policy: { maxTimeoutSeconds: 30 } });
      await strict.discover(seller.url);
      counting.statuses.length = 0;
      await assert.rejects(
        strict(`${seller.url}/v1/chat/completions`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: chatRequest({ max_tokens: 16 }),
        }),
        (error) => isTollgateError(error) && /maxTimeoutSeconds/.test(error.message),
      );
      assert.deepEqual(counting.statuses, [402], "asked for the 402, signed nothing");
    } finally {
      await seller.close();
    }
  });

  test("learns the prices from a 402 and pays the next request for the same model at once", async (t) => {
    const counting = countingFetch();
    const payingFetch = buyerFetch({ fetch: counting, buyer: 2 });
    await payingFetch.spendStore();
    let startedAt = performance.now();
    await (await postChat(payingFetch)).arrayBuffer();
    const withRoundTripMs = performance.now() - startedAt;
    assert.deepEqual(counting.statuses, [402, 200]);
    counting.statuses.length = 0;
    startedAt = performance.now();
    await (
      await postChat(payingFetch, { messages: [{ role: "user", content: "another question" }] })
    ).arrayBuffer();
    const paidAtOnceMs = performance.now() - startedAt;
    assert.deepEqual(counting.statuses, [200]);
    t.diagnostic(
      `402 then paid: ${withRoundTripMs.toFixed(0)} ms; paid at once: ${paidAtOnceMs.toFixed(0)} ms`,
    );
  });

  test("the openai client streams through the paying fetch and the stream's receipt is recorded", async () => {
    const log = eventLog();
    const payingFetch = buyerFetch({ onEvent: log.onEvent, buyer: 1 });
    h.backend.set({ responseTokens: 20, tokensPerSecond: 400 });
    const client = new OpenAI({
      apiKey: "x402",
      baseURL: `${h.gateway.url}/v1`,
      fetch: payingFetch,
      maxRetries: 0,
    });
    const stream = await client.chat.completions.create({
      model: mockModelId,
      messages: [{ role: "user", content: "stream please" }],
      max_tokens: 64,
      stream: true,
    });
    let text = "";
    let chunks = 0;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? "";
      chunks += 1;
    }
    assert.equal(text, mockCompletionText(20));
    assert.ok(chunks >= 20, "tokens arrived as separate chunks");
    const [receipt] = log.of("receipt");
    assert.equal(receipt?.source, "stream");
    assert.equal(receipt?.usage?.completionTokens, 20);
    assert.equal(receipt?.chargedAtomic, expectedCharge(receipt!.usage!.promptTokens, 20));
    const row = await (await payingFetch.spendStore()).reservation(receipt!.paymentId);
    assert.equal(row?.status, "settled");
    assert.equal(row?.chargedAtomic, receipt?.chargedAtomic);
  });

  test("pays an exact-priced model: the fixed price, with EIP-3009", async () => {
    const exact = await startGatewayHarness({
      devnet: h.devnet,
      model: { inputPrice: undefined, outputPrice: undefined, exactPrice: "1500" },
    });
    try {
      const log = eventLog();
      const payingFetch = buyerFetch({ onEvent: log.onEvent, buyer: 2 });
      const buyer = h.devnet.accounts.buyers[2]!;
      const balanceBefore = await h.devnet.usdcBalance(buyer.address);
      const response = await payingFetch(`${exact.gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: chatRequest(),
      });
      assert.equal(response.status, 200);
      await response.json();
      await payingFetch.idle();
      assert.equal(log.of("authorized")[0]?.scheme, "exact");
      const [receipt] = log.of("receipt");
      assert.equal(receipt?.chargedAtomic, 1500n);
      assert.equal(log.of("overcharge").length, 0, "its receipt states the price it signed");
      const row = await (await payingFetch.spendStore()).reservation(receipt!.paymentId);
      assert.match(row?.nonce ?? "", /^0x[0-9a-fA-F]{64}$/, "an EIP-3009 nonce");
      assert.equal(await h.devnet.usdcBalance(buyer.address), balanceBefore - 1500n);
    } finally {
      await exact.close();
    }
  });

  test("a per-call cap below the maximum refuses before signing: nothing reserved, nothing moves", async () => {
    const log = eventLog();
    const payingFetch = buyerFetch({ policy: { perCall: "100" }, onEvent: log.onEvent, buyer: 2 });
    const buyer = h.devnet.accounts.buyers[2]!;
    const balanceBefore = await h.devnet.usdcBalance(buyer.address);
    const store = await payingFetch.spendStore();
    const spentBefore = (await store.daySpend()).countedAtomic;
    h.backend.clearRequests();
    await assert.rejects(postChat(payingFetch), (error: unknown) => {
      assert.ok(isTollgateError(error, "TOLLGATE_POLICY_REFUSED"));
      assert.equal(error.details.rule, "perCall");
      assert.equal(error.details.limitAtomic, 100n);
      assert.ok((error.details.askedAtomic as bigint) > 100n);
      return true;
    });
    assert.equal(log.of("authorized").length, 0, "nothing signed");
    assert.equal(h.backend.inferenceRequests.length, 0, "no inference");
    assert.equal((await store.daySpend()).countedAtomic, spentBefore, "nothing reserved");
    assert.equal(await h.devnet.usdcBalance(buyer.address), balanceBefore);
  });
});

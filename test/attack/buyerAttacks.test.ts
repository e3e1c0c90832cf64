import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { PERMIT2_ADDRESS } from "@x402/evm";
import { createWalletClient, erc20Abi, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { anvil } from "viem/chains";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { type GatewayHarness, startGatewayHarness } from "../support/gatewayHarness.js";
import { signHostilePayment } from "../support/hostileBuyer.js";
import { defaultMockBackendControls, mockModelId } from "../support/mockBackend.js";
import { finalRow, postJson, quoteOf } from "../support/paidRequests.js";

// Attacks a buyer can run with its own requests, signatures and connection.

let devnet: Devnet;
let h: GatewayHarness;
const CHAT = "/v1/chat/completions";
const COMPLETION_MODEL = "mock-completion";
const chat = (extra: Record<string, unknown> = {}) => ({
  model: mockModelId,
  messages: [{ role: "user", content: "tell me a short story" }],
  max_tokens: 20,
  ...extra,
});

before(async () => {
  devnet = await startDevnet({ buyers: 2 });
  h = await startGatewayHarness({
    devnet,
    model: { tokenizer: "o200k_base" },
    extraModels: (backendUrl) => [
      {
        id: COMPLETION_MODEL,
        kind: "completion",
        tokenizer: "o200k_base",
        backend: { baseUrl: backendUrl, model: mockModelId },
        inputPrice: "3000000",
        outputPrice: "15000000",
        maxOutputTokens: 256,
      },
      {
        // An operator names the tokenizer explicitly, as the tests' own config does.
        id: "gpt-4o-mini",
        tokenizer: "o200k_base",
        backend: { baseUrl: backendUrl, model: mockModelId },
        inputPrice: "150000",
        outputPrice: "600000",
        maxOutputTokens: 256,
      },
    ],
  });
});
after(async () => {
  await h?.close();
  await devnet?.stop();
});
afterEach(async () => {
  h.backend.set(defaultMockBackendControls);
  await h.backend.whenIdle();
});

describe("a hostile buyer", () => {
  test("concurrent requests cannot be served beyond what the payer's balance can settle", async () => {
    // Each authorization is for the request's maximum; the balance covers ~1.2 of them.
    const body = chat({ stream: true, max_tokens: 20 });
    const quote = await quoteOf(h, CHAT, body);
    const payer = await devnet.createBuyer((quote.amount * 12n) / 10n);
    h.backend.set({ responseTokens: 20, tokensPerSecond: 40 });
    const signatures = await Promise.all(
      Array.from({ length: 5 }, () =>
        signHostilePayment({ paymentRequired: quote.header, privateKey: payer.privateKey }),
      ),
    );
    const responses = await Promise.all(
      signatures.map((signature) => postJson(h, CHAT, body, { "payment-signature": signature })),
    );
    await Promise.all(responses.map((response) => response.text()));
    const served = responses.filter((response) => response.status === 200).length;
    await h.backend.whenIdle();
    let rows = await h.ledger.payments.recent({ limit: 5 });
    const final = (row: (typeof rows)[number]) => ["settled", "zero", "debt", "failed"].includes(row.status);
    for (let i = 0; i < 1_200 && !rows.every(final); i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      rows = await h.ledger.payments.recent({ limit: 5 });
    }
    assert.ok(rows.every(final), `every payment ended: ${rows.map((row) => row.status).join(", ")}`);
    const debts = rows.filter((row) => row.status === "debt");
    const unpaid = debts.reduce((sum, row) => sum + (row.chargeAtomic ?? 0n), 0n);
    // Observed: 5 served in full, 1 settled, 4 debts: the seller serves ~3.3 maxima for free.
    assert.equal(
      debts.length,
      0,
      `${served} of 5 served at once on a balance of 1.2 maxima; ${debts.length} debts, ${unpaid} atomic unpaid (max ${quote.amount})`,
    );
  });

  test("concurrent requests cannot be served beyond what the payer's Permit2 allowance can settle", async () => {
    // The balance is ample; the payer's own approve of Permit2 covers ~1.2 maxima.
    const body = chat({ stream: true, max_tokens: 20 });
    const quote = await quoteOf(h, CHAT, body);
    const payer = await devnet.createBuyer(quote.amount * 100n);
    const wallet = createWalletClient({
      account: privateKeyToAccount(payer.privateKey),
      chain: anvil,
      transport: http(devnet.rpcUrl),
    });
    await devnet.waitMined(
      await wallet.writeContract({
        address: devnet.contracts.usdc,
        abi: erc20Abi,
        functionName: "approve",
        args: [PERMIT2_ADDRESS, (quote.amount * 12n) / 10n],
      }),
    );
    h.backend.set({ responseTokens: 20, tokensPerSecond: 40 });
    const signatures = await Promise.all(
      Array.from({ length: 5 }, () =>
        signHostilePayment({ paymentRequired: quote.header, privateKey: payer.privateKey }),
      ),
    );
    const responses = await Promise.all(
      signatures.map((signature) => postJson(h, CHAT, body, { "payment-signature": signature })),
    );
    const texts = await Promise.all(responses.map((response) => response.text()));
    await h.backend.whenIdle();
    const ofPayer = async () =>
      (await h.ledger.payments.recent({ limit: 20 })).filter(
        (row) => row.payer.toLowerCase() === payer.address.toLowerCase(),
      );
    const final = (row: { status: string }) => ["settled", "zero", "debt", "failed"].includes(row.status);
    let rows = await ofPayer();
    for (let i = 0; i < 1_200 && !rows.every(final); i++) {
      await new Promise((resolve) => setTimeout(resolve, 25));
      rows = await ofPayer();
    }
    assert.ok(rows.every(final), `every payment ended: ${rows.map((row) => row.status).join(", ")}`);
    const served = responses.filter((response) => response.status === 200).length;
    assert.ok(served >= 1, "one request is served");
    assert.deepEqual(
      rows.map((row) => row.status),
      Array(served).fill("settled"),
      `${served} of 5 served at once on an allowance of 1.2 maxima: each served request settled, none a debt`,
    );
    const refused = texts.filter((_, i) => responses[i]!.status !== 200);
    for (const [i, response] of responses.entries())
      if (response.status !== 200) assert.equal(response.status, 402, texts[i] ?? "");
    assert.ok(
      refused.every((text) => /Permit2 allowance/.test(text)),
      `the refusals name the allowance: ${refused[0]}`,
    );
  });

  test("a buyer who hangs up after the backend took its prompt still pays for the prompt", async () => {
    // 2,000 prompt tokens; the first token comes 600 ms after the headers. The buyer leaves at the headers.
    h.backend.set({ responseTokens: 20, firstTokenDelayMs: 600 });
    h.backend.clearRequests();
    const body = chat({ stream: true, messages: [{ role: "user", content: "lorem ipsum ".repeat(1_000) }] });
    const payer = devnet.accounts.buyers[0]!;
    const quote = await quoteOf(h, CHAT, body);
    const signature = await signHostilePayment({
      paymentRequired: quote.header,
      privateKey: payer.privateKey,
    });
    const before = await devnet.usdcBalance(payer.address);
    const controller = new AbortController();
    const response = await fetch(`${h.gateway.url}${CHAT}`, {
      method: "POST",
      headers: { "content-type": "application/json", "payment-signature": signature },
      body: JSON.stringify(body),
      signal: controller.signal,
    });
    assert.equal(response.status, 200);
    controller.abort();
    await h.backend.whenIdle();
    assert.equal(h.backend.inferenceRequests.length, 1, "the backend received (and prefilled) the prompt");
    const row = await finalRow(h);
    // Observed: status failed, nothing charged; repeatable at will (each signature is free to make).
    assert.ok(
      (row.promptTokens ?? 0) > 0 && (await devnet.usdcBalance(payer.address)) < before,
      `row ${row.status}, prompt ${row.promptTokens}, charge ${row.chargeAtomic}: 2,000 prompt tokens served for free`,
    );
  });

  test("a completions suffix that is not a string is refused or priced", async () => {
    const base = { model: COMPLETION_MODEL, prompt: "def f(", max_tokens: 16 };
    const plain = await quoteOf(h, "/v1/completions", base);
    const long = "x = 1\n".repeat(20_000);
    for (const suffix of [[long], { text: long }]) {
      const response = await postJson(h, "/v1/completions", { ...base, suffix });
      const text = await response.text();
      if (response.status === 400) continue;
      assert.equal(response.status, 402, text);
      const smuggled = await quoteOf(h, "/v1/completions", { ...base, suffix });
      assert.ok(
        smuggled.amount > plain.amount,
        `a ${long.length}-byte suffix sent as ${Array.isArray(suffix) ? "an array" : "an object"} is forwarded and quoted ${smuggled.amount}, the same as no suffix (${plain.amount})`,
      );
    }
  });

  test("an image sent to gpt-4o-mini is bounded at gpt-4o-mini's image tokens even when a tokenizer is configured", async () => {
    const image = { type: "image_url", image_url: { url: "https://example.test/big.png", detail: "high" } };
    const body = {
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: [{ type: "text", text: "what is this?" }, image] }],
      max_tokens: 16,
    };
    const quote = await quoteOf(h, CHAT, body);
    const bound = Number(quote.pricing?.promptTokenBound);
    // imageTokenBound() is given the tokenizer name ("o200k_base"), not the model: 4,000 instead of 48,169.
    assert.ok(bound >= 48_169, `prompt bound ${bound} for one high-detail gpt-4o-mini image`);
  });

  test("unpaid quotes of 120 KB prompts let /health answer again and again while they are priced", async (t) => {
    const alpha = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const word = () =>
      Array.from({ length: 120 }, () => alpha[Math.floor(Math.random() * alpha.length)]).join("");
    // Just under the 128 KiB where the bound falls back to bytes: distinct mixed-case words, each BPE-merged.
    const bodies = Array.from({ length: 6 }, () =>
      chat({ messages: [{ role: "user", content: Array.from({ length: 1_000 }, word).join(" ") }] }),
    );
    // /health is asked again as soon as it answers. Pricing that held the event loop would let it
    // answer only between whole quotes (once in all, with six quotes sent together); pricing
    // that pauses lets it answer between slices of every quote.
    let quotesAnswered = 0;
    let healthBeforeLastQuote = 0;
    let quoting = true;
    const probe = (async () => {
      while (quoting) {
        const response = await fetch(`${h.gateway.url}/health`);
        await response.text();
        assert.equal(response.status, 200);
        if (quotesAnswered < bodies.length) healthBeforeLastQuote++;
      }
    })();
    const statuses = await Promise.all(
      bodies.map(async (body) => {
        const response = await postJson(h, CHAT, body);
        await response.text();
        quotesAnswered++;
        return response.status;
      }),
    );
    quoting = false;
    await probe;
    assert.deepEqual(statuses, [402, 402, 402, 402, 402, 402]);
    t.diagnostic(`/health answered ${healthBeforeLastQuote} time(s) before the last of 6 quotes`);
    assert.ok(
      healthBeforeLastQuote >= 5,
      `/health answered only ${healthBeforeLastQuote} time(s) while 6 unpaid 120 KB quotes were priced`,
    );
  });
});

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import Anthropic from "@anthropic-ai/sdk";
import { decodePaymentResponseHeader } from "@x402/core/http";
import { createPayingFetch } from "../src/buyer/index.js";
import { decodePaymentRequiredHeader, type StreamReceipt } from "../src/protocol/index.js";
import { expectSettledPayment, startApiModelHarness } from "./support/apiModelHarness.js";
import {
  expectedCharge,
  type GatewayHarness,
  officialPayingFetch,
  testPrices,
} from "./support/gatewayHarness.js";
import { mockCompletionText, mockModelId } from "./support/mockBackend.js";

const CACHE_READ_PER_MTOK = testPrices.inputPerMTokAtomic / 10n;
const CACHE_WRITE_PER_MTOK = (testPrices.inputPerMTokAtomic * 5n) / 4n;

let h: GatewayHarness;
before(async () => {
  h = await startApiModelHarness({
    id: "mock-claude",
    apis: ["messages"],
    model: { backend: { baseUrl: "http://127.0.0.1:1/v1" } },
    // Anthropic's own ratios: a cache read costs a tenth of an input token, a cache write 1.25 times one.
    extra: {
      prices: {
        cached_input_tokens: CACHE_READ_PER_MTOK.toString(),
        cache_write_input_tokens: CACHE_WRITE_PER_MTOK.toString(),
      },
    },
  });
});
after(async () => {
  await h?.close();
});

const json = { "content-type": "application/json" };

function anthropicClient(pay: typeof fetch): Anthropic {
  return new Anthropic({ apiKey: "unused", baseURL: h.gateway.url, fetch: pay, maxRetries: 0 });
}

const expectSettled = (payer: `0x${string}`, before: bigint, charge: bigint, transaction: string) =>
  expectSettledPayment(h, { route: "/v1/messages", payer, before, charge, transaction });

describe("POST /v1/messages (Anthropic Messages API)", () => {
  test("the official @anthropic-ai/sdk, paying through @x402/fetch, gets a message; charge = usage × prices = transfer = ledger row", async () => {
    const buyer = h.devnet.accounts.buyers[0]!;
    h.backend.set({ responseTokens: 9, tokensPerSecond: 0 });
    const before = await h.devnet.usdcBalance(buyer.address);
    const client = anthropicClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
    const { data: message, response } = await client.messages
      .create({
        model: "mock-claude",
        max_tokens: 40,
        system: "You answer briefly.",
        messages: [{ role: "user", content: [{ type: "text", text: "Tell me about toll roads" }] }],
      })
      .withResponse();
    assert.equal(message.type, "message");
    assert.equal(
      message.content[0]?.type === "text" ? message.content[0].text : undefined,
      mockCompletionText(9),
    );
    const settlement = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    const charge = expectedCharge(message.usage.input_tokens, message.usage.output_tokens);
    assert.equal(settlement.amount, charge.toString());
    const row = await expectSettled(buyer.address, before, charge, settlement.transaction);
    assert.deepEqual(row?.usage, {
      input_tokens: message.usage.input_tokens,
      output_tokens: message.usage.output_tokens,
      requests: 1,
    });
    const sent = h.backend.inferenceRequests.at(-1);
    assert.equal(sent?.path, "/v1/messages");
    assert.equal(
      (sent?.body as { max_tokens?: number } | undefined)?.max_tokens,
      40,
      "the authorized limit reaches the backend",
    );
  });

  test("prompt caching: cache reads and writes are charged at their own prices, and Tollgate's buyer checks the charge and disputes nothing", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    h.backend.set({ responseTokens: 9, tokensPerSecond: 0, promptCache: { readTokens: 6, writeTokens: 4 } });
    const overcharges: unknown[] = [];
    const receipts: bigint[] = [];
    const pay = createPayingFetch({
      privateKey: buyer.privateKey,
      dataDir: "memory://",
      onEvent: (event) => {
        if (event.type === "overcharge") overcharges.push(event);
        if (event.type === "receipt") receipts.push(event.chargedAtomic);
      },
    });
    try {
      const before = await h.devnet.usdcBalance(buyer.address);
      const response = await pay(`${h.gateway.url}/v1/messages`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({
          model: "mock-claude",
          max_tokens: 40,
          system: [
            {
              type: "text",
              text: "You answer briefly, from a long cached system prompt about toll roads.",
              cache_control: { type: "ephemeral" },
            },
          ],
          messages: [{ role: "user", content: "Tell me about toll roads and their booths" }],
        }),
      });
      assert.equal(response.status, 200);
      const message = (await response.json()) as {
        usage: {
          input_tokens: number;
          cache_read_input_tokens: number;
          cache_creation_input_tokens: number;
          output_tokens: number;
        };
      };
      await pay.idle();
      const { usage } = message;
      assert.equal(usage.cache_read_input_tokens, 6);
      assert.equal(usage.cache_creation_input_tokens, 4);
      const numerator =
        BigInt(usage.input_tokens) * testPrices.inputPerMTokAtomic +
        6n * CACHE_READ_PER_MTOK +
        4n * CACHE_WRITE_PER_MTOK +
        BigInt(usage.output_tokens) * testPrices.outputPerMTokAtomic;
      const charge = (numerator + 999_999n) / 1_000_000n;
      const settlement = decodePaymentResponseHeader(response.headers.get("payment-response")!);
      assert.equal(settlement.amount, charge.toString());
      const row = await expectSettled(buyer.address, before, charge, settlement.transaction);
      assert.deepEqual(row?.usage, {
        input_tokens: usage.input_tokens,
        cached_input_tokens: 6,
        cache_write_input_tokens: 4,
        output_tokens: usage.output_tokens,
        requests: 1,
      });
      // The maximum prices the whole prompt bound at the dearest prompt unit, the cache write.
      assert.ok(row && row.maxAtomic >= charge);
      assert.deepEqual(receipts, [charge]);
      assert.deepEqual(overcharges, [], "the buyer reads the cache writes as Anthropic reports them");

      // A request that asked for no caching pays for what its backend calls cache writes as input.
      const plainBefore = await h.devnet.usdcBalance(buyer.address);
      const plain = await pay(`${h.gateway.url}/v1/messages`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({
          model: "mock-claude",
          max_tokens: 40,
          messages: [{ role: "user", content: "Tell me about toll roads and their booths" }],
        }),
      });
      assert.equal(plain.status, 200);
      const plainUsage = ((await plain.json()) as { usage: typeof usage }).usage;
      await pay.idle();
      const writes = plainUsage.cache_creation_input_tokens;
      assert.ok(writes > 0, "the backend still reports writes");
      const plainCharge =
        (BigInt(plainUsage.input_tokens + writes) * testPrices.inputPerMTokAtomic +
          BigInt(plainUsage.cache_read_input_tokens) * CACHE_READ_PER_MTOK +
          BigInt(plainUsage.output_tokens) * testPrices.outputPerMTokAtomic +
          999_999n) /
        1_000_000n;
      const plainSettlement = decodePaymentResponseHeader(plain.headers.get("payment-response")!);
      assert.equal(plainSettlement.amount, plainCharge.toString());
      const plainRow = await expectSettled(
        buyer.address,
        plainBefore,
        plainCharge,
        plainSettlement.transaction,
      );
      assert.equal(plainRow?.usage?.cache_write_input_tokens, undefined);
      assert.deepEqual(overcharges, []);
    } finally {
      h.backend.set({ promptCache: undefined });
      await pay.close();
    }
  });

  test("extended thinking: the thinking Claude bills and shows only a summary of is charged as output, up to budget_tokens, and Tollgate's buyer disputes nothing; a backend's unseen output beyond the budget, or without thinking asked for, is not charged", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const hidden = 150;
    h.backend.set({
      responseTokens: 9,
      tokensPerSecond: 0,
      thinking: { summary: "Weigh the toll roads first.", hiddenTokens: hidden },
    });
    const overcharges: unknown[] = [];
    const pay = createPayingFetch({
      privateKey: buyer.privateKey,
      dataDir: "memory://",
      onEvent: (event) => {
        if (event.type === "overcharge") overcharges.push(event);
      },
    });
    const ask = (body: Record<string, unknown>) =>
      pay(`${h.gateway.url}/v1/messages`, {
        method: "POST",
        headers: json,
        body: JSON.stringify({
          model: "mock-claude",
          max_tokens: 256,
          messages: [{ role: "user", content: "Tell me about toll roads" }],
          ...body,
        }),
      });
    type Message = {
      content: { type: string; thinking?: string; text?: string }[];
      usage: { input_tokens: number; output_tokens: number };
    };
    try {
      // JSON: the thinking block's summary and the text are delivered; output_tokens counts 150 more.
      const before = await h.devnet.usdcBalance(buyer.address);
      const response = await ask({ thinking: { type: "enabled", budget_tokens: 200 } });
      assert.equal(response.status, 200);
      const message = (await response.json()) as Message;
      await pay.idle();
      assert.deepEqual(
        message.content.map((block) => block.type),
        ["thinking", "text"],
      );
      assert.ok(message.usage.output_tokens > hidden + 9);
      const charge = expectedCharge(message.usage.input_tokens, message.usage.output_tokens);
      const settlement = decodePaymentResponseHeader(response.headers.get("payment-response")!);
      assert.equal(settlement.amount, charge.toString(), "the whole thinking is charged");
      const row = await expectSettled(buyer.address, before, charge, settlement.transaction);
      assert.equal(row?.usage?.output_tokens, message.usage.output_tokens);

      // The official SDK's stream: the same, read from message_delta.
      const client = anthropicClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
      const stream = await client.messages.create({
        model: "mock-claude",
        max_tokens: 256,
        thinking: { type: "enabled", budget_tokens: 200 },
        messages: [{ role: "user", content: "Tell me about toll roads" }],
        stream: true,
      });
      let thinking = "";
      let outputTokens = 0;
      let receipt: StreamReceipt | undefined;
      for await (const event of stream) {
        if (event.type === "content_block_delta" && event.delta.type === "thinking_delta")
          thinking += event.delta.thinking;
        if (event.type === "message_delta") outputTokens = event.usage.output_tokens;
        if ((event as { type: string }).type === "x402_receipt")
          receipt = (event as unknown as { x402_receipt: StreamReceipt }).x402_receipt;
      }
      assert.equal(thinking, "Weigh the toll roads first.");
      assert.ok(receipt);
      assert.equal(outputTokens, message.usage.output_tokens);
      assert.equal(receipt.units?.output_tokens, outputTokens);
      assert.equal(receipt.amount, charge.toString());

      // Unseen output beyond the budget is held to it: the delivered summary and text, and the budget.
      const overBudget = await ask({ thinking: { type: "enabled", budget_tokens: hidden - 20 } });
      const overBudgetUsage = ((await overBudget.json()) as Message).usage;
      await pay.idle();
      const [overBudgetRow] = await h.ledger.payments.recent({ limit: 1 });
      assert.equal(overBudgetUsage.output_tokens, message.usage.output_tokens, "the backend said the same");
      const heldTo = Number(overBudgetRow?.usage?.output_tokens);
      assert.ok(
        heldTo >= 9 + hidden - 20 && heldTo < message.usage.output_tokens,
        `charged ${heldTo} of ${message.usage.output_tokens}`,
      );

      // A model that thinks unasked shows its thinking block: its thinking is charged, up to the limit.
      h.backend.set({
        thinking: { summary: "Weigh the toll roads first.", hiddenTokens: hidden, byDefault: true },
      });
      const unasked = await ask({});
      const unaskedMessage = (await unasked.json()) as Message;
      await pay.idle();
      assert.equal(unaskedMessage.content[0]?.type, "thinking");
      const [unaskedRow] = await h.ledger.payments.recent({ limit: 1 });
      assert.equal(unaskedRow?.usage?.output_tokens, unaskedMessage.usage.output_tokens);
      // Told not to think, it shows no thinking and none is believed.
      const disabled = await ask({ thinking: { type: "disabled" } });
      const disabledMessage = (await disabled.json()) as Message;
      await pay.idle();
      assert.deepEqual(
        disabledMessage.content.map((block) => block.type),
        ["text"],
      );
      const [disabledRow] = await h.ledger.payments.recent({ limit: 1 });
      assert.equal(disabledRow?.usage?.output_tokens, 9);

      // A request that asked for no thinking pays for its text alone, whatever its backend reports.
      h.backend.set({
        thinking: { summary: "Weigh the toll roads first.", hiddenTokens: hidden, reportUnasked: true },
      });
      const plain = await ask({});
      const plainMessage = (await plain.json()) as Message;
      await pay.idle();
      assert.deepEqual(
        plainMessage.content.map((block) => block.type),
        ["text"],
      );
      assert.equal(plainMessage.usage.output_tokens, 9 + hidden, "the backend claims unseen output");
      const [plainRow] = await h.ledger.payments.recent({ limit: 1 });
      assert.equal(plainRow?.usage?.output_tokens, 9, "only the 9 tokens delivered are charged");
      assert.deepEqual(overcharges, []);
    } finally {
      h.backend.set({ thinking: undefined });
      await pay.close();
    }
  });

  test("adaptive thinking with a max_tokens above the model's limit (even past 2^53) is charged its thinking, up to the limit the model is sold with", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    const hidden = 150;
    h.backend.set({
      responseTokens: 9,
      tokensPerSecond: 0,
      thinking: { summary: "Weigh the toll roads first.", hiddenTokens: hidden },
    });
    const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
    try {
      for (const maxTokens of [100_000, 1e20]) {
        const response = await pay(`${h.gateway.url}/v1/messages`, {
          method: "POST",
          headers: json,
          body: JSON.stringify({
            model: "mock-claude",
            max_tokens: maxTokens,
            thinking: { type: "adaptive" },
            messages: [{ role: "user", content: "Tell me about toll roads" }],
          }),
        });
        assert.equal(response.status, 200);
        const message = (await response.json()) as { usage: { output_tokens: number } };
        assert.ok(message.usage.output_tokens > hidden + 9);
        const [row] = await h.ledger.payments.recent({ limit: 1 });
        // Observed before at 1e20: charged the 15 tokens shown, none of the 150 the model thought unseen.
        assert.equal(
          row?.usage?.output_tokens,
          message.usage.output_tokens,
          `max_tokens ${maxTokens}: the whole thinking is charged`,
        );
      }
    } finally {
      h.backend.set({ thinking: undefined });
    }
  });

  test("the official SDK streams; the receipt arrives as a final event it passes through, after message_stop", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    h.backend.set({ responseTokens: 14, tokensPerSecond: 500 });
    const before = await h.devnet.usdcBalance(buyer.address);
    const client = anthropicClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
    const stream = await client.messages.create({
      model: "mock-claude",
      max_tokens: 64,
      messages: [{ role: "user", content: "Tell me about toll roads" }],
      stream: true,
    });
    let text = "";
    let inputTokens = 0;
    let outputTokens = 0;
    const types: string[] = [];
    let receipt: StreamReceipt | undefined;
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "message_start") inputTokens = event.message.usage.input_tokens;
      if (event.type === "content_block_delta" && event.delta.type === "text_delta") text += event.delta.text;
      if (event.type === "message_delta") outputTokens = event.usage.output_tokens;
      if ((event as { type: string }).type === "x402_receipt")
        receipt = (event as unknown as { x402_receipt: StreamReceipt }).x402_receipt;
    }
    assert.equal(text, mockCompletionText(14));
    assert.equal(types.at(-1), "x402_receipt");
    assert.equal(types.at(-2), "message_stop");
    assert.ok(receipt, "the receipt event reached the SDK's caller");
    const charge = expectedCharge(inputTokens, outputTokens);
    assert.equal(receipt.amount, charge.toString());
    assert.deepEqual(receipt.units, { input_tokens: inputTokens, output_tokens: outputTokens, requests: 1 });
    await expectSettled(buyer.address, before, charge, receipt.transaction);
  });

  test("the SDK's MessageStream helper accumulates the message across the receipt event", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    h.backend.set({ responseTokens: 6, tokensPerSecond: 0 });
    const receipts: bigint[] = [];
    const pay = createPayingFetch({
      privateKey: buyer.privateKey,
      dataDir: "memory://",
      onEvent: (event) => {
        if (event.type === "receipt") receipts.push(event.chargedAtomic);
      },
    });
    try {
      const client = anthropicClient(pay);
      const final = await client.messages
        .stream({
          model: "mock-claude",
          max_tokens: 32,
          messages: [{ role: "user", content: "hello there" }],
        })
        .finalMessage();
      assert.equal(
        final.content[0]?.type === "text" ? final.content[0].text : undefined,
        mockCompletionText(6),
      );
      assert.equal(final.stop_reason, "end_turn");
      await pay.idle();
      const [row] = await h.ledger.payments.recent({ limit: 1 });
      assert.deepEqual(receipts, [row?.chargeAtomic], "the paying fetch booked the receipt's charge");
    } finally {
      await pay.close();
    }
  });

  test("a backend that ignores max_tokens is cut at the authorized output and charged at most the maximum", async () => {
    const buyer = h.devnet.accounts.buyers[0]!;
    h.backend.set({ responseTokens: 200, tokensPerSecond: 0, ignoreOutputLimit: true });
    try {
      const client = anthropicClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
      const stream = await client.messages.create({
        model: "mock-claude",
        max_tokens: 10,
        messages: [{ role: "user", content: "go on" }],
        stream: true,
      });
      let deltas = 0;
      let receipt: StreamReceipt | undefined;
      for await (const event of stream) {
        if (event.type === "content_block_delta") deltas++;
        if ((event as { type: string }).type === "x402_receipt")
          receipt = (event as unknown as { x402_receipt: StreamReceipt }).x402_receipt;
      }
      assert.ok(deltas <= 10, `forwarded ${deltas} deltas past a limit of 10`);
      assert.ok(receipt);
      assert.ok(BigInt(receipt.amount) <= BigInt(receipt.maxAmount));
      assert.equal(receipt.usage.completion_tokens, deltas);
    } finally {
      h.backend.set({ ignoreOutputLimit: false });
    }
  });

  test("a backend that ignores max_tokens in one big delta: the delta is cut to the authorized output and forwarded, and those tokens are charged", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    h.backend.set({ responseTokens: 200, tokensPerSecond: 0, ignoreOutputLimit: true, tokensPerChunk: 50 });
    try {
      const client = anthropicClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
      const stream = await client.messages.create({
        model: "mock-claude",
        max_tokens: 10,
        messages: [{ role: "user", content: "go on" }],
        stream: true,
      });
      let text = "";
      let receipt: StreamReceipt | undefined;
      for await (const event of stream) {
        if (event.type === "content_block_delta" && event.delta.type === "text_delta")
          text += event.delta.text;
        if ((event as { type: string }).type === "x402_receipt")
          receipt = (event as unknown as { x402_receipt: StreamReceipt }).x402_receipt;
      }
      assert.equal(text, mockCompletionText(10), "the authorized 10 tokens of the 50-token delta");
      assert.ok(receipt);
      assert.equal(receipt.usage.completion_tokens, 10);
      assert.equal(receipt.amount, expectedCharge(receipt.usage.prompt_tokens, 10).toString());
    } finally {
      h.backend.set({ ignoreOutputLimit: false, tokensPerChunk: undefined });
    }
  });

  test("a JSON message past max_tokens is cut at the authorized output, stop_reason max_tokens; charge = transfer = ledger row", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    h.backend.set({ responseTokens: 200, tokensPerSecond: 0, ignoreOutputLimit: true });
    try {
      const before = await h.devnet.usdcBalance(buyer.address);
      const client = anthropicClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
      const { data: message, response } = await client.messages
        .create({ model: "mock-claude", max_tokens: 10, messages: [{ role: "user", content: "go on" }] })
        .withResponse();
      assert.equal(response.status, 200);
      assert.equal(message.stop_reason, "max_tokens");
      assert.equal(
        message.content[0]?.type === "text" ? message.content[0].text : undefined,
        mockCompletionText(10),
        "exactly the authorized 10 tokens are delivered",
      );
      const settlement = decodePaymentResponseHeader(response.headers.get("payment-response")!);
      const row = await expectSettled(
        buyer.address,
        before,
        BigInt(settlement.amount ?? "-1"),
        settlement.transaction,
      );
      assert.equal(row?.completionTokens, 10, "charged for the 10 delivered, not the 200 generated");
      assert.equal(settlement.amount, expectedCharge(Number(row?.usage?.input_tokens), 10).toString());
    } finally {
      h.backend.set({ ignoreOutputLimit: false });
    }
  });

  test("the 402 prices system, messages and tools, and the output limit from max_tokens", async () => {
    const body = {
      model: "mock-claude",
      max_tokens: 100,
      system: [{ type: "text", text: "Be brief." }],
      messages: [
        { role: "user", content: "What is the weather?" },
        {
          role: "assistant",
          content: [{ type: "tool_use", id: "toolu_1", name: "weather", input: { city: "Paris" } }],
        },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "sunny" }] },
      ],
      tools: [{ name: "weather", description: "the weather", input_schema: { type: "object" } }],
    };
    const response = await fetch(`${h.gateway.url}/v1/messages`, {
      method: "POST",
      headers: json,
      body: JSON.stringify(body),
    });
    assert.equal(response.status, 402);
    const required = decodePaymentRequiredHeader(response.headers.get("payment-required")!);
    assert.ok(required.ok);
    const pricing = required.paymentRequired.accepts[0]?.extra?.pricing as {
      promptTokenBound: number;
      maxOutputTokens: number;
    };
    assert.equal(pricing.maxOutputTokens, 100);
    const withoutTools = await fetch(`${h.gateway.url}/v1/messages`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ ...body, tools: undefined }),
    });
    const smaller = decodePaymentRequiredHeader(withoutTools.headers.get("payment-required")!);
    assert.ok(smaller.ok);
    const bound =
      (smaller.paymentRequired.accepts[0]?.extra?.pricing as { promptTokenBound: number } | undefined)
        ?.promptTokenBound ?? 0;
    assert.ok(pricing.promptTokenBound > bound, "tools count in the prompt bound");
    assert.ok(bound > 20, "system, tool use and tool result count in the prompt bound");
  });

  test("refusals come in Anthropic's error shape, naming what to change", async () => {
    const refused = await fetch(`${h.gateway.url}/v1/messages`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "mock-claude", messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(refused.status, 400);
    const body = (await refused.json()) as { type: string; error: { type: string; message: string } };
    assert.equal(body.type, "error");
    assert.equal(body.error.type, "invalid_request_error");
    assert.match(body.error.message, /max_tokens/);

    const unknown = await fetch(`${h.gateway.url}/v1/messages`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({ model: "nope", max_tokens: 5, messages: [{ role: "user", content: "hi" }] }),
    });
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { error: { type: string } }).error.type, "not_found_error");

    // A model whose backend speaks only chat completions is not served on /v1/messages.
    const wrongApi = await fetch(`${h.gateway.url}/v1/messages`, {
      method: "POST",
      headers: json,
      body: JSON.stringify({
        model: mockModelId,
        max_tokens: 5,
        messages: [{ role: "user", content: "hi" }],
      }),
    });
    assert.equal(wrongApi.status, 400);
    assert.match(((await wrongApi.json()) as { error: { message: string } }).error.message, /serves chat/);

    const client = anthropicClient(fetch);
    await assert.rejects(
      client.messages.create({
        model: "mock-claude",
        max_tokens: 5,
        messages: [
          { role: "user", content: [{ type: "document", source: { type: "url", url: "https://x" } }] },
        ],
      }),
      (error: unknown) =>
        error instanceof Anthropic.BadRequestError && /document by URL/.test(String(error.message)),
    );
  });
});

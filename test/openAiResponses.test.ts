import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { decodePaymentResponseHeader } from "@x402/core/http";
import OpenAI from "openai";
import type { StreamReceipt } from "../src/protocol/index.js";
import { expectSettledPayment, startApiModelHarness } from "./support/apiModelHarness.js";
import { expectedCharge, type GatewayHarness, officialPayingFetch } from "./support/gatewayHarness.js";
import { mockCompletionText } from "./support/mockBackend.js";
import { finalRow } from "./support/paidRequests.js";

let h: GatewayHarness;
before(async () => {
  h = await startApiModelHarness({ id: "mock-responses", apis: ["chat", "responses"] });
});
after(async () => {
  await h?.close();
});

function openAiClient(pay: typeof fetch): OpenAI {
  return new OpenAI({ apiKey: "unused", baseURL: `${h.gateway.url}/v1`, fetch: pay, maxRetries: 0 });
}

const expectSettled = (payer: `0x${string}`, before: bigint, charge: bigint, transaction: string) =>
  expectSettledPayment(h, { route: "/v1/responses", payer, before, charge, transaction });

describe("POST /v1/responses (OpenAI Responses API)", () => {
  test("the official openai client streams a response through @x402/fetch; the receipt event is yielded last", async () => {
    const buyer = h.devnet.accounts.buyers[0]!;
    h.backend.set({ responseTokens: 11, tokensPerSecond: 500 });
    const before = await h.devnet.usdcBalance(buyer.address);
    const client = openAiClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
    const stream = await client.responses.create({
      model: "mock-responses",
      instructions: "Answer briefly.",
      input: [{ role: "user", content: [{ type: "input_text", text: "Tell me about toll roads" }] }],
      max_output_tokens: 50,
      stream: true,
    });
    let text = "";
    let usage: { input_tokens: number; output_tokens: number } | undefined;
    let receipt: StreamReceipt | undefined;
    const types: string[] = [];
    for await (const event of stream) {
      types.push(event.type);
      if (event.type === "response.output_text.delta") text += event.delta;
      if (event.type === "response.completed") usage = event.response.usage ?? undefined;
      if ((event as { type: string }).type === "x402_receipt")
        receipt = (event as unknown as { x402_receipt: StreamReceipt }).x402_receipt;
    }
    assert.equal(text, mockCompletionText(11));
    assert.deepEqual(types.slice(-2), ["response.completed", "x402_receipt"]);
    assert.ok(usage && receipt);
    const charge = expectedCharge(usage.input_tokens, usage.output_tokens);
    assert.equal(receipt.amount, charge.toString());
    assert.deepEqual(receipt.units, {
      input_tokens: usage.input_tokens,
      output_tokens: usage.output_tokens,
      requests: 1,
    });
    await expectSettled(buyer.address, before, charge, receipt.transaction);
    const sent = h.backend.inferenceRequests.at(-1)?.body as Record<string, unknown> | undefined;
    assert.equal(sent?.max_output_tokens, 50);
    assert.equal(sent?.store, false, "nothing is kept on the backend for later unpaid use");
  });

  test("a JSON response carries PAYMENT-RESPONSE; the charge is its usage at the prices", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    h.backend.set({ responseTokens: 7, tokensPerSecond: 0 });
    const before = await h.devnet.usdcBalance(buyer.address);
    const client = openAiClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
    const { data, response } = await client.responses
      .create({ model: "mock-responses", input: "hello there", max_output_tokens: 20 })
      .withResponse();
    assert.equal(data.output_text, mockCompletionText(7));
    const settlement = decodePaymentResponseHeader(response.headers.get("payment-response")!);
    const charge = expectedCharge(data.usage!.input_tokens, data.usage!.output_tokens);
    assert.equal(settlement.amount, charge.toString());
    await expectSettled(buyer.address, before, charge, settlement.transaction);
  });

  test("a prompt count far below the input is charged at the gateway's count, unless the request let the backend drop input (truncation: auto)", async () => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const input = "the quick brown fox ".repeat(200);
    const pay = officialPayingFetch(buyer.privateKey, h.devnet.network);
    const promptCharged = async (extra: Record<string, unknown>) => {
      const response = await pay(`${h.gateway.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ model: "mock-responses", input, max_output_tokens: 20, ...extra }),
      });
      assert.equal(response.status, 200);
      await response.text();
      return (await finalRow(h)).promptTokens;
    };
    h.backend.set({ responseTokens: 3, tokensPerSecond: 0, usageOverride: { prompt_tokens: 40 } });
    try {
      const counted = await promptCharged({});
      assert.ok((counted ?? 0) >= 800, `the gateway's count, ${counted}, not 40`);
      assert.equal(await promptCharged({ truncation: "auto" }), 40, "the backend may have read only 40");
    } finally {
      h.backend.set({ usageOverride: undefined });
    }
  });

  test("a JSON response past max_output_tokens is cut at the authorized output, status incomplete; charge = transfer = ledger row", async () => {
    const buyer = h.devnet.accounts.buyers[2]!;
    h.backend.set({ responseTokens: 200, tokensPerSecond: 0, ignoreOutputLimit: true });
    try {
      const before = await h.devnet.usdcBalance(buyer.address);
      const client = openAiClient(officialPayingFetch(buyer.privateKey, h.devnet.network));
      const { data, response } = await client.responses
        .create({ model: "mock-responses", input: "go on", max_output_tokens: 10 })
        .withResponse();
      assert.equal(response.status, 200);
      assert.equal(
        data.output_text,
        mockCompletionText(10),
        "exactly the authorized 10 tokens are delivered",
      );
      assert.equal(data.status, "incomplete");
      assert.equal(data.incomplete_details?.reason, "max_output_tokens");
      const settlement = decodePaymentResponseHeader(response.headers.get("payment-response")!);
      await expectSettled(buyer.address, before, BigInt(settlement.amount ?? "-1"), settlement.transaction);
      const [row] = await h.ledger.payments.recent({ limit: 1 });
      assert.equal(row?.completionTokens, 10, "charged for the 10 delivered, not the 200 generated");
      assert.equal(settlement.amount, expectedCharge(Number(row?.usage?.input_tokens), 10).toString());
    } finally {
      h.backend.set({ ignoreOutputLimit: false });
    }
  });

  test("refuses what it cannot price, naming the field", async () => {
    for (const [body, field] of [
      [{ model: "mock-responses", input: "hi", previous_response_id: "resp_1" }, "previous_response_id"],
      [{ model: "mock-responses", input: [] }, "input"],
      [
        {
          model: "mock-responses",
          input: [{ role: "user", content: [{ type: "input_file", file_id: "file_1" }] }],
        },
        "input[0].content[0].file_data",
      ],
      [{ model: "mock-responses", input: "hi", max_output_tokens: -3 }, "max_output_tokens"],
      [{ model: "mock-responses", input: [{ type: "item_reference", id: "msg_1" }] }, "input[0].type"],
    ] as const) {
      const response = await fetch(`${h.gateway.url}/v1/responses`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      assert.equal(response.status, 400, JSON.stringify(body));
      const error = ((await response.json()) as { error: { param: string; message: string } }).error;
      assert.equal(error.param, field);
      assert.match(error.message, new RegExp(field.replace(/[[\]]/g, "\\$&")));
    }
  });
});

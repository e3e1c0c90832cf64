import assert from "node:assert/strict";
import { describe, test } from "node:test";
import OpenAI from "openai";
import { isTollgateError } from "../errors/index.js";
import { ReasonCode } from "./reasonCodes.js";
import {
  formatReceiptEvent,
  parseReceiptEvent,
  RECEIPT_FIELD,
  SSE_DONE_EVENT,
  type StreamReceipt,
} from "./receiptEvent.js";

const receipt: StreamReceipt = {
  success: true,
  amount: "1234",
  maxAmount: "50000",
  transaction: "0x8a3c7e2f00000000000000000000000000000000000000000000000000000001",
  network: "eip155:84532",
  payer: "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
  asset: "0x036CbD53842c5426634e7929541eC2318f3dCF7e",
  model: "gpt-4o-mini",
  usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
  prices: { inputPerMTokAtomic: "150000", outputPerMTokAtomic: "600000", fixedFeeAtomic: "1000" },
};

function contentChunk(content: string, finish: string | null = null): string {
  const chunk = {
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    created: 1,
    model: "gpt-4o-mini",
    choices: [{ index: 0, delta: { role: "assistant", content }, finish_reason: finish, logprobs: null }],
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

function usageChunk(): string {
  const usage = { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 };
  const chunk = {
    id: "chatcmpl-1",
    object: "chat.completion.chunk",
    created: 1,
    model: "gpt-4o-mini",
    choices: [],
    usage,
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

/** An OpenAI client whose fetch answers with the given SSE events, split into awkward pieces. */
function clientStreaming(events: string[]): OpenAI {
  const bytes = new TextEncoder().encode(events.join(""));
  const fetch = async (): Promise<Response> => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let offset = 0; offset < bytes.length; offset += 7)
          controller.enqueue(bytes.slice(offset, offset + 7));
        controller.close();
      },
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  };
  return new OpenAI({ apiKey: "x", baseURL: "http://127.0.0.1:9/v1", fetch, maxRetries: 0 });
}

const streamEvents = [
  contentChunk("Hello"),
  contentChunk(", world", "stop"),
  usageChunk(),
  formatReceiptEvent(receipt, { id: "chatcmpl-1", created: 1 }),
  SSE_DONE_EVENT,
];

describe("receipt event", () => {
  test("is one unnamed data event holding a chunk with no choices", () => {
    const text = formatReceiptEvent(receipt, { id: "chatcmpl-1", created: 7 });
    assert.match(text, /^data: \{.*\}\n\n$/s);
    assert.doesNotMatch(text, /^event:/m);
    const chunk = JSON.parse(text.slice("data: ".length));
    assert.deepEqual(chunk.choices, []);
    assert.equal(chunk.object, "chat.completion.chunk");
    assert.equal(chunk.id, "chatcmpl-1");
    assert.equal(chunk.error, undefined);
    assert.deepEqual(chunk[RECEIPT_FIELD], receipt);
  });

  test("round-trips through format and parse, from the full event or its data", () => {
    const text = formatReceiptEvent(receipt);
    for (const input of [text, text.slice("data: ".length).trim(), JSON.parse(text.slice(6))]) {
      const parsed = parseReceiptEvent(input);
      assert.ok(parsed.ok, parsed.ok ? "" : parsed.message);
      assert.deepEqual(parsed.receipt, receipt);
    }
  });

  test("the official openai client streams the content and yields the receipt chunk without error", async () => {
    const client = clientStreaming(streamEvents);
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let content = "";
    const receipts: StreamReceipt[] = [];
    for await (const chunk of stream) {
      content += chunk.choices[0]?.delta?.content ?? "";
      const parsed = parseReceiptEvent(chunk);
      if (parsed.ok) receipts.push(parsed.receipt);
      else assert.equal(parsed.reason, ReasonCode.receiptAbsent);
    }
    assert.equal(content, "Hello, world");
    assert.deepEqual(receipts, [receipt]);
  });

  test("the openai stream helper finishes its completion and keeps the receipt on it", async () => {
    const client = clientStreaming(streamEvents);
    const runner = client.chat.completions.stream({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "hi" }],
    });
    const completion = await runner.finalChatCompletion();
    assert.equal(completion.choices[0]?.message.content, "Hello, world");
    assert.equal(completion.id, "chatcmpl-1");
    // With the stream's id on the receipt chunk, the helper folds the receipt into the completion.
    assert.deepEqual((completion as unknown as Record<string, unknown>)[RECEIPT_FIELD], receipt);
  });

  test("a failed settlement is reported inside the receipt, which the client still tolerates", async () => {
    const failed = { ...receipt, success: false, errorReason: ReasonCode.settlementFailed, transaction: "" };
    const client = clientStreaming([contentChunk("ok", "stop"), formatReceiptEvent(failed), SSE_DONE_EVENT]);
    const stream = await client.chat.completions.create({ model: "m", messages: [], stream: true });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    const parsed = parseReceiptEvent(chunks.at(-1) as object);
    assert.ok(parsed.ok);
    assert.equal(parsed.receipt.errorReason, ReasonCode.settlementFailed);
  });

  test("ordinary chunks, [DONE] and junk are not receipts", () => {
    for (const input of [contentChunk("x"), "[DONE]", "not json", "{}", { choices: [] }]) {
      const parsed = parseReceiptEvent(input);
      assert.ok(!parsed.ok);
      assert.equal(parsed.reason, ReasonCode.receiptAbsent);
    }
  });

  test("a receipt charging more than the authorized maximum is invalid", () => {
    const parsed = parseReceiptEvent({ [RECEIPT_FIELD]: { ...receipt, amount: "50001" } });
    assert.ok(!parsed.ok);
    assert.equal(parsed.reason, ReasonCode.receiptInvalid);
    assert.equal(parsed.field, `${RECEIPT_FIELD}.amount`);
  });

  test("a malformed receipt names its field", () => {
    const parsed = parseReceiptEvent({
      [RECEIPT_FIELD]: { ...receipt, usage: { prompt_tokens: -1, completion_tokens: 3 } },
    });
    assert.ok(!parsed.ok);
    assert.equal(parsed.field, `${RECEIPT_FIELD}.usage.prompt_tokens`);
  });

  test("refuses to format an invalid receipt", () => {
    assert.throws(
      () => formatReceiptEvent({ ...receipt, amount: "1.5" }),
      (error) => isTollgateError(error, "TOLLGATE_INTERNAL"),
    );
  });
});

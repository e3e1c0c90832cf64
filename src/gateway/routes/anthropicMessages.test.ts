import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTollgateError } from "../../errors/index.js";
import { DOCUMENT_TOKENS, promptTokenBound } from "../../pricing/index.js";
import { parseGatewayConfig } from "../gatewayConfig.js";
import { reconcileUsage } from "../meterUsage.js";
import { anthropicMessages } from "./anthropicMessages.js";
import { pricingOf } from "./requestFields.js";

const [model] = parseGatewayConfig({
  network: "eip155:8453",
  payTo: "0x1111111111111111111111111111111111111111",
  models: [
    {
      id: "claude-test",
      backend: { baseUrl: "http://127.0.0.1:1/v1", apis: ["messages"] },
      inputPrice: "$3",
      outputPrice: "$15",
    },
  ],
}).models;

describe("the Messages route", () => {
  test("reads the prompt's usage from message_start and the output's from message_delta; cache reads are cached input, cache writes their own unit", async () => {
    const start = anthropicMessages.readChunk({
      type: "message_start",
      message: {
        usage: {
          input_tokens: 20,
          cache_read_input_tokens: 900,
          cache_creation_input_tokens: 80,
          output_tokens: 1,
        },
      },
    });
    assert.equal(start.delivered, false, "message_start delivers nothing");
    assert.equal(start.forward, true, "but is forwarded");
    const delta = anthropicMessages.readChunk({ type: "message_delta", usage: { output_tokens: 42 } });
    const usage = await reconcileUsage({
      reported: { ...(start.usage as object), ...(delta.usage as object) },
      deliveredOutputTokens: 42,
      choices: 1,
      maxOutputTokens: 100,
      promptTokenBound: 2_000,
      countPrompt: async () => 0,
      promptCountPlausible: async () => true,
      promptCache: true,
    });
    assert.deepEqual(usage.units, {
      input_tokens: 20,
      cached_input_tokens: 900,
      cache_write_input_tokens: 80,
      output_tokens: 42,
      requests: 1,
    });
  });

  test("a message_delta restates the prompt only with all its parts: input_tokens alone does not drop the cache counts", async () => {
    const start = anthropicMessages.readChunk({
      type: "message_start",
      message: {
        usage: {
          input_tokens: 10,
          cache_read_input_tokens: 300,
          cache_creation_input_tokens: 200,
          output_tokens: 1,
        },
      },
    });
    const reconcile = (delta: Record<string, unknown>) =>
      reconcileUsage({
        reported: { ...(start.usage as object), ...(anthropicMessages.readChunk(delta).usage as object) },
        deliveredOutputTokens: 7,
        choices: 1,
        maxOutputTokens: 100,
        promptTokenBound: 2_000,
        countPrompt: async () => 0,
        promptCountPlausible: async () => true,
        promptCache: true,
      });
    const expected = {
      input_tokens: 10,
      cached_input_tokens: 300,
      cache_write_input_tokens: 200,
      output_tokens: 7,
      requests: 1,
    };
    const inputOnly = await reconcile({
      type: "message_delta",
      usage: { input_tokens: 10, output_tokens: 7 },
    });
    assert.deepEqual(inputOnly.units, expected);
    // Cumulative counts in full (Anthropic's newer deltas) restate the same prompt.
    const full = await reconcile({
      type: "message_delta",
      usage: {
        input_tokens: 10,
        cache_read_input_tokens: 300,
        cache_creation_input_tokens: 200,
        output_tokens: 7,
      },
    });
    assert.deepEqual(full.units, expected);
    // A restatement with a part that is no count is no count of the prompt: the gateway counts it (0 here).
    const negative = await reconcile({
      type: "message_delta",
      usage: {
        input_tokens: 510,
        cache_read_input_tokens: 0,
        cache_creation_input_tokens: -200,
        output_tokens: 7,
      },
    });
    assert.equal(negative.promptSource, "gateway");
    assert.deepEqual(negative.units, { input_tokens: 0, output_tokens: 7, requests: 1 });
  });

  test("meters text, thinking and tool input as output; ping is neither forwarded nor billed", () => {
    const text = anthropicMessages.readChunk({
      type: "content_block_delta",
      index: 0,
      delta: { type: "text_delta", text: "Hello" },
    });
    assert.deepEqual(text.pieces, [{ choice: 0, text: "Hello" }]);
    const thinking = anthropicMessages.readChunk({
      type: "content_block_delta",
      index: 0,
      delta: { type: "thinking_delta", thinking: "hmm" },
    });
    assert.deepEqual(thinking.pieces, [{ choice: 0, text: "hmm" }]);
    const tool = anthropicMessages.readChunk({
      type: "content_block_delta",
      index: 1,
      delta: { type: "input_json_delta", partial_json: '{"city":' },
    });
    assert.deepEqual(tool.pieces, [{ choice: 0, text: '{"city":' }]);
    const ping = anthropicMessages.readChunk({ type: "ping" });
    assert.equal(ping.forward, false);
    assert.equal(ping.pieces.length, 0);
    const error = anthropicMessages.readChunk({
      type: "error",
      error: { type: "overloaded_error", message: "busy" },
    });
    assert.equal(error.error, "busy");
  });

  test("bounds every content block type; an image counts as an image, not as its base64", async () => {
    const bound = async (content: unknown) =>
      promptTokenBound({
        ...anthropicMessages.prompt(
          anthropicMessages.readRequest({
            model: "claude-test",
            max_tokens: 10,
            messages: [{ role: "user", content }],
          }),
        ),
        ...pricingOf(model!),
      });
    const small = await bound("hi");
    const image = await bound([
      { type: "image", source: { type: "base64", media_type: "image/png", data: "A".repeat(200_000) } },
    ]);
    assert.ok(image > small && image < 100_000, `an image bounded at ${image}`);
    const pdf = await bound([
      {
        type: "document",
        source: { type: "base64", media_type: "application/pdf", data: "B".repeat(5_000) },
      },
    ]);
    // A few kilobytes of compressed PDF can read as a hundred thousand tokens: its bytes do not bound it.
    assert.ok(pdf >= DOCUMENT_TOKENS, `an inline PDF counts as much as a context window may hold (${pdf})`);
    const text = await bound([
      {
        type: "document",
        source: { type: "text", media_type: "text/plain", data: "the quick brown fox ".repeat(50) },
      },
    ]);
    assert.ok(text < 2_000, `a plain-text document counts as its text, by its bytes here (${text})`);
    const nested = await bound([
      {
        type: "tool_result",
        tool_use_id: "t",
        content: [{ type: "image", source: { type: "url", url: "https://example.com/a.png" } }],
      },
    ]);
    assert.ok(nested > small + 1_000, "an image inside a tool result counts as an image");
    const url = { type: "image", source: { type: "url", url: "https://example.com/a.png" } };
    const inDocument = await bound([
      { type: "document", source: { type: "content", content: Array.from({ length: 100 }, () => url) } },
    ]);
    const alone = await bound(Array.from({ length: 100 }, () => url));
    assert.ok(
      inDocument >= alone - 100 && inDocument > 100 * 1_000,
      `100 images inside a document of content blocks count as 100 images (${inDocument}; alone ${alone})`,
    );
    await assert.rejects(
      () => bound([{ type: "document", source: { type: "url", url: "https://example.com/a.pdf" } }]),
      (e) =>
        isTollgateError(e, "TOLLGATE_REQUEST_INVALID") && e.details.field === "messages[0].content[0].source",
    );
  });

  test("max_tokens must be a number: null would leave adaptive thinking without its allowance", () => {
    for (const max_tokens of [undefined, null, "100"])
      assert.throws(
        () =>
          anthropicMessages.readRequest({
            model: "claude-test",
            max_tokens,
            thinking: { type: "adaptive" },
            messages: [{ role: "user", content: "hi" }],
          }),
        (e) => isTollgateError(e, "TOLLGATE_REQUEST_INVALID") && e.details.field === "max_tokens",
      );
  });

  test("a streamed citation is not output: Anthropic bills none of it", () => {
    const cited = anthropicMessages.readChunk({
      type: "content_block_delta",
      index: 0,
      delta: {
        type: "citations_delta",
        citation: { type: "char_location", cited_text: "x".repeat(1_300), document_index: 0 },
      },
    });
    assert.deepEqual(cited.pieces.map((piece) => piece.text).join(""), "");
  });

  test("sends the backend the authorized max_tokens, whatever the request asked", () => {
    const request = anthropicMessages.readRequest({
      model: "claude-test",
      max_tokens: 999,
      metadata: { user_id: "u" },
      messages: [{ role: "user", content: "hi" }],
    });
    const body = anthropicMessages.backendBody(request, model!, 64);
    assert.equal(body.max_tokens, 64);
    assert.equal(body.model, "claude-test");
    assert.equal("metadata" in body, false, "ignored fields are not forwarded");
    assert.throws(
      () => anthropicMessages.readRequest({ model: "claude-test", max_tokens: 5, messages: [], top_x: 1 }),
      (e) => isTollgateError(e, "TOLLGATE_REQUEST_INVALID") && e.details.field === "top_x",
    );
  });

  test("a request with cache_control asks for prompt caching; a one-hour cache write is refused, naming the fix", () => {
    const marked = (cacheControl: unknown) => ({
      model: "claude-test",
      max_tokens: 5,
      system: [{ type: "text", text: "long rules", cache_control: cacheControl }],
      messages: [
        {
          role: "user",
          content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "text", text: "x" }] }],
        },
      ],
    });
    assert.equal(
      anthropicMessages.readRequest({
        model: "claude-test",
        max_tokens: 5,
        messages: [{ role: "user", content: "hi" }],
      }).promptCache,
      false,
    );
    assert.equal(anthropicMessages.readRequest(marked({ type: "ephemeral" })).promptCache, true);
    assert.equal(anthropicMessages.readRequest(marked({ type: "ephemeral", ttl: "5m" })).promptCache, true);
    // A marker deep in a tool result's content counts too.
    const deep = marked(undefined);
    (deep.messages[0]!.content[0]!.content[0] as Record<string, unknown>).cache_control = {
      type: "ephemeral",
    };
    assert.equal(anthropicMessages.readRequest(deep).promptCache, true);
    // Automatic caching: the request's own marker asks for caching too, and is held to the same ttl.
    const automatic = (cacheControl: unknown) =>
      anthropicMessages.readRequest({
        model: "claude-test",
        max_tokens: 5,
        messages: [{ role: "user", content: "hi" }],
        cache_control: cacheControl,
      });
    assert.equal(automatic({ type: "ephemeral" }).promptCache, true);
    assert.deepEqual(
      automatic({ type: "ephemeral" }).fields.cache_control,
      { type: "ephemeral" },
      "forwarded",
    );
    assert.throws(
      () => automatic({ type: "ephemeral", ttl: "1h" }),
      (e) => isTollgateError(e, "TOLLGATE_REQUEST_INVALID") && e.details.field === "cache_control",
    );
    assert.throws(
      () => anthropicMessages.readRequest(marked({ type: "ephemeral", ttl: "1h" })),
      (e) =>
        isTollgateError(e, "TOLLGATE_REQUEST_INVALID") &&
        e.details.field === "system[0].cache_control" &&
        /only 5-minute prompt-cache writes are priced/.test(e.shortMessage),
    );
  });

  test("extended thinking lets the model think unseen up to its budget (the output limit when adaptive); a thinking shape it cannot bound is refused, naming the shapes", () => {
    const read = (thinking: unknown) =>
      anthropicMessages.readRequest({
        model: "claude-test",
        max_tokens: 4_000,
        messages: [{ role: "user", content: "hi" }],
        ...(thinking === undefined ? {} : { thinking }),
      }).hiddenOutputTokens;
    assert.equal(read(undefined), undefined, "said nothing of: a thinking block shown decides");
    assert.equal(read({ type: "disabled" }), 0);
    assert.equal(read({ type: "enabled", budget_tokens: 1_024 }), 1_024);
    assert.equal(read({ type: "adaptive" }), 4_000);
    const refused = (thinking: unknown, field: string, words: RegExp) =>
      assert.throws(
        () => read(thinking),
        (e) =>
          isTollgateError(e, "TOLLGATE_REQUEST_INVALID") &&
          e.details.field === field &&
          words.test(e.shortMessage),
      );
    refused({ type: "enabled" }, "thinking.budget_tokens", /must be a positive integer/);
    refused({ type: "enabled", budget_tokens: -5 }, "thinking.budget_tokens", /must be a positive integer/);
    refused({ type: "enabled", budget_tokens: 1.5 }, "thinking.budget_tokens", /must be a positive integer/);
    refused({ type: "deep" }, "thinking.type", /"enabled" with budget_tokens, "adaptive" or "disabled"/);
    refused("on", "thinking", /must be an object/);
    // Effort, adaptive thinking's companion, is forwarded; an output format (a prompt of its own) is not sold.
    const withConfig = (outputConfig: unknown) =>
      anthropicMessages.readRequest({
        model: "claude-test",
        max_tokens: 4_000,
        messages: [{ role: "user", content: "hi" }],
        thinking: { type: "adaptive" },
        output_config: outputConfig,
      });
    assert.deepEqual(withConfig({ effort: "low" }).fields.output_config, { effort: "low" });
    for (const [config, field] of [
      [{ effort: "low", format: { type: "json_schema", schema: {} } }, "output_config"],
      ["low", "output_config"],
      [{ effort: 3 }, "output_config.effort"],
    ] as const)
      assert.throws(
        () => withConfig(config),
        (e) => isTollgateError(e, "TOLLGATE_REQUEST_INVALID") && e.details.field === field,
      );
    // The budget is part of max_tokens: one the model's output limit cannot hold is refused at the quote.
    const body = (maxTokens: number, budget: number) =>
      anthropicMessages.backendBody(
        anthropicMessages.readRequest({
          model: "claude-test",
          max_tokens: maxTokens,
          messages: [{ role: "user", content: "hi" }],
          thinking: { type: "enabled", budget_tokens: budget },
        }),
        model!,
        Math.min(maxTokens, 4_096),
      );
    assert.equal(body(16_000, 4_000).max_tokens, 4_096);
    assert.throws(
      () => body(16_000, 10_000),
      (e) =>
        isTollgateError(e, "TOLLGATE_REQUEST_INVALID") &&
        e.details.field === "thinking.budget_tokens" &&
        /not below the output limit 4096/.test(e.shortMessage),
    );
  });

  test("a thinking block marks hidden output, in a stream and a whole message; a redacted block's encrypted data is not counted as text", () => {
    const start = (block: Record<string, unknown>) =>
      anthropicMessages.readChunk({ type: "content_block_start", index: 0, content_block: block });
    assert.equal(start({ type: "thinking", thinking: "" }).hiddenOutput, true);
    const redacted = start({ type: "redacted_thinking", data: "EuYBCkQYAiJA".repeat(300) });
    assert.equal(redacted.hiddenOutput, true);
    assert.deepEqual(redacted.pieces, [], "encrypted data is not generated text");
    assert.equal(start({ type: "text", text: "" }).hiddenOutput, undefined);
    const delta = anthropicMessages.readChunk({
      type: "content_block_delta",
      index: 0,
      delta: { type: "thinking_delta", thinking: "Let me weigh" },
    });
    assert.deepEqual(delta.pieces, [{ choice: 0, text: "Let me weigh" }], "the summary is delivered output");
    const message = (content: unknown[]) =>
      anthropicMessages.readAnswer({
        type: "message",
        content,
        usage: { input_tokens: 3, output_tokens: 9 },
      });
    assert.equal(
      message([
        { type: "redacted_thinking", data: "abc" },
        { type: "text", text: "hi" },
      ]).hiddenOutput,
      true,
    );
    assert.equal(message([{ type: "text", text: "hi" }]).hiddenOutput, undefined);
  });
});

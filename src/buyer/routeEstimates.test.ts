import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import {
  costOfUnits,
  maxCostOfUnits,
  messagesPromptBody,
  promptTokenBound,
  responsesPromptBody,
  type UnitPrices,
} from "../pricing/index.js";
import { checkOffer } from "./checkOffer.js";
import { buyerPromptBound, readInferenceRequest } from "./inferenceRequest.js";
import { estimateRequest, type QuotedPrice } from "./quotedPrice.js";
import { reportedUsageOf } from "./reportedUsage.js";
import { parseSpendingPolicy } from "./spendingPolicy.js";
import { verifyCharge } from "./verifyCharge.js";

const tokenUnits: UnitPrices = { input_tokens: 3_000_000n, output_tokens: 15_000_000n };
const quoted = (units: UnitPrices, extra: Partial<QuotedPrice> = {}): QuotedPrice => ({
  inputPerMTokAtomic: units.input_tokens ?? 0n,
  outputPerMTokAtomic: units.output_tokens ?? 0n,
  fixedFeeAtomic: units.requests ?? 0n,
  maxOutputTokens: 256,
  units,
  ...extra,
});

function request(path: string, body: Record<string, unknown>) {
  const parsed = readInferenceRequest(`http://127.0.0.1:8402/v1/${path}`, JSON.stringify(body));
  assert.ok(parsed, path);
  return parsed;
}

const messagesBody = {
  model: "claude-x",
  max_tokens: 40,
  system: [{ type: "text", text: "You answer briefly." }],
  messages: [
    {
      role: "user",
      content: [
        { type: "text", text: "What is on this page?" },
        { type: "image", source: { type: "base64", media_type: "image/png", data: "iVBORw0KGgo=" } },
        { type: "document", source: { type: "base64", media_type: "application/pdf", data: "JVBERi0x" } },
      ],
    },
    { role: "assistant", content: [{ type: "tool_use", id: "t1", name: "look", input: { page: 1 } }] },
    {
      role: "user",
      content: [
        { type: "tool_result", tool_use_id: "t1", content: [{ type: "text", text: "a toll booth" }] },
      ],
    },
  ],
  tools: [{ name: "look", description: "Looks at a page", input_schema: { type: "object" } }],
};

const responsesBody = {
  model: "gpt-4o",
  max_output_tokens: 64,
  instructions: "Answer briefly.",
  input: [
    {
      role: "user",
      content: [
        { type: "input_text", text: "Describe these" },
        { type: "input_image", image_url: "data:image/png;base64,iVBORw0KGgo=" },
        { type: "input_file", filename: "a.pdf", file_data: "data:application/pdf;base64,JVBERi0x" },
      ],
    },
    { type: "function_call", call_id: "c1", name: "look", arguments: '{"page":1}' },
    { type: "function_call_output", call_id: "c1", output: "a toll booth" },
  ],
  tools: [{ type: "function", name: "look", parameters: { type: "object" } }],
};

describe("the buyer's own bounds on /v1/messages and /v1/responses", () => {
  test("a Messages request is bounded by the gateway's walk of system, every block type and tools; the output limit is max_tokens", async () => {
    const inference = request("messages", messagesBody);
    assert.equal(inference.kind, "messages");
    assert.equal(inference.requestedOutputTokens, 40);
    const bound = await buyerPromptBound(inference);
    assert.equal(
      bound,
      await promptTokenBound({ kind: "chat", body: messagesPromptBody(messagesBody), model: "claude-x" }),
    );
    const withoutTools = await buyerPromptBound(request("messages", { ...messagesBody, tools: undefined }));
    assert.ok(bound !== undefined && withoutTools !== undefined && bound > withoutTools, "tools are prompt");
    const estimate = await estimateRequest(inference, quoted(tokenUnits));
    assert.ok(estimate);
    assert.equal(estimate.outputTokens, 40);
    assert.equal(estimate.completions, 1);
    assert.equal(
      estimate.expectedMaxAtomic,
      maxCostOfUnits({ inputTokens: bound, outputTokens: 40 }, tokenUnits),
    );
  });

  test("a Responses request is bounded over instructions and input items of every type; the output limit is max_output_tokens", async () => {
    const inference = request("responses", responsesBody);
    assert.equal(inference.kind, "responses");
    assert.equal(inference.requestedOutputTokens, 64);
    const bound = await buyerPromptBound(inference);
    assert.equal(
      bound,
      await promptTokenBound({ kind: "chat", body: responsesPromptBody(responsesBody), model: "gpt-4o" }),
    );
    const plain = await buyerPromptBound(request("responses", { model: "gpt-4o", input: "Describe these" }));
    assert.ok(bound !== undefined && plain !== undefined && bound > plain);
    const estimate = await estimateRequest(inference, quoted(tokenUnits, { maxOutputTokens: 50 }));
    assert.equal(estimate?.outputTokens, 50, "never above the seller's limit");
  });

  test("a moderation request is bounded as the gateway prices it: text inputs as an embeddings input, multimodal items as one message; no output", async () => {
    const units: UnitPrices = { input_tokens: 10_000n, requests: 100n };
    const texts = request("moderations", { model: "mod", input: ["drive safely", "pay the toll"] });
    assert.equal(texts.kind, "moderation");
    const textBound = await promptTokenBound({
      kind: "embedding",
      body: { input: ["drive safely", "pay the toll"] },
      model: "mod",
    });
    assert.equal(await buyerPromptBound(texts), textBound);
    const estimate = await estimateRequest(texts, quoted(units));
    assert.equal(estimate?.outputTokens, 0);
    // Its input at $0.01 per 1M tokens, rounded up, and the fee of one request.
    assert.equal(estimate?.expectedMaxAtomic, 100n + (BigInt(textBound) * 10_000n + 999_999n) / 1_000_000n);
    const items = [
      { type: "text", text: "a toll booth" },
      { type: "image_url", image_url: { url: "https://example.com/a.png" } },
    ];
    const multimodal = request("moderations", { model: "mod", input: items });
    assert.equal(
      await buyerPromptBound(multimodal),
      await promptTokenBound({
        kind: "chat",
        body: { messages: [{ role: "user", content: items }] },
        model: "mod",
      }),
      "an image counts as an image, not as its URL's bytes",
    );
  });

  test("a request the gateway cannot price either (a document by URL, an image by file id) has no estimate", async () => {
    const byUrl = request("messages", {
      ...messagesBody,
      messages: [
        { role: "user", content: [{ type: "document", source: { type: "url", url: "https://x" } }] },
      ],
    });
    assert.equal(await buyerPromptBound(byUrl), undefined);
    const byId = request("responses", {
      model: "gpt-4o",
      input: [{ role: "user", content: [{ type: "input_image", file_id: "file-1" }] }],
    });
    assert.equal(await estimateRequest(byId, quoted(tokenUnits)), undefined);
  });
});

describe("per-image and per-second offers", () => {
  test("an image request's maximum is n × the quoted image price (plus its prompt where priced)", async () => {
    const inference = request("images/generations", {
      model: "img",
      prompt: "a toll booth",
      n: 3,
      size: "256x256",
    });
    assert.equal(inference.kind, "image");
    const estimate = await estimateRequest(inference, quoted({ images: 10_000n }));
    assert.equal(estimate?.images, 3);
    assert.equal(estimate?.outputTokens, 0);
    assert.equal(estimate?.expectedMaxAtomic, 30_000n);
    assert.equal(
      await estimateRequest(inference, quoted({ input_tokens: 1n })),
      undefined,
      "no image price, no estimate",
    );
    const one = request("images/generations", { model: "img", prompt: "a toll booth" });
    assert.equal(
      (await estimateRequest(one, quoted({ images: 10_000n })))?.expectedMaxAtomic,
      10_000n,
      "n defaults to 1",
    );
  });

  test("a compute-priced request's maximum is the authorization's life × the price per second", async () => {
    const inference = request("chat/completions", {
      model: "gpu",
      messages: [{ role: "user", content: "count" }],
      max_tokens: 100,
    });
    const price = quoted({ compute_ms: 3_600n }, { timeBoundMs: 300_000 });
    const estimate = await estimateRequest(inference, price);
    assert.equal(estimate?.computeMsBound, 300_000);
    assert.equal(estimate?.expectedMaxAtomic, 300n * 3_600n);
    assert.equal(await estimateRequest(inference, { ...price, timeBoundMs: undefined }), undefined);
  });

  test("an image charge is checked against the images returned × the price, and never more images than asked", async () => {
    const price = quoted({ images: 10_000n });
    const estimate = await estimateRequest(
      request("images/generations", { model: "img", prompt: "a toll booth", n: 2 }),
      price,
    );
    assert.ok(estimate);
    const usage = reportedUsageOf({
      kind: "image",
      json: { data: [{ b64_json: "x" }] },
      promptTokenBound: 10,
    });
    assert.ok(usage);
    assert.deepEqual(verifyCharge({ chargedAtomic: 10_000n, maxAtomic: 20_000n, usage, price, estimate }), {
      ok: true,
      justifiedAtomic: 10_000n,
    });
    const twice = verifyCharge({ chargedAtomic: 20_000n, maxAtomic: 20_000n, usage, price, estimate });
    assert.equal(!twice.ok && twice.reason, "above_usage", "one image returned, two charged");
    const inflated = { ...usage, units: { images: 5 } };
    const verdict = verifyCharge({
      chargedAtomic: 50_000n,
      maxAtomic: 50_000n,
      usage: inflated,
      price,
      estimate,
    });
    assert.equal(!verdict.ok && verdict.reason, "usage_above_bound", "five images reported, two asked for");
  });

  test("a compute charge must equal compute_ms × the price; compute_ms past the time bound is not believed", async () => {
    const price = quoted({ compute_ms: 3_600n }, { timeBoundMs: 1_000 });
    const estimate = await estimateRequest(
      request("chat/completions", { model: "gpu", messages: [{ role: "user", content: "x" }] }),
      price,
    );
    assert.ok(estimate);
    const usage = { promptTokens: 3, completionTokens: 12, units: { compute_ms: 217, requests: 1 } };
    const charge = costOfUnits({ compute_ms: 217 }, { compute_ms: 3_600n });
    assert.equal(charge, 782n);
    assert.ok(verifyCharge({ chargedAtomic: charge, maxAtomic: 3_600n, usage, price, estimate }).ok);
    const over = verifyCharge({ chargedAtomic: charge + 1n, maxAtomic: 3_600n, usage, price, estimate });
    assert.equal(!over.ok && over.reason, "above_usage");
    const long = { ...usage, units: { compute_ms: 2_000 } };
    const past = verifyCharge({ chargedAtomic: 7_200n, maxAtomic: 7_200n, usage: long, price, estimate });
    assert.equal(!past.ok && past.reason, "usage_above_bound");
  });

  test("cache writes are owed only by a request that asked for caching; a stated request count is held to one", async () => {
    const price = quoted({ ...tokenUnits, cache_write_input_tokens: 3_750_000n, requests: 1_000n });
    const json = {
      usage: {
        input_tokens: 100,
        cache_creation_input_tokens: 900,
        cache_read_input_tokens: 0,
        output_tokens: 10,
      },
    };
    const usage = reportedUsageOf({ kind: "messages", json });
    assert.ok(usage);
    const withWrites = costOfUnits(usage.units ?? {}, price.units ?? {});
    const cached = {
      ...messagesBody,
      system: [{ type: "text", text: "You answer briefly.", cache_control: { type: "ephemeral" } }],
    };
    const asked = await estimateRequest(request("messages", cached), price);
    assert.equal(asked?.promptCache, true);
    assert.ok(
      verifyCharge({ chargedAtomic: withWrites, maxAtomic: 100_000n, usage, price, estimate: asked }).ok,
      "a request with cache_control owes its writes",
    );
    const unasked = await estimateRequest(request("messages", messagesBody), price);
    assert.equal(unasked?.promptCache, false);
    const verdict = verifyCharge({
      chargedAtomic: withWrites,
      maxAtomic: 100_000n,
      usage,
      price,
      estimate: unasked,
    });
    assert.equal(!verdict.ok && verdict.reason, "usage_above_bound", "writes nobody asked for are input");
    assert.equal(
      verdict.justifiedAtomic,
      (1_000n * 3_000_000n + 10n * 15_000_000n + 999_999n) / 1_000_000n + 1_000n,
    );
    // A seller that quotes no price for cache writes sells them as input: its charge at the input price stands.
    const older = quoted({ ...tokenUnits, requests: 1_000n });
    const asInput = costOfUnits({ input_tokens: 1_000, output_tokens: 10, requests: 1 }, older.units ?? {});
    assert.ok(verifyCharge({ chargedAtomic: asInput, maxAtomic: 100_000n, usage, price: older }).ok);
    // A receipt stating thirty requests for one does not justify thirty fees.
    const inflated = { ...usage, units: { ...usage.units, requests: 30 } };
    const fees = verifyCharge({
      chargedAtomic: withWrites + 29n * 1_000n,
      maxAtomic: 100_000n,
      usage: inflated,
      price,
      estimate: asked,
    });
    assert.equal(!fees.ok && fees.reason, "usage_above_bound");
  });

  test("cached input tokens are priced at their own price: a charge at the full input price is flagged", async () => {
    const price = quoted({ ...tokenUnits, cached_input_tokens: 300_000n });
    const json = {
      usage: {
        prompt_tokens: 1_000,
        completion_tokens: 10,
        prompt_tokens_details: { cached_tokens: 800 },
      },
    };
    const usage = reportedUsageOf({ kind: "chat", json });
    assert.deepEqual(usage?.units, {
      input_tokens: 200,
      cached_input_tokens: 800,
      output_tokens: 10,
      requests: 1,
    });
    assert.ok(usage);
    const discounted = costOfUnits(usage.units ?? {}, price.units ?? {});
    assert.equal(
      discounted,
      (200n * 3_000_000n + 800n * 300_000n + 10n * 15_000_000n + 999_999n) / 1_000_000n,
    );
    assert.ok(verifyCharge({ chargedAtomic: discounted, maxAtomic: 10_000n, usage, price }).ok);
    const full = costOfUnits({ input_tokens: 1_000, output_tokens: 10 }, tokenUnits);
    const verdict = verifyCharge({ chargedAtomic: full, maxAtomic: 10_000n, usage, price });
    assert.equal(!verdict.ok && verdict.reason, "above_usage");
  });

  test("each API's JSON usage is read in its own words: Anthropic cache reads and writes, Responses cached and reasoning tokens", async () => {
    assert.deepEqual(
      reportedUsageOf({
        kind: "messages",
        json: {
          usage: {
            input_tokens: 10,
            cache_read_input_tokens: 30,
            cache_creation_input_tokens: 5,
            output_tokens: 7,
          },
        },
      }),
      {
        promptTokens: 45,
        completionTokens: 7,
        units: {
          input_tokens: 10,
          cached_input_tokens: 30,
          cache_write_input_tokens: 5,
          output_tokens: 7,
          requests: 1,
        },
      },
    );
    assert.deepEqual(
      reportedUsageOf({
        kind: "responses",
        json: {
          usage: {
            input_tokens: 20,
            output_tokens: 9,
            input_tokens_details: { cached_tokens: 4 },
            output_tokens_details: { reasoning_tokens: 3 },
          },
        },
      }),
      {
        promptTokens: 20,
        completionTokens: 9,
        units: {
          input_tokens: 16,
          cached_input_tokens: 4,
          output_tokens: 6,
          reasoning_tokens: 3,
          requests: 1,
        },
      },
    );
  });
});

describe("the policy's per-image and per-second caps", () => {
  const offer = {
    scheme: "upto",
    network: "eip155:137",
    asset: "0x3c499c542cEF5E3811e1192ce70d8cC03d5c3359",
    payTo: "0x1111111111111111111111111111111111111111",
  } as const;
  const check = (policy: Record<string, unknown>, units: UnitPrices) =>
    checkOffer({
      policy: parseSpendingPolicy(policy),
      origin: "https://api.example.com",
      offer,
      askedAtomic: 1n,
      price: { units },
    });

  test("refuses an image price above maxImagePrice and a compute price above maxPricePerSecond", async () => {
    assert.equal(check({ maxImagePrice: "$0.04" }, { images: 40_000n }), undefined);
    const image = check({ maxImagePrice: "$0.04" }, { images: 40_001n });
    assert.equal(image?.rule, "maxImagePrice");
    assert.match(image?.message ?? "", /per image, above the policy's maxImagePrice of \$0\.04/);
    assert.equal(check({ maxPricePerSecond: "3600" }, { compute_ms: 3_600n }), undefined);
    const compute = check({ maxPricePerSecond: "3600" }, { compute_ms: 3_601n });
    assert.equal(compute?.rule, "maxPricePerSecond");
    assert.equal(check({ maxImagePrice: "$0.01" }, tokenUnits), undefined, "a token price is no image price");
    assert.equal(check({ maxCharacterPrice: "$15" }, { input_characters: 15_000_000n }), undefined);
    const speech = check({ maxCharacterPrice: "$15" }, { input_characters: 15_000_001n });
    assert.equal(speech?.rule, "maxCharacterPrice");
    assert.match(
      speech?.message ?? "",
      /per 1M input characters, above the policy's maxCharacterPrice of \$15\.00/,
    );
  });

  test("refuses a malformed cap, naming the key", async () => {
    for (const [input, field] of [
      [{ maxImagePrice: "0.05" }, "maxImagePrice"],
      [{ maxPricePerSecond: -1 }, "maxPricePerSecond"],
      [{ maxCharacterPrice: "1.5" }, "maxCharacterPrice"],
    ] as const)
      assert.throws(
        () => parseSpendingPolicy(input),
        (error: unknown) =>
          isTollgateError(error, "TOLLGATE_CONFIG_INVALID") && error.shortMessage.includes(`${field}:`),
      );
  });
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { costAtomic, countTextTokens } from "../pricing/index.js";
import { randomPromptBody } from "../pricing/testing/randomPromptBody.js";
import { seededRandom } from "../protocol/testing/seededRandom.js";
import { parseGatewayConfig } from "./gatewayConfig.js";
import { quoteRequest } from "./quoteRequest.js";

/** Every string inside a value. */
function collectStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const item of value) collectStrings(item, out);
  else if (typeof value === "object" && value !== null)
    for (const item of Object.values(value)) collectStrings(item, out);
  return out;
}

const config = parseGatewayConfig({
  payTo: `0x${"22".repeat(20)}`,
  asset: `0x${"33".repeat(20)}`,
  models: (["chat", "completion", "embedding"] as const).flatMap((kind) =>
    ["gpt-4o", "llama-3.1-8b"].map((id) => ({
      id: `${id}-${kind}`,
      kind,
      tokenizer: id,
      backend: { baseUrl: "http://127.0.0.1:9/v1", outputLimitFields: ["n_predict"] },
      inputPrice: "3000000",
      // An embedding answers no tokens: an output price there would be refused.
      ...(kind === "embedding" ? {} : { outputPrice: "15000000" }),
      maxOutputTokens: 512,
    })),
  ),
});

test("for random requests from the route schemas, the quote bounds what an honest backend counts, and the backend gets only the priced body (seeded property)", async () => {
  const random = seededRandom(20_261_201);
  let served = 0;
  let refused = 0;
  for (let run = 0; run < 400; run++) {
    const { kind, body } = randomPromptBody(random);
    if (random.next() < 0.5) body.max_tokens = random.int(1, 2_000);
    if (kind === "completion" && random.next() < 0.3)
      body.best_of = Math.max(Number(body.n), random.int(1, 4));
    if (kind === "embedding") delete body.n;
    const modelId = `${random.pick(["gpt-4o", "llama-3.1-8b"])}-${kind}`;
    const model = config.models.find((candidate) => candidate.id === modelId)!;
    let quote: Awaited<ReturnType<typeof quoteRequest>>;
    try {
      quote = await quoteRequest(model, kind, { ...body, model: model.id });
    } catch (error) {
      // A request the route cannot price is refused, naming the field; `documents` always is.
      assert.ok(isTollgateError(error, "TOLLGATE_REQUEST_INVALID"), String((error as Error).stack));
      assert.ok(typeof error.details.field === "string" && error.details.field.length > 0);
      refused++;
      continue;
    }
    assert.equal(body.documents, undefined, "a body with documents is never served");
    served++;
    const { backendBody } = quote;
    // An honest backend counts the text it receives: every string of the prompt fields, exactly.
    const promptFields = Object.entries(backendBody).filter(
      ([key]) =>
        ![
          "model",
          "stream",
          "stream_options",
          "max_tokens",
          "max_completion_tokens",
          "n",
          "best_of",
          "n_predict",
          "stop",
          "user",
        ].includes(key),
    );
    const honest = collectStrings(promptFields.map(([, value]) => value)).reduce(
      (sum, text) => sum + countTextTokens(text, "gpt-4o"),
      0,
    );
    const tokenIds = promptFields.flatMap(([, value]) => JSON.stringify(value).match(/\d+/g) ?? []).length;
    assert.ok(
      quote.promptTokenBound >= Math.min(honest, honest - tokenIds),
      `run ${run}: bound ${quote.promptTokenBound} < honest ${honest}`,
    );
    if (kind !== "embedding") {
      assert.equal(backendBody.max_tokens ?? backendBody.max_completion_tokens, quote.outputLimit);
      assert.equal(backendBody.n_predict, quote.outputLimit);
      assert.ok(quote.outputLimit <= 512);
      assert.equal(quote.maxOutputTokens, quote.outputLimit * quote.choices);
      const price = {
        inputPerMTokAtomic: 3_000_000n,
        outputPerMTokAtomic: 15_000_000n,
        fixedFeeAtomic: 0n,
        maxOutputTokens: 512,
      };
      assert.ok(
        quote.maxAtomic! >=
          costAtomic({ promptTokens: honest, completionTokens: quote.maxOutputTokens }, price),
      );
    }
    assert.equal(typeof backendBody.stream === "boolean" || kind === "embedding", true);
  }
  assert.ok(served > 100 && refused > 20, `served ${served}, refused ${refused}`);
});

test("a request's own n_predict, options or documents never reach the backend", async () => {
  const model = config.models.find((candidate) => candidate.id === "llama-3.1-8b-chat")!;
  for (const field of ["n_predict", "options", "documents", "num_predict"]) {
    await assert.rejects(
      () =>
        quoteRequest(model, "chat", {
          model: model.id,
          messages: [{ role: "user", content: "hi" }],
          [field]: 600,
        }),
      (error: unknown) => isTollgateError(error, "TOLLGATE_REQUEST_INVALID") && error.details.field === field,
    );
  }
  const quote = await quoteRequest(model, "chat", {
    model: model.id,
    messages: [{ role: "user", content: "hi" }],
    max_tokens: 5,
    store: true,
  });
  assert.deepEqual(Object.keys(quote.backendBody).sort(), [
    "max_tokens",
    "messages",
    "model",
    "n_predict",
    "stream",
  ]);
  assert.equal(quote.backendBody.n_predict, 5);
});

test("a fixed image price covers one image of the default size at the backend's default quality: more images, another size or a quality named are not offered exact", async () => {
  const [onlyExact, both] = parseGatewayConfig({
    payTo: `0x${"22".repeat(20)}`,
    asset: `0x${"33".repeat(20)}`,
    models: [
      {
        id: "exact-image",
        kind: "image",
        backend: { baseUrl: "http://127.0.0.1:9/v1" },
        exactPrice: "$0.04",
      },
      {
        id: "priced-image",
        kind: "image",
        backend: { baseUrl: "http://127.0.0.1:9/v1" },
        exactPrice: "$0.04",
        imagePrices: { "1024x1024": "$0.04", "1792x1024": "$0.08", "1792x1024/hd": "$0.12" },
      },
    ],
  }).models;
  const quote = (model: typeof onlyExact, body: Record<string, unknown>) =>
    quoteRequest(model!, "image", { model: model!.id, prompt: "a lighthouse", ...body });

  assert.equal((await quote(both, {})).exactRefusal, undefined, "one image, default size: exact");
  assert.equal((await quote(both, { size: "1024x1024" })).exactRefusal, undefined, "the default size named");
  for (const [body, field] of [
    [{ n: 10 }, "n"],
    [{ size: "1792x1024" }, "size"],
    [{ size: "1792x1024", quality: "hd" }, "size"],
  ] as const) {
    const quoted = await quote(both, body);
    assert.ok(quoted.exactRefusal, `${JSON.stringify(body)} is not covered by the fixed price`);
    assert.ok(quoted.maxAtomic! > 0n, "and is still sold by upto at its own price");
    await assert.rejects(
      quote(onlyExact, body),
      (error) => isTollgateError(error) && error.details.field === field,
    );
  }
  await assert.rejects(
    quote(onlyExact, { quality: "hd" }),
    (error) => isTollgateError(error, "TOLLGATE_REQUEST_INVALID") && error.details.field === "quality",
  );
  assert.equal((await quote(onlyExact, {})).exactRefusal, undefined);
  const nullSize = await quote(both, { size: null });
  assert.equal(
    nullSize.backendBody.size,
    "1024x1024",
    "a null size is the default size priced, sent as such",
  );
  assert.equal(nullSize.maxAtomic, (await quote(both, {})).maxAtomic);
});

test("an inline PDF counts as the model's context window, not as its bytes", async () => {
  const [windowed, unbounded] = parseGatewayConfig({
    payTo: `0x${"22".repeat(20)}`,
    asset: `0x${"33".repeat(20)}`,
    models: ["claude-sonnet", "claude-any"].map((id, index) => ({
      id,
      kind: "messages" as const,
      backend: { baseUrl: "http://127.0.0.1:9/v1" },
      inputPrice: "$3",
      outputPrice: "$15",
      ...(index === 0 ? { contextTokens: 200_000 } : {}),
    })),
  }).models;
  // A PDF of 1.5 KB whose ten pages share one compressed page of text reads as ~42k tokens.
  const pdf = (model: typeof windowed) =>
    quoteRequest(model!, "messages", {
      model: model!.id,
      max_tokens: 100,
      messages: [
        {
          role: "user",
          content: [
            {
              type: "document",
              source: { type: "base64", media_type: "application/pdf", data: "J".repeat(2_020) },
            },
            { type: "text", text: "Summarize this." },
          ],
        },
      ],
    });
  const windowBound = (await pdf(windowed)).promptTokenBound;
  assert.ok(windowBound >= 200_000 && windowBound < 201_000, `the document as the window (${windowBound})`);
  assert.equal((await pdf(unbounded)).promptTokenBound > 1_000_000, true);
  // The window bounds one document, not the request: a backend may read several windows' worth of
  // inputs (an embeddings batch, completions of many prompts), each within its window.
  const long = await quoteRequest(windowed!, "messages", {
    model: "claude-sonnet",
    max_tokens: 100,
    messages: [{ role: "user", content: "x".repeat(300_000) }],
  });
  assert.ok(long.promptTokenBound >= 300_000, "a prompt's own bound is not cut at the window");
});

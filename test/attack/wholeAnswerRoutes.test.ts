import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { type Devnet, startDevnet } from "../../src/devnet/index.js";
import { channelTestConfig, openTestChannel } from "../support/channelFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "../support/gatewayHarness.js";
import { mockModelId } from "../support/mockBackend.js";
import { finalRow, payFor } from "../support/paidRequests.js";
import { type ScriptedBackend, startScriptedBackend } from "./scriptedBackend.js";

// Embeddings and moderations are answered whole, and an answer for some of the inputs only is not
// charged: a backend that sends that answer as an event stream must not be charged for every input.

let devnet: Devnet;
let h: GatewayHarness;
let scripted: ScriptedBackend;
let nextBuyer = 0;
const buyer = () => devnet.accounts.buyers[nextBuyer++ % devnet.accounts.buyers.length]!;
const EMBEDDINGS = "scripted-embeddings";
const MODERATIONS = "scripted-moderations";

before(async () => {
  devnet = await startDevnet({ buyers: 2 });
  scripted = await startScriptedBackend();
  h = await startGatewayHarness({
    devnet,
    configure: channelTestConfig,
    extraModels: () => [
      {
        id: EMBEDDINGS,
        kind: "embedding",
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "100000",
      },
      {
        id: MODERATIONS,
        kind: "moderation",
        tokenizer: "o200k_base",
        backend: { baseUrl: scripted.url },
        inputPrice: "100000",
      },
    ],
  });
});
after(async () => {
  await h?.close();
  await scripted?.close();
  await devnet?.stop();
});

const sse = (events: unknown[]) => ({
  headers: { "content-type": "text/event-stream" },
  pieces: events.map((event) => `data: ${JSON.stringify(event)}\n\n`),
});
const embeddingsOf = (count: number) => ({
  object: "list",
  data: Array.from({ length: count }, (_, index) => ({ object: "embedding", index, embedding: [0.1] })),
  usage: { prompt_tokens: 300, total_tokens: 300 },
});
const moderationsOf = (count: number) => ({
  id: "m",
  results: Array.from({ length: count }, () => ({ flagged: false })),
});
const embeddingsRequest = { model: EMBEDDINGS, input: Array.from({ length: 100 }, () => "toll road") };
const moderationsRequest = { model: MODERATIONS, input: Array.from({ length: 50 }, () => "toll road") };

describe("an embeddings or moderations answer sent as an event stream", () => {
  for (const [what, path, request, partial] of [
    ["embeddings", "/v1/embeddings", embeddingsRequest, embeddingsOf(1)],
    ["moderations", "/v1/moderations", moderationsRequest, moderationsOf(1)],
  ] as const) {
    test(`${what} for one input of many, paid by upto: nothing is forwarded, nothing is charged`, async () => {
      const payer = buyer();
      const before = await devnet.usdcBalance(payer.address);
      scripted.script = () => sse([partial]);
      const { response } = await payFor(h, path, request, payer.privateKey);
      const text = await response.text();
      // Observed before: 200, the one result streamed out, and every input charged (settled).
      assert.ok(!/"embedding":|"flagged":/.test(text), `no result reaches the buyer: ${text}`);
      assert.equal((await finalRow(h)).status, "failed");
      assert.equal(await devnet.usdcBalance(payer.address), before, "nothing charged");
    });
  }

  test("embeddings for one input of many, paid on a channel: the channel is charged nothing", async () => {
    const channel = await openTestChannel(h, {
      body: JSON.stringify({
        model: mockModelId,
        messages: [{ role: "user", content: "hi" }],
        max_tokens: 8,
      }),
    });
    const charged = await channel.charged();
    scripted.script = () => sse([embeddingsOf(1)]);
    const response = await channel.payingFetch(`${h.gateway.url}/v1/embeddings`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(embeddingsRequest),
    });
    const text = await response.text();
    // Observed before: the one embedding streamed out, the channel charged the 300 tokens of all 100 inputs.
    assert.ok(!/"embedding":/.test(text), `no embedding reaches the buyer: ${text}`);
    assert.equal(await channel.charged(), charged, "nothing charged on the channel");
  });

  test("a whole JSON answer is still served and charged", async () => {
    scripted.script = () => ({ pieces: [JSON.stringify(embeddingsOf(100))] });
    const { response } = await payFor(h, "/v1/embeddings", embeddingsRequest, buyer().privateKey);
    assert.equal(response.status, 200, await response.text());
    const row = await finalRow(h);
    assert.equal(row.status, "settled");
    assert.equal(row.promptTokens, 300);
  });
});

describe("an embeddings or moderations answer whose entries hold no result", () => {
  const blankEmbeddings = (blank: (index: number) => unknown) => ({
    object: "list",
    data: Array.from({ length: 100 }, (_, index) => blank(index)),
    usage: { prompt_tokens: 300, total_tokens: 300 },
  });
  for (const [what, path, request, answer] of [
    ["embeddings of empty objects", "/v1/embeddings", embeddingsRequest, blankEmbeddings(() => ({}))],
    [
      "embeddings whose vectors are null",
      "/v1/embeddings",
      embeddingsRequest,
      blankEmbeddings((index) => ({ object: "embedding", index, embedding: null })),
    ],
    [
      "one embedding repeated under one index for every input",
      "/v1/embeddings",
      embeddingsRequest,
      blankEmbeddings(() => ({ object: "embedding", index: 0, embedding: [0.1] })),
    ],
    [
      "moderation results that are null",
      "/v1/moderations",
      moderationsRequest,
      { id: "m", results: Array.from({ length: 50 }, () => null) },
    ],
  ] as const) {
    test(`${what}: 502, nothing charged`, async () => {
      const payer = buyer();
      const before = await devnet.usdcBalance(payer.address);
      scripted.script = () => ({ pieces: [JSON.stringify(answer)] });
      const { response } = await payFor(h, path, request, payer.privateKey);
      const text = await response.text();
      // Observed before: 200, and every input charged for answers holding no result.
      assert.equal(response.status, 502, text);
      assert.equal((await finalRow(h)).status, "failed");
      assert.equal(await devnet.usdcBalance(payer.address), before, "nothing charged");
    });
  }
});

import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createPayingFetch, type PayingFetch } from "../src/buyer/index.js";
import { countPromptTokens, countTextTokens, rerankPromptBody } from "../src/pricing/index.js";
import { type ScriptedAnswer, type ScriptedBackend, startScriptedBackend } from "./attack/scriptedBackend.js";
import { eventLog } from "./support/buyerFixtures.js";
import { type GatewayHarness, startGatewayHarness } from "./support/gatewayHarness.js";
import { mockPromptTokens } from "./support/mockBackend.js";
import { finalRow, payFor, postJson, quoteOf } from "./support/paidRequests.js";

// 0.50 USDC per 1M input tokens and 0.0001 USDC per request, in atomic units.
const INPUT_PER_MTOK = 500_000n;
const FEE = 100n;
const chargeFor = (inputTokens: number) =>
  (BigInt(inputTokens) * INPUT_PER_MTOK + 999_999n) / 1_000_000n + FEE;
const SCRIPTED = "scripted-rerank";

let h: GatewayHarness;
let scripted: ScriptedBackend;
const opened: PayingFetch[] = [];

before(async () => {
  scripted = await startScriptedBackend();
  const priced = { tokenizer: "gpt-4o", inputPrice: INPUT_PER_MTOK.toString(), fixedFee: FEE.toString() };
  h = await startGatewayHarness({
    extraModels: (baseUrl) => [
      { id: "mock-rerank", kind: "rerank", backend: { baseUrl }, ...priced },
      { id: SCRIPTED, kind: "rerank", backend: { baseUrl: scripted.url }, ...priced },
    ],
  });
});
after(async () => {
  for (const payingFetch of opened) await payingFetch.close();
  await h?.close();
  await scripted?.close();
});

const query = "which road charges a toll";
const documents = [
  "the toll road charges a fee at each gate",
  { text: "a quiet lane through the forest" },
  "bridges across the bay charge a toll too",
];
const texts = documents.map((document) => (typeof document === "string" ? document : document.text));
const pairTokens = async () =>
  countPromptTokens("embedding", rerankPromptBody({ query, documents }), "gpt-4o");

describe("POST /v1/rerank", () => {
  test("Tollgate's buyer pays a ranking: its own bound covers the maximum; charge = the backend's total_tokens at the prices = transfer = ledger row = spend row", async () => {
    const log = eventLog();
    const buyer = h.devnet.accounts.buyers[0]!;
    const payingFetch = createPayingFetch({
      privateKey: buyer.privateKey,
      dataDir: "memory://",
      policy: { maxOverExpected: 1 },
      onEvent: log.onEvent,
    });
    opened.push(payingFetch);
    const balanceBefore = await h.devnet.usdcBalance(buyer.address);
    const response = await payingFetch(`${h.gateway.url}/v1/rerank`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "mock-rerank", query, documents, top_n: 2, return_documents: true }),
    });
    assert.equal(response.status, 200);
    const answer = (await response.json()) as {
      results: { index: number; relevance_score: number; document?: { text: string } }[];
      usage: { total_tokens: number };
    };
    assert.deepEqual(
      answer.results.map((result) => result.index),
      [0, 2],
      "the two documents about tolls, best first",
    );
    assert.equal(answer.results[0]?.document?.text, texts[0]);
    // The demo backend counts the query beside each document, one word per token.
    const reported = mockPromptTokens(texts.flatMap((text) => [query, text]));
    assert.equal(answer.usage.total_tokens, reported);

    await payingFetch.idle();
    const [authorized] = log.of("authorized");
    const [receipt] = log.of("receipt");
    assert.ok(authorized && receipt);
    assert.ok(
      authorized.expectedAtomic !== undefined && authorized.expectedAtomic >= authorized.maxAtomic,
      `the buyer's own estimate ${authorized.expectedAtomic} covers the seller's maximum ${authorized.maxAtomic}`,
    );
    assert.equal(
      receipt.chargedAtomic,
      chargeFor(reported),
      "total_tokens is the prompt, at the input price",
    );
    const row = await finalRow(h);
    assert.equal(row.route, "/v1/rerank");
    assert.equal(row.status, "settled");
    assert.equal(row.chargeAtomic, receipt.chargedAtomic);
    assert.deepEqual(row.usage, { input_tokens: reported, output_tokens: 0, requests: 1 });
    const spent = await (await payingFetch.spendStore()).reservation(receipt.paymentId);
    assert.equal(spent?.chargedAtomic, receipt.chargedAtomic, "the spend store holds the same charge");
    assert.deepEqual(await (await payingFetch.spendStore()).disputes(), []);
    assert.equal(await h.devnet.usdcBalance(buyer.address), balanceBefore - receipt.chargedAtomic);
    const sent = h.backend.inferenceRequests.at(-1);
    assert.equal(sent?.path, "/v1/rerank");
    assert.deepEqual(sent?.body, {
      model: "mock-rerank",
      query,
      documents,
      top_n: 2,
      return_documents: true,
    });
  });

  test("the maximum bounds the query once per document, as a cross-encoder reads it", async () => {
    const { amount, pricing } = await quoteOf(h, "/v1/rerank", { model: "mock-rerank", query, documents });
    const bound = Number(pricing?.promptTokenBound);
    assert.equal(amount, chargeFor(bound));
    const queryTokens = countTextTokens(query, "o200k_base");
    const documentTokens = texts.reduce((sum, text) => sum + countTextTokens(text, "o200k_base"), 0);
    assert.ok(
      bound >= documents.length * queryTokens + documentTokens,
      `bound ${bound} ≥ ${documents.length} × ${queryTokens} + ${documentTokens}`,
    );
    assert.ok(bound >= (await pairTokens()));
  });
});

describe("a rerank backend that answers less, or claims more, than it did", () => {
  const ranking = (indexes: number[], usage: unknown = { total_tokens: 20 }) => ({
    pieces: [
      JSON.stringify({
        id: "r",
        results: indexes.map((index, rank) => ({ index, relevance_score: 0.9 - rank / 10 })),
        usage,
      }),
    ],
  });
  const paid = async (body: Record<string, unknown>) => {
    const buyer = h.devnet.accounts.buyers[1]!;
    const before = await h.devnet.usdcBalance(buyer.address);
    const { response } = await payFor(
      h,
      "/v1/rerank",
      { model: SCRIPTED, query, documents, ...body },
      buyer.privateKey,
    );
    const text = await response.text();
    const row = await finalRow(h);
    return { response, text, row, moved: before - (await h.devnet.usdcBalance(buyer.address)) };
  };

  const cases: [string, ScriptedAnswer, Record<string, unknown>][] = [
    ["ranks 2 of the 3 documents", ranking([0, 2]), {}],
    ["ranks one document three times", ranking([1, 1, 1]), {}],
    ["ranks 1 of top_n 2", ranking([2]), { top_n: 2 }],
    ["ranks documents that do not exist", ranking([0, 3, 4]), {}],
    [
      "streams its ranking",
      {
        headers: { "content-type": "text/event-stream" },
        pieces: [`data: ${ranking([0, 1, 2]).pieces[0]}\n\n`],
      },
      {},
    ],
  ];
  for (const [name, answer, body] of cases) {
    test(`${name}: no ranking reaches the buyer, nothing charged, nothing moved`, async () => {
      scripted.script = () => answer;
      const { response, text, row, moved } = await paid(body);
      assert.ok(!text.includes("relevance_score"), `no ranking reaches the buyer: ${text}`);
      // A stream was answered as one (200, then its error event); a JSON answer is refused whole.
      if (answer.headers === undefined) assert.equal(response.status, 502, text);
      assert.equal(row.status, "failed");
      assert.equal(moved, 0n);
    });
  }

  test("top_n 2 ranked in full is charged", async () => {
    scripted.script = () => ranking([2, 0], { total_tokens: 24 });
    const { response, row, moved } = await paid({ top_n: 2 });
    assert.equal(response.status, 200);
    assert.equal(row.chargeAtomic, chargeFor(24));
    assert.equal(moved, chargeFor(24));
  });

  test("a total_tokens above the bound is not believed: the pairs are counted with the model's tokenizer", async () => {
    scripted.script = () => ranking([0, 1, 2], { total_tokens: 1_000_000 });
    const { response, row, moved } = await paid({});
    assert.equal(response.status, 200);
    const counted = await pairTokens();
    assert.equal(row.chargeAtomic, chargeFor(counted), `charged ${counted} counted tokens, not 1,000,000`);
    assert.equal(moved, row.chargeAtomic);
  });

  test("a total_tokens far below the pairs' text is believed: a reranker cuts each pair to its length limit", async () => {
    scripted.script = () => ranking([0, 1, 2], { total_tokens: 6 });
    const { response, row, moved } = await paid({});
    assert.equal(response.status, 200);
    assert.ok((await pairTokens()) > 30, "the pairs hold far more than 6 tokens");
    // Before: judged implausible, and the buyer was charged every token of the pairs.
    assert.equal(row.chargeAtomic, chargeFor(6));
    assert.equal(moved, chargeFor(6));
  });
});

describe("a rerank request the gateway cannot price", () => {
  test("is refused before any payment, naming the field", async () => {
    const reached = scripted.bodies.length;
    for (const [body, field] of [
      [{ query }, "documents"],
      [{ documents }, "query"],
      [{ query: "", documents }, "query"],
      [{ query, documents: [] }, "documents"],
      [{ query, documents: [{ text: "a", title: "b" }] }, "documents[0]"],
      [{ query, documents: [42] }, "documents[0]"],
      [{ query, documents, top_n: 0 }, "top_n"],
      [{ query, documents, return_documents: "yes" }, "return_documents"],
      [{ query, documents, max_chunks_per_doc: 4 }, "max_chunks_per_doc"],
      [{ query, documents, stream: true }, "stream"],
    ] as const) {
      const response = await postJson(h, "/v1/rerank", { model: SCRIPTED, ...body });
      const text = await response.text();
      assert.equal(response.status, 400, `${JSON.stringify(body)}: ${text}`);
      const error = JSON.parse(text) as { error: { message: string } };
      assert.ok(error.error.message.startsWith(field), `${error.error.message} names ${field}`);
    }
    assert.equal(scripted.bodies.length, reached, "nothing reached the backend");
  });
});

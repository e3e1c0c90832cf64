import assert from "node:assert/strict";
import { test } from "node:test";
import {
  chargeAtomic,
  costAtomic,
  countPromptTokens,
  maxAtomicForRequest,
  promptCountPlausible,
  promptTokenBound,
} from "../pricing/index.js";
import { CACHE_WRITE_TOKENS, reconcileUsage } from "./meterUsage.js";
import { OutputMeter } from "./OutputMeter.js";

/** A small seeded PRNG (mulberry32), so a failing case can be replayed. */
function random(seed: number) {
  let state = seed >>> 0;
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, int: (max: number) => Math.floor(next() * (max + 1)) };
}

const price = {
  inputPerMTokAtomic: 3_000_000n,
  outputPerMTokAtomic: 15_000_000n,
  fixedFeeAtomic: 7n,
  maxOutputTokens: 4096,
};

test("the charge of a served request is never above the quote nor above the cost of what was delivered (seeded property)", async () => {
  const rng = random(402);
  for (let run = 0; run < 2_000; run++) {
    const choices = 1 + rng.int(4);
    const limit = 1 + rng.int(500);
    const maxOutputTokens = limit * choices;
    const promptTokenBound = rng.int(20_000);
    const delivered = rng.int(maxOutputTokens);
    const promptCount = rng.int(promptTokenBound);
    const lie = rng.int(5);
    const reported =
      lie === 0
        ? undefined
        : lie === 1
          ? { prompt_tokens: "12", completion_tokens: -3 }
          : {
              prompt_tokens: rng.int(promptTokenBound * 3),
              completion_tokens: lie === 2 ? rng.int(maxOutputTokens * 10) : rng.int(delivered),
            };
    const usage = await reconcileUsage({
      reported,
      deliveredOutputTokens: delivered,
      choices,
      maxOutputTokens,
      promptTokenBound,
      countPrompt: async () => promptCount,
      promptCountPlausible: async (count) => count >= promptCount / 2 - 8,
    });
    const quote = maxAtomicForRequest({ promptTokenBound, maxOutputTokens }, price);
    const charge = chargeAtomic(usage, price, quote);
    const context = JSON.stringify({ run, reported, delivered, usage });
    assert.ok(usage.completionTokens <= delivered, context);
    assert.ok(usage.promptTokens <= promptTokenBound, context);
    assert.ok(charge <= quote, context);
    assert.ok(
      charge <= costAtomic({ promptTokens: promptTokenBound, completionTokens: delivered }, price),
      context,
    );
  }
});

test("a backend reporting 0 output for a long answer is not believed", async () => {
  const usage = await reconcileUsage({
    reported: { prompt_tokens: 10, completion_tokens: 0 },
    deliveredOutputTokens: 300,
    choices: 1,
    maxOutputTokens: 400,
    promptTokenBound: 50,
    countPrompt: async () => 10,
    promptCountPlausible: async () => true,
  });
  assert.equal(usage.completionTokens, 300);
});

test("a backend that under-reports a long prompt is not believed: the gateway's count is charged; about half of it or more stands", async () => {
  const prompt = {
    kind: "chat" as const,
    body: { messages: [{ role: "user", content: "the quick brown fox ".repeat(200) }] },
    model: "gpt-4o",
  };
  const bound = await promptTokenBound(prompt);
  const counted = await countPromptTokens(prompt.kind, prompt.body, prompt.model);
  const charged = async (reportedPrompt: number) =>
    reconcileUsage({
      reported: { prompt_tokens: reportedPrompt, completion_tokens: 5 },
      deliveredOutputTokens: 5,
      choices: 1,
      maxOutputTokens: 10,
      promptTokenBound: bound,
      countPrompt: () => countPromptTokens(prompt.kind, prompt.body, prompt.model),
      promptCountPlausible: (count) => promptCountPlausible(prompt, count),
    });
  assert.ok(counted > 800 && counted <= bound, `${counted} counted, bound ${bound}`);
  for (const lie of [0, 1, 200]) {
    const usage = await charged(lie);
    assert.deepEqual([usage.promptTokens, usage.source], [counted, "tokenizer"], `${lie} reported`);
  }
  for (const believed of [Math.ceil(counted * 0.6), counted - 3]) {
    const usage = await charged(believed);
    assert.deepEqual([usage.promptTokens, usage.source], [believed, "backend"], `${believed} reported`);
  }
});

test("a prompt count above the quote's bound is replaced by the gateway's own count", async () => {
  const usage = await reconcileUsage({
    reported: { prompt_tokens: 9_999, completion_tokens: 5 },
    deliveredOutputTokens: 5,
    choices: 1,
    maxOutputTokens: 10,
    promptTokenBound: 100,
    countPrompt: async () => 42,
    promptCountPlausible: async () => true,
  });
  assert.deepEqual([usage.promptTokens, usage.completionTokens, usage.source], [42, 5, "tokenizer"]);
});

test("the output meter counts each choice as one text, and never lets a choice past its allowance, nor a choice nobody asked for (seeded property)", () => {
  const rng = random(7);
  // Words split at spaces: a tokenizer whose count, like a byte-level BPE's, adds up at a space after a word.
  const countTokens = (text: string) => text.split(" ").filter(Boolean).length;
  const parts = ["w", " w", "w w", " ", "ww ", "  w"];
  for (let run = 0; run < 500; run++) {
    const choices = 1 + rng.int(3);
    const limit = 1 + rng.int(40);
    const exactCount = rng.next() < 0.5;
    const meter = new OutputMeter({ countTokens, limitPerChoice: limit, choices, exactCount });
    const received = new Map<number, string>();
    for (let chunk = 0; chunk < 100; chunk++) {
      const choice = rng.int(choices);
      const text = Array.from({ length: 1 + rng.int(3) }, () => parts[rng.int(parts.length - 1)]).join("");
      const accepted = meter.accept({
        pieces: [{ choice, text }],
        delivered: true,
        usage: undefined,
        error: undefined,
      });
      if (accepted) received.set(choice, (received.get(choice) ?? "") + text);
      if (choice >= choices) assert.equal(accepted, false);
    }
    let total = 0;
    for (const text of received.values()) {
      assert.ok(countTokens(text) <= meter.allowancePerChoice, `${JSON.stringify(text)} past the allowance`);
      total += countTokens(text);
    }
    assert.equal(
      meter.countedTokens,
      total,
      "the tokens of each choice's text, not of its chunks one by one",
    );
    if (exactCount) assert.equal(meter.allowancePerChoice, limit);
  }
});

test("cached prompt tokens and itemized reasoning become units of their own, within the believed counts", async () => {
  const usage = await reconcileUsage({
    reported: {
      prompt_tokens: 900,
      completion_tokens: 120,
      prompt_tokens_details: { cached_tokens: 640 },
      completion_tokens_details: { reasoning_tokens: 100 },
    },
    deliveredOutputTokens: 20,
    choices: 1,
    maxOutputTokens: 256,
    promptTokenBound: 1_000,
    countPrompt: async () => 0,
    promptCountPlausible: async () => true,
  });
  assert.deepEqual(usage.units, {
    input_tokens: 260,
    cached_input_tokens: 640,
    output_tokens: 20,
    reasoning_tokens: 100,
    requests: 1,
  });
  // Reasoning itemized above what the shown answer leaves of the output is held to that: the answer is output.
  const allReasoning = await reconcileUsage({
    reported: {
      prompt_tokens: 9,
      completion_tokens: 20,
      completion_tokens_details: { reasoning_tokens: 300 },
    },
    deliveredOutputTokens: 20,
    choices: 1,
    maxOutputTokens: 256,
    promptTokenBound: 1_000,
    countPrompt: async () => 0,
    promptCountPlausible: async () => true,
  });
  assert.deepEqual([allReasoning.units.output_tokens, allReasoning.units.reasoning_tokens], [20, undefined]);
  // Reasoning shown in full as it streamed is part of the delivered count, and may be itemized as reasoning.
  const shownReasoning = await reconcileUsage({
    reported: {
      prompt_tokens: 9,
      completion_tokens: 120,
      completion_tokens_details: { reasoning_tokens: 100 },
    },
    deliveredOutputTokens: 120,
    deliveredReasoningTokens: 100,
    choices: 1,
    maxOutputTokens: 256,
    promptTokenBound: 1_000,
    countPrompt: async () => 0,
    promptCountPlausible: async () => true,
  });
  assert.deepEqual([shownReasoning.units.output_tokens, shownReasoning.units.reasoning_tokens], [20, 100]);
  // A cached count above the prompt it is part of is held to the prompt.
  const inflated = await reconcileUsage({
    reported: { prompt_tokens: 50, completion_tokens: 5, prompt_tokens_details: { cached_tokens: 5_000 } },
    deliveredOutputTokens: 5,
    choices: 1,
    maxOutputTokens: 16,
    promptTokenBound: 60,
    countPrompt: async () => 0,
    promptCountPlausible: async () => true,
  });
  assert.equal(inflated.units.cached_input_tokens, 50);
  assert.equal(inflated.units.input_tokens, 0);
});

test("cache writes are charged only as a route reports them (CACHE_WRITE_TOKENS) for a request that asked for caching, never from a field in a backend's JSON, and within the prompt", async () => {
  const base = {
    deliveredOutputTokens: 5,
    choices: 1,
    maxOutputTokens: 16,
    promptTokenBound: 1_000,
    promptCache: true,
  };
  const countPrompt = async () => 0;
  const fromJson = await reconcileUsage({
    ...base,
    countPrompt,
    promptCountPlausible: async () => true,
    reported: JSON.parse(
      '{"prompt_tokens": 100, "completion_tokens": 5, "prompt_tokens_details": {"cached_tokens": 10, "cache_write_tokens": 50}, "cache_write_tokens": 50}',
    ),
  });
  assert.deepEqual(fromJson.units, {
    input_tokens: 90,
    cached_input_tokens: 10,
    output_tokens: 5,
    requests: 1,
  });
  const fromRoute = await reconcileUsage({
    ...base,
    countPrompt,
    promptCountPlausible: async () => true,
    reported: {
      prompt_tokens: 100,
      completion_tokens: 5,
      prompt_tokens_details: { cached_tokens: 10 },
      [CACHE_WRITE_TOKENS]: 50,
    },
  });
  assert.deepEqual(fromRoute.units, {
    input_tokens: 40,
    cached_input_tokens: 10,
    cache_write_input_tokens: 50,
    output_tokens: 5,
    requests: 1,
  });
  // Reads and writes together never exceed the prompt they are part of.
  const inflated = await reconcileUsage({
    ...base,
    countPrompt,
    promptCountPlausible: async () => true,
    reported: {
      prompt_tokens: 100,
      completion_tokens: 5,
      prompt_tokens_details: { cached_tokens: 70 },
      [CACHE_WRITE_TOKENS]: 500,
    },
  });
  assert.equal(inflated.units.cached_input_tokens, 70);
  assert.equal(inflated.units.cache_write_input_tokens, 30);
  assert.equal(inflated.units.input_tokens, 0);
  // A request that asked for no caching pays its prompt as input, whatever the backend calls it.
  const unasked = await reconcileUsage({
    ...base,
    promptCache: false,
    countPrompt,
    promptCountPlausible: async () => true,
    reported: { prompt_tokens: 100, completion_tokens: 5, [CACHE_WRITE_TOKENS]: 90 },
  });
  assert.deepEqual(unasked.units, { input_tokens: 100, output_tokens: 5, requests: 1 });
});

test("output a request lets the model keep unseen (Anthropic's thinking budget) is believed up to what was delivered plus that allowance, and within the authorized output", async () => {
  const base = {
    deliveredOutputTokens: 30,
    choices: 1,
    maxOutputTokens: 2_000,
    promptTokenBound: 1_000,
    countPrompt: async () => 0,
    promptCountPlausible: async () => true,
  };
  const charged = async (reportedOutput: number, hiddenOutputTokens?: number, maxOutputTokens = 2_000) =>
    (
      await reconcileUsage({
        ...base,
        maxOutputTokens,
        hiddenOutputTokens,
        reported: { prompt_tokens: 40, completion_tokens: reportedOutput },
      })
    ).units.output_tokens;
  // Thinking billed whole and streamed as a summary: believed within the budget, charged as output.
  assert.equal(await charged(730, 1_024), 730);
  assert.equal(await charged(30 + 1_024, 1_024), 30 + 1_024);
  // More than the summary and the budget (the delivered count is an estimate): held to them, so the
  // hidden part is still charged, never above the allowance.
  assert.equal(await charged(30 + 1_200, 1_024), 30 + 1_024);
  // The same holds for itemized reasoning: a report above the count and its reasoning is held to them.
  const itemized = await reconcileUsage({
    ...base,
    reported: {
      prompt_tokens: 40,
      completion_tokens: 500,
      completion_tokens_details: { reasoning_tokens: 100 },
    },
  });
  assert.deepEqual([itemized.units.output_tokens, itemized.units.reasoning_tokens], [30, 100]);
  // A report of less than half what was delivered is not believed, allowance or not.
  assert.equal(await charged(10, 1_024), 30);
  // No thinking asked for: nothing unseen is believed.
  assert.equal(await charged(730), 30);
  // Never above the authorized output.
  assert.equal(await charged(730, 1_024, 500), 500);
});

test("an estimated count (a tokenizer the gateway does not know) lets the backend's own count stand up to the bytes delivered; an exact one does not", async () => {
  const charged = async (reportedOutput: number, deliveredOutputBytes?: number) =>
    (
      await reconcileUsage({
        reported: { prompt_tokens: 40, completion_tokens: reportedOutput },
        deliveredOutputTokens: 30,
        deliveredOutputBytes,
        choices: 1,
        maxOutputTokens: 256,
        promptTokenBound: 1_000,
        countPrompt: async () => 0,
        promptCountPlausible: async () => true,
      })
    ).units.output_tokens;
  // Hindi text: 30 tokens by the estimate, 120 bytes; the model's own tokenizer counted 100.
  assert.equal(await charged(100, 120), 100);
  assert.equal(await charged(120, 120), 120);
  // More tokens than bytes: no byte-level tokenizer makes them, not believed.
  assert.equal(await charged(121, 120), 30);
  // With the model's own tokenizer the count is exact: a report above it is not believed.
  assert.equal(await charged(100), 30);
});

test("the byte ceiling holds each choice's bytes to its limit, and is gone once the backend went past it", () => {
  const meter = new OutputMeter({
    countTokens: (text) => text.split(" ").length,
    limitPerChoice: 100,
    choices: 2,
    exactCount: false,
  });
  const piece = (choice: number, text: string) =>
    meter.accept({ pieces: [{ choice, text }], delivered: true, usage: undefined, error: undefined });
  assert.equal(piece(0, "é".repeat(230)), true, "one token, 460 bytes");
  assert.equal(piece(1, "x".repeat(40)), true);
  assert.equal(meter.byteCeiling, 100 + 40, "choice 0's 460 bytes held to its limit of 100");
  assert.equal(piece(1, Array(200).fill("w").join(" ")), false, "past the limit: refused");
  assert.equal(meter.byteCeiling, undefined, "the backend's count now covers output nobody received");
});

test("output the backend sent after the buyer left is taken off its count: only the hidden part is charged beyond what was delivered", async () => {
  const charged = async (reportedOutput: number, undeliveredOutputTokens: number) =>
    (
      await reconcileUsage({
        deliveredOutputTokens: 30,
        choices: 1,
        maxOutputTokens: 2_000,
        promptTokenBound: 1_000,
        countPrompt: async () => 0,
        promptCountPlausible: async () => true,
        hiddenOutputTokens: 1_024,
        undeliveredOutputTokens,
        reported: { prompt_tokens: 40, completion_tokens: reportedOutput },
      })
    ).units.output_tokens;
  // 500 thought, 30 delivered, 300 more answered to nobody: the thinking and the 30 are charged.
  assert.equal(await charged(500 + 30 + 300, 300), 530);
  assert.equal(await charged(500 + 30, 0), 530);
  // A count below what came after the buyer left falls back to what was delivered.
  assert.equal(await charged(200, 300), 30);
});

import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { seededRandom } from "../protocol/testing/seededRandom.js";
import { countTextTokensChunked } from "./countTextTokensChunked.js";
import { randomPromptText } from "./testing/randomPromptBody.js";
import { randomText } from "./testing/randomText.js";
import { textTokenBound } from "./textTokenBound.js";
import { countTextTokens, tokenizerForModel } from "./tokenizer.js";

describe("countTextTokensChunked", () => {
  test("equals countTextTokens on ordinary text", () => {
    const text = "Summarize the history of the Roman Empire in three sentences, please.\n".repeat(50);
    for (const model of ["gpt-4o", "gpt-4", "llama-3.1-8b-instruct"]) {
      assert.equal(countTextTokensChunked(text, model), countTextTokens(text, model), model);
    }
  });

  test("never exceeds the bound of the same text (seeded property)", () => {
    const random = seededRandom(32);
    for (let i = 0; i < 300; i++) {
      const text = random.next() < 0.5 ? randomText(random, 300) : randomPromptText(random).repeat(3);
      for (const model of ["gpt-4o", "gpt-4", "llama-3.1-8b-instruct"]) {
        const bound = textTokenBound(text, tokenizerForModel(model));
        assert.ok(countTextTokensChunked(text, model) <= bound, `${model} ${JSON.stringify(text)}`);
      }
    }
  });

  test("counts a long unspaced run in linear time, close to the exact count", () => {
    const run = "文字".repeat(1_000);
    const exact = countTextTokens(run, "gpt-4o");
    const chunked = countTextTokensChunked(run, "gpt-4o");
    assert.ok(Math.abs(chunked - exact) <= exact * 0.1 + 20, `${chunked} vs ${exact}`);
    const started = performance.now();
    const long = countTextTokensChunked("文字".repeat(500_000), "gpt-4o");
    assert.ok(performance.now() - started < 3_000);
    assert.ok(long > 0 && long <= 3_000_000);
  });
});

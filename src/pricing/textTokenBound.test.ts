import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { countTokens as countCl100k } from "gpt-tokenizer/encoding/cl100k_base";
import { countTokens as countO200k } from "gpt-tokenizer/encoding/o200k_base";
import { seededRandom } from "../protocol/testing/seededRandom.js";
import { randomPromptText } from "./testing/randomPromptBody.js";
import { randomText } from "./testing/randomText.js";
import { EXACT_PIECE_BYTES, textTokenBound } from "./textTokenBound.js";

const plain = { disallowedSpecial: new Set<string>() };

describe("textTokenBound", () => {
  test("equals the exact count when every piece is short (it splits with gpt-tokenizer's own regex)", () => {
    const texts = [
      "The quick brown fox jumps over the lazy dog. It's 12345 o'clock!\n\n  Indented\tline.",
      "def f(x):\n    return x ** 2  # square\n",
      "東京は日本の首都です。 Привет, мир! مرحبا بالعالم 😀🎉",
      "<|endoftext|> looks special but is text",
    ];
    for (const text of texts) {
      assert.equal(textTokenBound(text, "o200k_base"), countO200k(text, plain), text);
      assert.equal(textTokenBound(text, "cl100k_base"), countCl100k(text, plain), text);
    }
  });

  test("is never below the exact count of random text (seeded property)", () => {
    const random = seededRandom(31);
    for (let i = 0; i < 400; i++) {
      const text = random.next() < 0.5 ? randomText(random, 200) : randomPromptText(random);
      assert.ok(textTokenBound(text, "o200k_base") >= countO200k(text, plain), JSON.stringify(text));
      assert.ok(textTokenBound(text, "cl100k_base") >= countCl100k(text, plain), JSON.stringify(text));
      assert.equal(textTokenBound(text, "bytes"), Buffer.byteLength(text));
    }
  });

  test("counts a long unspaced run by its bytes, without the quadratic exact count", () => {
    const run = "文".repeat(200_000);
    const started = performance.now();
    assert.equal(textTokenBound(run, "o200k_base"), 600_000);
    assert.ok(performance.now() - started < 1_000);
    const short = "文".repeat(Math.floor(EXACT_PIECE_BYTES / 3));
    assert.equal(textTokenBound(short, "o200k_base"), countO200k(short, plain), "short runs stay exact");
  });
});

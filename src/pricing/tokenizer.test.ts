import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { countTokens as countCl100k } from "gpt-tokenizer/encoding/cl100k_base";
import { countTokens as countO200k } from "gpt-tokenizer/encoding/o200k_base";
import { seededRandom } from "../protocol/testing/seededRandom.js";
import { randomText } from "./testing/randomText.js";
import { countTextTokens, tokenizerForModel, utf8ByteLength } from "./tokenizer.js";

const plain = { disallowedSpecial: new Set<string>() };

describe("tokenizerForModel", () => {
  const cases: [string | undefined, string][] = [
    ["gpt-4o", "o200k_base"],
    ["gpt-4o-mini-2024-07-18", "o200k_base"],
    ["GPT-4o", "o200k_base"],
    ["openai/gpt-4.1-mini", "o200k_base"],
    ["ft:gpt-4o-mini-2024-07-18:acme::abc123", "o200k_base"],
    ["gpt-5", "o200k_base"],
    ["o1", "o200k_base"],
    ["o3-mini", "o200k_base"],
    ["gpt-oss-20b", "o200k_base"],
    ["gpt-4", "cl100k_base"],
    ["gpt-4-turbo", "cl100k_base"],
    ["gpt-3.5-turbo", "cl100k_base"],
    ["text-embedding-3-small", "cl100k_base"],
    ["o200k_base", "o200k_base"],
    ["cl100k_base", "cl100k_base"],
    ["bytes", "bytes"],
    ["llama-3.1-8b-instruct", "bytes"],
    ["o100-custom", "bytes"],
    ["gpt-40", "bytes"],
    ["mistral-small", "bytes"],
    [undefined, "bytes"],
  ];
  for (const [model, tokenizer] of cases) {
    test(`${model ?? "no model"} → ${tokenizer}`, () => assert.equal(tokenizerForModel(model), tokenizer));
  }
});

describe("countTextTokens", () => {
  test("counts exactly what gpt-tokenizer counts for known models (seeded)", () => {
    const random = seededRandom(11);
    for (let i = 0; i < 200; i++) {
      const text = randomText(random, 120);
      assert.equal(countTextTokens(text, "gpt-4o"), countO200k(text, plain));
      assert.equal(countTextTokens(text, "gpt-4"), countCl100k(text, plain));
    }
  });

  test("counts special-token lookalikes as text instead of throwing", () => {
    assert.equal(countTextTokens("a<|endoftext|>b", "gpt-4o"), countO200k("a<|endoftext|>b", plain));
    assert.ok(countTextTokens("<|endoftext|>", "gpt-4o") > 1);
  });

  test("estimates unknown models with o200k_base, and counts nothing as zero", () => {
    const text = "The quick brown fox jumps over the lazy dog.";
    assert.equal(countTextTokens(text, "llama-3.1-8b"), countO200k(text));
    assert.equal(countTextTokens(text), countO200k(text));
    assert.equal(countTextTokens("", "gpt-4o"), 0);
  });
});

describe("utf8ByteLength", () => {
  test("is never below a byte-level BPE count on random unicode (seeded property)", () => {
    const random = seededRandom(12);
    for (let i = 0; i < 1500; i++) {
      const text = randomText(random, 300);
      const bytes = utf8ByteLength(text);
      assert.ok(bytes >= countO200k(text, plain), `o200k over bytes for ${JSON.stringify(text)}`);
      assert.ok(bytes >= countCl100k(text, plain), `cl100k over bytes for ${JSON.stringify(text)}`);
    }
  });

  test("agrees with Buffer.byteLength on short and long text, lone surrogates included (seeded property)", () => {
    const random = seededRandom(13);
    const edges = [
      "",
      "a",
      "\ud800",
      "\udc00",
      "\ud800a",
      "a\udfff",
      "\ud83d\ude00",
      "\udc00\ud800",
      "é文😀",
    ];
    for (const text of edges)
      assert.equal(utf8ByteLength(text), Buffer.byteLength(text), JSON.stringify(text));
    for (let i = 0; i < 2000; i++) {
      const text = randomText(random, random.next() < 0.8 ? 32 : 200);
      assert.equal(utf8ByteLength(text), Buffer.byteLength(text), JSON.stringify(text));
    }
  });
});

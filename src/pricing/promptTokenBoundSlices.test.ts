import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { type SeededRandom, seededRandom } from "../protocol/testing/seededRandom.js";
import { promptParts, promptTextBytes, TEMPLATE_OVERHEAD, templateOverhead } from "./promptParts.js";
import {
  DOCUMENT_TOKENS,
  EXACT_TEXT_BYTES,
  imageTokenBound,
  type PromptTokenBoundParameters,
  promptTokenBound,
} from "./promptTokenBound.js";
import { randomPromptBody } from "./testing/randomPromptBody.js";
import { EXACT_WORK_BUDGET, textTokenBound } from "./textTokenBound.js";
import { tokenizerForModel } from "./tokenizer.js";

/**
 * The bound computed in one synchronous pass, text by text with `textTokenBound`, sharing one
 * cache and one work budget: what the sliced computation must equal for every body.
 */
function synchronousBound(parameters: PromptTokenBoundParameters): number {
  const { kind, body } = parameters;
  const model = parameters.model ?? (typeof body.model === "string" ? body.model : undefined);
  const parts = promptParts(kind, body, {
    imageTokens: parameters.imageTokens ?? imageTokenBound(model),
    documentTokens: () => parameters.documentTokens ?? DOCUMENT_TOKENS,
    extraFields: parameters.extraFields,
  });
  const tokenizer = tokenizerForModel(model);
  const overhead = tokenizer === "bytes" ? TEMPLATE_OVERHEAD.bytes : TEMPLATE_OVERHEAD.exact;
  const bytes = promptTextBytes(parts);
  const exactCost = bytes.all + 8 * (parts.texts.length + parts.fields.length);
  const exact = tokenizer !== "bytes" && exactCost <= (parameters.exactTextBytes ?? EXACT_TEXT_BYTES);
  let text = bytes.bound;
  if (exact) {
    const cache = new Map<string, number>();
    const work = { remaining: EXACT_WORK_BUDGET };
    const bound = (piece: string) => textTokenBound(piece, tokenizer, cache, work);
    text = parts.literalBytes;
    for (const one of parts.texts) text += bound(one);
    for (const field of parts.fields) {
      let leaves = field.literalBytes;
      for (const leaf of field.leaves) leaves += bound(leaf);
      text += Math.max(bound(field.json), leaves);
    }
  }
  return templateOverhead(parts, overhead) + parts.mediaTokens + parts.tokenIds + text;
}

const LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/** `bytes` of distinct words, mixed-case or not, so exact counting spends its budget. */
function distinctWords(random: SeededRandom, bytes: number): string {
  const alphabet = random.next() < 0.5 ? LETTERS : LETTERS.slice(0, 26);
  const words: string[] = [];
  let length = 0;
  while (length < bytes) {
    const size = random.int(2, 130);
    words.push(
      Array.from({ length: size }, () => alphabet.charAt(random.int(0, alphabet.length - 1))).join(""),
    );
    length += size + 1;
  }
  return words.join(" ");
}

/** A chat of 3–120 KB whose exact-work budget runs out in a message, a tool or a named extra field. */
function largeChat(random: SeededRandom): PromptTokenBoundParameters {
  const text = () => distinctWords(random, random.int(1_000, 17_000));
  const body: Record<string, unknown> = {
    model: "ignored",
    messages: Array.from({ length: random.int(1, 3) }, () => ({ role: "user", content: text() })),
    tools: [{ type: "function", function: { name: "lookup", description: text(), parameters: {} } }],
    documents: [{ title: "notes", text: text() }],
  };
  return {
    kind: "chat",
    body,
    model: random.pick(["gpt-4o", "gpt-4"]),
    extraFields: random.next() < 0.5 ? ["documents"] : [],
  };
}

/** Event-loop turns (setImmediate callbacks) that run while `work` is awaited. */
async function turnsDuring<T>(work: () => Promise<T>): Promise<{ value: T; turns: number }> {
  let turns = 0;
  let running = true;
  const spinner = (async () => {
    while (running) {
      await new Promise(setImmediate);
      turns++;
    }
  })();
  try {
    const value = await work();
    const counted = turns;
    return { value, turns: counted };
  } finally {
    running = false;
    await spinner;
  }
}

describe("promptTokenBound in slices", () => {
  test("equals the bound computed in one synchronous pass, for random bodies (seeded property)", async () => {
    const random = seededRandom(41);
    for (let i = 0; i < 200; i++) {
      const { kind, body, extraFields } = randomPromptBody(random);
      // Some cases pass the exact-text limit, so the byte fallback is compared too.
      const exactTextBytes = random.next() < 0.3 ? 256 : undefined;
      for (const model of ["gpt-4o", "gpt-4", "llama-3.1-8b-instruct"]) {
        const parameters = { kind, body, model, extraFields, exactTextBytes };
        assert.equal(await promptTokenBound(parameters), synchronousBound(parameters), `case ${i} ${model}`);
      }
    }
  });

  test("equals the bound computed in one synchronous pass when the exact-work budget runs out mid-body (seeded property)", async () => {
    const random = seededRandom(42);
    for (let i = 0; i < 16; i++) {
      const parameters = largeChat(random);
      const { value, turns } = await turnsDuring(() => promptTokenBound(parameters));
      assert.equal(value, synchronousBound(parameters), `case ${i}`);
      assert.ok(turns >= 1, `case ${i}: counted exactly without a pause`);
    }
  });

  test("lets the event loop turn many times while it bounds a 120 KB prompt of distinct words", async () => {
    const random = seededRandom(43);
    const content = Array.from({ length: 1_000 }, () =>
      Array.from({ length: 120 }, () => LETTERS.charAt(random.int(0, LETTERS.length - 1))).join(""),
    ).join(" ");
    const parameters = {
      kind: "chat" as const,
      body: { messages: [{ role: "user", content }] },
      model: "gpt-4o",
    };
    const { value, turns } = await turnsDuring(() => promptTokenBound(parameters));
    assert.equal(value, synchronousBound(parameters));
    assert.ok(turns >= 10, `the event loop turned ${turns} times`);
  });

  test("bounds an ordinary prompt without pausing", async () => {
    const content = "Summarize the history of the Roman Empire in three sentences, then list its emperors.";
    const parameters = {
      kind: "chat" as const,
      body: { messages: [{ role: "user", content }] },
      model: "gpt-4o",
    };
    const { value, turns } = await turnsDuring(() => promptTokenBound(parameters));
    assert.equal(value, synchronousBound(parameters));
    assert.equal(turns, 0);
  });
});

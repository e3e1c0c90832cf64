import assert from "node:assert/strict";
import { test } from "node:test";
import { countTokens } from "gpt-tokenizer";
import { demoAnswerText, demoParagraphs } from "./demoAnswer.js";
import { splitIntoTokens } from "./splitIntoTokens.js";

function assertPrefixesCount(pieces: readonly string[]): void {
  for (let length = 1; length <= pieces.length; length++) {
    const prefix = pieces.slice(0, length).join("");
    assert.equal(countTokens(prefix), length, `after ${JSON.stringify(pieces[length - 1])}`);
  }
}

test("every demo answer splits into pieces that each add one token, at every prefix", () => {
  for (const [index] of demoParagraphs.entries()) {
    const answer = demoAnswerText(`prompt ${index}`);
    const pieces = splitIntoTokens(answer, countTokens);
    assert.equal(pieces.join(""), answer);
    assert.equal(pieces.length, countTokens(answer));
    assertPrefixesCount(pieces);
  }
});

test("cuts inside words that are several tokens, and keeps odd text intact", () => {
  const text = "Antidisestablishmentarianism, naïve café 12345678 don't\r\n\ttabs 😀😀 end.";
  const pieces = splitIntoTokens(text, countTokens);
  assert.equal(pieces.join(""), text);
  assert.equal(pieces.length, countTokens(text));
  const first = pieces[0] ?? "";
  assert.ok(first.length < "Antidisestablishmentarianism".length && text.startsWith(first), first);
});

test("splits by the tokenizer it is given", () => {
  const perCharacter = (text: string) => [...text].length;
  assert.deepEqual(splitIntoTokens("ab c", perCharacter), ["a", "b", " ", "c"]);
  const perWord = (text: string) => text.split(/\s+/).filter(Boolean).length;
  assert.deepEqual(splitIntoTokens("one two three", perWord), ["one", " two", " three"]);
});

test("an empty text has no tokens", () => {
  assert.deepEqual(splitIntoTokens("", countTokens), []);
});

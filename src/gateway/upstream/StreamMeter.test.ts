import assert from "node:assert/strict";
import { test } from "node:test";
import type { ChatCompletionChunk } from "./backendSchemas.js";
import { StreamMeter } from "./StreamMeter.js";

const countCharacters = (text: string) => text.length;

function delta(fields: Record<string, unknown>): ChatCompletionChunk {
  return { choices: [{ index: 0, delta: fields }] };
}

test("reports the backend's usage when it sent some, the last one winning", () => {
  const meter = new StreamMeter({ countTokens: countCharacters });
  meter.add({ ...delta({ content: "abc" }), usage: null });
  meter.add({ choices: [], usage: { prompt_tokens: 10, completion_tokens: 1 } });
  meter.add({ choices: [], usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 } });
  assert.deepEqual(meter.reportedUsage, { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 });
  assert.deepEqual(meter.usage({ promptTokens: 99 }), {
    prompt_tokens: 10,
    completion_tokens: 3,
    total_tokens: 13,
    source: "backend",
  });
  assert.equal(meter.chunkCount, 3);
});

test("counts the generated text with the tokenizer when the backend sent no usage", () => {
  const meter = new StreamMeter({ countTokens: countCharacters });
  meter.add(delta({ role: "assistant", content: "Hi" }));
  meter.add(delta({ content: null, reasoning_content: "hmm" }));
  meter.add(delta({ tool_calls: [{ index: 0, function: { name: "f", arguments: '{"a"' } }] }));
  meter.add(delta({ tool_calls: [{ index: 0, function: { arguments: ":1}" } }] }));
  meter.add({ choices: [{ index: 0, delta: {}, finish_reason: "tool_calls" }] });
  assert.equal(meter.completionText, 'Hihmmf{"a":1}');
  assert.equal(meter.reportedUsage, undefined);
  assert.deepEqual(meter.usage({ promptTokens: 5 }), {
    prompt_tokens: 5,
    completion_tokens: 13,
    total_tokens: 18,
    source: "tokenizer",
  });
});

test("reads the text of legacy completion chunks", () => {
  const meter = new StreamMeter({ countTokens: countCharacters });
  meter.add({ choices: [{ index: 0, text: "once" }] });
  meter.add({ choices: [{ index: 0, text: " upon" }] });
  assert.equal(meter.completionText, "once upon");
});

test("charges no output tokens when nothing was generated, without calling the tokenizer", () => {
  const meter = new StreamMeter({
    countTokens: () => assert.fail("the tokenizer should not run on empty text"),
  });
  assert.deepEqual(meter.usage({ promptTokens: 7 }), {
    prompt_tokens: 7,
    completion_tokens: 0,
    total_tokens: 7,
    source: "tokenizer",
  });
});

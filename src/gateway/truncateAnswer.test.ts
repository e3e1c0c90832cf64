import assert from "node:assert/strict";
import { test } from "node:test";
import { anthropicMessages } from "./routes/anthropicMessages.js";
import { openAiResponses } from "./routes/openAiResponses.js";
import { type AnswerMeter, cutChoicesChunk } from "./truncateAnswer.js";

/** One token per word, an allowance of 5. */
const meter: AnswerMeter = {
  allowancePerChoice: 5,
  tokensOf: (text) => text.split(/\s+/).filter(Boolean).length,
};

test("a Messages answer is cut inside its text block; a tool call past the limit is dropped", () => {
  const answer = {
    type: "message",
    content: [
      { type: "text", text: "one two three" },
      { type: "tool_use", id: "t1", name: "lookup", input: { q: "a b c d" } },
      { type: "text", text: "never sent" },
    ],
    stop_reason: "end_turn",
  };
  const cut = anthropicMessages.cutAnswer?.(answer, 1, meter);
  assert.deepEqual(cut?.content, [{ type: "text", text: "one two three" }]);
  assert.equal(cut?.stop_reason, "max_tokens");

  const long = {
    type: "message",
    content: [{ type: "text", text: "a b c d e f g h" }],
    stop_reason: "end_turn",
  };
  const shortened = anthropicMessages.cutAnswer?.(long, 1, meter);
  assert.equal((shortened?.content as Array<{ text: string }> | undefined)?.[0]?.text.trim(), "a b c d e");
});

test("a Responses answer is cut across a message's parts, status incomplete; the remaining allowance is the part's", () => {
  const answer = {
    object: "response",
    status: "completed",
    output: [
      { type: "reasoning", summary: [{ type: "summary_text", text: "think" }] },
      {
        type: "message",
        content: [
          { type: "output_text", text: "one two" },
          { type: "output_text", text: "three four five six" },
        ],
      },
      { type: "function_call", name: "f", arguments: "{}" },
    ],
  };
  const cut = openAiResponses.cutAnswer?.(answer, 1, meter);
  assert.equal(cut?.status, "incomplete");
  assert.deepEqual(cut?.incomplete_details, { reason: "max_output_tokens" });
  const output = cut?.output as Array<{ type: string; content?: Array<{ text: string }> }>;
  assert.deepEqual(
    output.map((item) => item.type),
    ["reasoning", "message"],
  );
  // 1 token of reasoning, 2 of the first part: 2 left for the second.
  assert.equal(output[1]?.content?.[1]?.text.trim(), "three four");
  assert.equal(openAiResponses.readAnswer(cut).pieces.length, 1);
});

test("an answer within the allowance is left as it is", () => {
  const answer = { type: "message", content: [{ type: "text", text: "short" }], stop_reason: "end_turn" };
  assert.equal(anthropicMessages.cutAnswer?.(answer, 1, meter), answer);
});

test("a stream chunk is cut to each choice's room: a cut choice loses the logprobs of what was cut and stops at length; a choice that fits is left whole", () => {
  const logprobs = {
    content: [
      { token: " a", logprob: 0 },
      { token: " b", logprob: 0 },
      { token: " c", logprob: 0 },
    ],
  };
  const chunk = {
    id: "c",
    choices: [
      { index: 0, delta: { content: " a b c" }, logprobs, finish_reason: null },
      { index: 1, delta: { content: " x" }, logprobs, finish_reason: null },
    ],
  };
  const cut = cutChoicesChunk(chunk, (choice) => (choice === 0 ? 2 : 5), meter);
  assert.deepEqual(cut?.choices, [
    { index: 0, delta: { content: " a b " }, logprobs: null, finish_reason: "length" },
    chunk.choices[1],
  ]);
  assert.equal(
    cutChoicesChunk(chunk, () => 5, meter),
    undefined,
    "nothing to cut",
  );
  const oddIndex = { choices: [{ index: -1, text: " a b c" }] };
  assert.deepEqual(cutChoicesChunk(oddIndex, (choice) => (choice === 0 ? 1 : 0), meter)?.choices, [
    { index: -1, text: " a ", logprobs: null, finish_reason: "length" },
  ]);
});

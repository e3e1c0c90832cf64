import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { encodeChat as encodeChatO200k } from "gpt-tokenizer/encoding/o200k_base";
import { isTollgateError } from "../errors/index.js";
import { seededRandom } from "../protocol/testing/seededRandom.js";
import { countPromptTokens } from "./countPromptTokens.js";
import { promptTokenBound } from "./promptTokenBound.js";

const plain = { disallowedSpecial: new Set<string>() };

describe("countPromptTokens", () => {
  test("counts a chat as OpenAI documents it (3 per message, 3 for the reply, the values' text), below the bound", async () => {
    const messages = [
      { role: "system" as const, content: "You are a careful assistant." },
      { role: "user" as const, content: "Summarize the history of the Roman Empire in three sentences." },
    ];
    const counted = await countPromptTokens("chat", { model: "gpt-4o", messages });
    assert.equal(counted, encodeChatO200k(messages, "gpt-4o", plain).length);
    assert.ok(counted < (await promptTokenBound({ kind: "chat", body: { model: "gpt-4o", messages } })));
  });

  test('counts one message "hello" as 8 tokens, and a name as 1 more than its text', async () => {
    const hello = { role: "user", content: "hello" };
    assert.equal(await countPromptTokens("chat", { model: "gpt-4o", messages: [hello] }), 8);
    // 3 + "user" + "hello" + "bob" + 1 for the name + 3.
    assert.equal(
      await countPromptTokens("chat", { model: "gpt-4o", messages: [{ ...hello, name: "bob" }] }),
      10,
    );
  });

  test("counts the keys of an object a message carries (a tool call's input), which a backend prints as JSON", async () => {
    const key = "alpha beta gamma ".repeat(300);
    const tokensOfKey = encodeChatO200k([{ role: "user", content: key }], "gpt-4o", plain).length - 8;
    const counted = await countPromptTokens("chat", {
      model: "gpt-4o",
      messages: [
        { role: "assistant", content: [{ type: "tool_use", id: "t", name: "f", input: { [key]: 1 } }] },
        { role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: "ok" }] },
      ],
    });
    assert.ok(counted > tokensOfKey, `${counted} counted for a key of ${tokensOfKey} tokens`);
  });

  test("counts a completion prompt as its text alone", async () => {
    assert.equal(await countPromptTokens("completion", { model: "gpt-4o", prompt: "hello" }), 1);
  });

  test("estimates unknown models with o200k, far below their byte bound", async () => {
    const body = {
      model: "llama-3.1-8b-instruct",
      prompt: "The quick brown fox jumps over the lazy dog. ".repeat(100),
    };
    const counted = await countPromptTokens("completion", body);
    const bound = await promptTokenBound({ kind: "completion", body });
    assert.ok(counted < bound / 3, `${counted} vs ${bound}`);
  });

  test("rejects a body it cannot take apart, naming the field", async () => {
    await assert.rejects(
      countPromptTokens("embedding", { input: [] }, "gpt-4"),
      (error) => isTollgateError(error, "TOLLGATE_REQUEST_INVALID") && error.details.field === "input",
    );
  });

  test("keeps the event loop turning while it counts a 512 KiB unspaced body", async (t) => {
    const random = seededRandom(33);
    const letters = Array.from({ length: 512 * 1024 }, () => String.fromCharCode(97 + random.int(0, 25)));
    const body = { model: "gpt-4o", messages: [{ role: "user", content: letters.join("") }] };
    const ticks: number[] = [];
    const timer = setInterval(() => ticks.push(performance.now()), 5);
    const started = performance.now();
    let counted: number;
    try {
      counted = await countPromptTokens("chat", body);
    } finally {
      clearInterval(timer);
    }
    const finished = performance.now();
    assert.ok(counted > 0 && counted <= (await promptTokenBound({ kind: "chat", body })));
    const gaps = [started, ...ticks, finished]
      .slice(1)
      .map((time, i, times) => time - (times[i - 1] ?? started));
    const longest = Math.max(...gaps);
    t.diagnostic(
      `${(finished - started).toFixed(0)} ms, ${ticks.length} ticks, longest gap ${longest.toFixed(1)} ms`,
    );
    // The loop turned many times during the count (timings are reported, not asserted: the machine is shared).
    assert.ok(ticks.length >= 10, `${ticks.length} ticks`);
  });
});

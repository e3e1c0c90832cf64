import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { isTollgateError } from "../errors/index.js";
import { promptTokenBound } from "./promptTokenBound.js";
import { messagesPromptBody, responsesPromptBody } from "./routePromptBody.js";

const refusedNaming = (field: string) => (error: unknown) =>
  isTollgateError(error, "TOLLGATE_REQUEST_INVALID") && error.details?.field === field;

describe("messagesPromptBody", () => {
  test("every block's text counts: a longer tool result, tool input or system block raises the bound", async () => {
    const base = {
      system: [{ type: "text", text: "Be brief." }],
      messages: [
        { role: "assistant", content: [{ type: "tool_use", id: "t", name: "f", input: { q: "a" } }] },
        {
          role: "user",
          content: [{ type: "tool_result", tool_use_id: "t", content: [{ type: "text", text: "r" }] }],
        },
      ],
    };
    const bound = (body: Record<string, unknown>) =>
      promptTokenBound({ kind: "chat", body: messagesPromptBody(body), model: "gpt-4o" });
    const longer = "lorem ipsum ".repeat(50);
    const baseBound = await bound(base);
    assert.ok((await bound({ ...base, system: [{ type: "text", text: longer }] })) > baseBound);
    const toolResult = structuredClone(base);
    (toolResult.messages[1]!.content[0] as { content: unknown[] }).content.push({
      type: "text",
      text: longer,
    });
    assert.ok((await bound(toolResult)) > baseBound);
    assert.ok(
      (await bound({ ...base, tools: [{ name: "f", description: longer, input_schema: {} }] })) > baseBound,
    );
  });

  test("refuses what cannot be sized before the request runs, naming the field", () => {
    assert.throws(() => messagesPromptBody({ messages: [] }), refusedNaming("messages"));
    assert.throws(() => messagesPromptBody({ messages: ["hi"] }), refusedNaming("messages[0]"));
    assert.throws(
      () =>
        messagesPromptBody({
          messages: [
            { role: "user", content: [{ type: "document", source: { type: "url", url: "https://x" } }] },
          ],
        }),
      refusedNaming("messages[0].content[0].source"),
    );
  });
});

describe("responsesPromptBody", () => {
  test("instructions, string input and items all read as chat messages", () => {
    const body = responsesPromptBody({
      instructions: "Be brief.",
      input: "hello",
      text: { format: { type: "text" } },
    });
    assert.deepEqual(body.messages, [
      { role: "system", content: "Be brief." },
      { role: "user", content: "hello" },
    ]);
    assert.deepEqual(body.response_format, { format: { type: "text" } });
  });

  test("refuses an image by file id and a file without inline data, naming the field", () => {
    assert.throws(() => responsesPromptBody({ input: [] }), refusedNaming("input"));
    assert.throws(
      () =>
        responsesPromptBody({ input: [{ role: "user", content: [{ type: "input_image", file_id: "f" }] }] }),
      refusedNaming("input[0].content[0].image_url"),
    );
    assert.throws(
      () =>
        responsesPromptBody({ input: [{ role: "user", content: [{ type: "input_file", file_id: "f" }] }] }),
      refusedNaming("input[0].content[0].file_data"),
    );
    assert.throws(
      () => responsesPromptBody({ instructions: [{ role: "system", content: "x" }], input: "hi" }),
      refusedNaming("instructions"),
    );
  });

  test("a tool call's output given as parts is read as content parts are: images sized, files by id refused", async () => {
    const output = (parts: unknown[]) =>
      responsesPromptBody({ input: [{ type: "function_call_output", call_id: "c", output: parts }] });
    assert.throws(
      () => output([{ type: "input_file", file_url: "https://x/a.pdf" }]),
      refusedNaming("input[0].output[0].file_data"),
    );
    assert.throws(
      () =>
        responsesPromptBody({
          input: [
            {
              type: "custom_tool_call_output",
              call_id: "c",
              output: [{ type: "input_image", file_id: "f" }],
            },
          ],
        }),
      refusedNaming("input[0].output[0].image_url"),
    );
    const image = { type: "input_image", image_url: "https://example.com/a.png" };
    const bound = (body: Record<string, unknown>) =>
      promptTokenBound({ kind: "chat", body, model: "gpt-4o", imageTokens: 1_000 });
    const one = await bound(output([image]));
    const twenty = await bound(output(Array.from({ length: 20 }, () => image)));
    assert.ok(twenty - one >= 19 * 1_000, `20 images bound at ${twenty}, one at ${one}`);
    // A plain string output still counts as text.
    const text = responsesPromptBody({
      input: [{ type: "function_call_output", call_id: "c", output: "sunny" }],
    });
    assert.deepEqual(text.messages, [{ type: "function_call_output", call_id: "c", output: "sunny" }]);
  });
});
